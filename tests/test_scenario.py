"""Scenario files and sizes: valid input resolves, every bad input is one clear InputError."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emul.errors import EXIT_USAGE, InputError
from emul.config.scenario import Experiment, Scenario, load_scenario, scenario_from_dict
from emul.config.sizes import format_size, parse_count_or_size, parse_size

WHERE = "scenarios/x.yaml"
CPUS = {0, 1}
STRATEGIES = {"sync", "bitmap"}
PROFILES = {"rk3588-cpu2"}

SEED_UNMAP = """\
name: seed-unmap
description: "Unmap a fully swapped-out 256M VMA"
experiment: unmap
page_size: 4K
repeats: 5
seed: 1
profile: rk3588-cpu2
zram:
  disksize: 512M
processes:
  - name: victim
    vma: 256M
    swapped: 1.0
data:
  compression_ratio: 2.0
  spread: 0.25
  same_filled: 0.0
  incompressible: 0.0
workers:
  killer:  {cpu: 0}
  gc:      {cpu: 1, count: 1}
  swapout: {cpu: 0}
variants:
  - name: sync
    strategy: sync
  - name: bitmap
    strategy: bitmap
    cap: 30000
lockstat: false
debug: {}
"""


def build(data: Any, *, cpus: set[int] = CPUS) -> Scenario:
    return scenario_from_dict(data, where=WHERE, cpus=cpus, strategies=STRATEGIES, profiles=PROFILES)


def error_of(data: Any, **kw: Any) -> str:
    with pytest.raises(InputError) as info:
        build(data, **kw)
    assert info.value.exit_code == EXIT_USAGE
    return str(info.value)


def base(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "t"}
    data.update(changes)
    return data


# ---------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("256M", 256 << 20), ("1G", 1 << 30), ("4K", 4096), ("64MiB", 64 << 20), ("512k", 512 << 10),
        ("1.5G", 3 << 29), ("4kb", 4096), ("16KiB", 16384), ("4096", 4096), (4096, 4096), ("2T", 2 << 40),
        (" 8 M ", 8 << 20), ("100B", 100),
    ],
)
def test_parse_size_accepts(text: Any, nbytes: int) -> None:
    assert parse_size(text, where=WHERE, key="k") == nbytes


@pytest.mark.parametrize("bad", ["lots", "-1M", "1.3K", 0, -4096, True, None, 1.5, [], "4iB", "1KK", "", "٣K"])
def test_parse_size_rejects(bad: Any) -> None:
    with pytest.raises(InputError) as info:
        parse_size(bad, where=WHERE, key="zram.disksize")
    assert str(info.value).startswith(f"{WHERE}: zram.disksize: expected ")


def test_parse_size_minimum() -> None:
    assert parse_size(0, where=WHERE, key="k", minimum=0) == 0
    assert 'got "lots"' in str(pytest.raises(InputError, parse_size, "lots", where=WHERE, key="k").value)


def test_parse_count_or_size() -> None:
    assert parse_count_or_size(30000, page_size=4096, where=WHERE, key="cap") == (30000, None)
    assert parse_count_or_size("64M", page_size=4096, where=WHERE, key="cap") == (16384, 64 << 20)
    assert parse_count_or_size("64M", page_size=16384, where=WHERE, key="cap") == (4096, 64 << 20)
    with pytest.raises(InputError) as info:
        parse_count_or_size("lots", page_size=4096, where=WHERE, key="variants[1].cap")
    assert str(info.value) == f'{WHERE}: variants[1].cap: expected a slot count or a size like 64M, got "lots"'
    for bad in (0, -3, True, 2.5, "1K"):
        with pytest.raises(InputError):
            parse_count_or_size(bad, page_size=4096, where=WHERE, key="cap")


@pytest.mark.parametrize(("nbytes", "text"), [(256 << 20, "256M"), (3 << 29, "1536M"), (4097, "4097"), (1 << 40, "1T"), (0, "0")])
def test_format_size(nbytes: int, text: str) -> None:
    assert format_size(nbytes) == text


@given(st.integers(min_value=1, max_value=1 << 62))
@settings(max_examples=200)
def test_format_size_round_trips(n: int) -> None:
    assert parse_size(format_size(n), where=WHERE, key="k") == n


# ---------------------------------------------------------------------------------- valid


def test_full_seed_unmap_file_resolves(tmp_path: Path) -> None:
    path = tmp_path / "seed-unmap.yaml"
    path.write_text(SEED_UNMAP)
    s = load_scenario(path, cpus=CPUS, strategies=STRATEGIES, profiles=PROFILES)
    assert s.name == "seed-unmap"
    assert s.experiment is Experiment.UNMAP
    assert s.page_size == 4096 and s.repeats == 5 and s.seed == 1 and s.profile == "rk3588-cpu2"
    assert s.zram.disksize == 512 << 20 and s.nr_slots == (512 << 20) // 4096
    assert [(p.name, p.vma, p.swapped) for p in s.processes] == [("victim", 256 << 20, 1.0)]
    assert s.pages_per_process == [65536] and s.swapped_pages_per_process == [65536]
    assert (s.data.compression_ratio, s.data.spread, s.data.same_filled, s.data.incompressible) == (2.0, 0.25, 0.0, 0.0)
    assert s.workers.killer.cpu == 0 and s.workers.swapout.cpu == 0
    assert s.workers.gc.cpus == (1,) and s.workers.gc.count == 1
    assert [(v.name, v.strategy, v.cap_slots, v.cap_bytes) for v in s.variants] == [
        ("sync", "sync", None, None), ("bitmap", "bitmap", 30000, None),
    ]
    assert s.lockstat is False and s.debug == {}
    assert s.source == str(path) and s.raw["workers"]["gc"] == {"cpu": 1, "count": 1}
    # Only `name` is required: the defaults are the seed-unmap scenario.
    d = build({"name": "seed-unmap", "description": "Unmap a fully swapped-out 256M VMA"})
    assert d.to_dict() | {"source": ""} == s.to_dict() | {"source": ""}
    json.dumps(s.to_dict())


def test_resolves_sizes_cpus_caps_and_names() -> None:
    s = build(base(
        page_size=16384,
        zram={"disksize": "1G"},
        processes=[{"vma": "256M", "swapped": 0.5}, {"name": "other", "vma": 1 << 20}, {}],
        data={"compression_ratio": 3, "same_filled": 0.5, "incompressible": 0.5},
        workers={"killer": {"cpu": "cpu1"}, "gc": {"cpu": [0, "cpu1"]}, "swapout": {"cpu": 1}},
        variants=[{"strategy": "sync"}, {"name": "b64", "strategy": "bitmap", "cap": "64M"}, {"strategy": "bitmap", "cap": None}],
        lockstat=True,
        debug={"slow_gc": True, "delay_ns": 500},
    ))
    assert s.page_size == 16384 and s.nr_slots == (1 << 30) // 16384
    assert [p.name for p in s.processes] == ["victim", "other", "victim3"]
    assert s.pages_per_process == [16384, 64, 16384]
    assert s.swapped_pages_per_process[0] == 8192
    assert s.data.compression_ratio == 3.0 and isinstance(s.data.compression_ratio, float)
    assert s.workers.killer.cpu == 1 and s.workers.gc.cpus == (0, 1) and s.workers.gc.count == 2
    assert [(v.name, v.cap_slots, v.cap_bytes) for v in s.variants] == [
        ("sync", None, None), ("b64", 4096, 64 << 20), ("bitmap", None, None),
    ]
    assert s.lockstat is True and s.debug == {"slow_gc": True, "delay_ns": 500}


def test_gc_count_repeats_a_single_cpu() -> None:
    assert build(base(workers={"gc": {"cpu": 1, "count": 2}})).workers.gc.cpus == (1, 1)


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        (base(variants=[{"strategy": "sync"}, {"strategy": "bitmap", "cap": "lots"}]),
         "variants[1].cap", 'expected a slot count or a size like 64M, got "lots"'),
        (base(workers={"kiler": {"cpu": 0}}),
         "workers.kiler", "unknown key (expected one of: killer, gc, swapout, swapin, reclaim)"),
        (base(zram={"disksize": "lots"}), "zram.disksize", 'expected a size like 256M or 1G, got "lots"'),
        (base(processes=[{"vma": "1.3K"}]), "processes[0].vma", "expected a whole number of bytes"),
        (base(processes=[{"vma": "6K"}]), "processes[0].vma", 'expected a multiple of the page size (4K), got "6K"'),
        (base(zram={"disksize": "128M"}), "zram.disksize", "expected room for the swapped-out pages (256M)"),
        (base(workers={"gc": {"cpu": 5}}), "workers.gc.cpu", "CPU 5 is not available on this machine (available: 0-1)"),
        (base(workers={"gc": {"cpu": [0, "cpu7"]}}), "workers.gc.cpu[1]", "CPU 7 is not available on this machine"),
        (base(workers={"killer": {"cpu": "five"}}), "workers.killer.cpu", 'expected a CPU number like 0 or "cpu0", got "five"'),
        (base(workers={"gc": {"count": 3}}), "workers.gc.count", "expected a whole number from 1 to 2"),
        (base(workers={"gc": {"cpu": [0, 1], "count": 1}}), "workers.gc.count", "expected 2"),
        (base(variants=[{"strategy": "nope"}]), "variants[0].strategy",
         'expected a known strategy (one of: bitmap, sync), got "nope"'),
        (base(variants=[{"strategy": "sync", "capp": 1}]), "variants[0].capp",
         "unknown key (expected one of: name, strategy, cap, zsmalloc, costs, core, step_work_ns)"),
        (base(variants=[{"strategy": "sync"}, {"strategy": "sync", "cap": 5}]), "variants[1].name",
         'variant name "sync" is already used by variants[0]'),
        (base(variants=[{"strategy": "sync", "cap": "1K"}]), "variants[0].cap", "at least one page (4K)"),
        (base(variants=[{"name": "v"}]), "variants[0].strategy", "required key is missing"),
        (base(variants=[]), "variants", "expected at least 1 entry"),
        (base(data={"same_filled": 0.75, "incompressible": 0.5}), "data",
         "expected same_filled + incompressible <= 1, got 0.75 + 0.5"),
        (base(data={"spread": float("nan")}), "data.spread", "expected a fraction from 0 to 1, got nan"),
        (base(data={"compression_ratio": 0.5}), "data.compression_ratio", "expected a number from 1 to 64"),
        (base(page_size="8K"), "page_size", 'expected 4K or 16K, got "8K"'),
        (base(repeats=0), "repeats", "expected a whole number from 1 to 1000, got 0"),
        (base(seed=True), "seed", "got true"),
        (base(profile="pi5"), "profile", 'expected a known profile (one of: rk3588-cpu2), got "pi5"'),
        (base(experiment="mmap"), "experiment", 'expected an experiment (one of: mixed, swapin, unmap), got "mmap"'),
        (base(lockstat="yes please"), "lockstat", "expected true or false"),
        (base(debug={"x": 1.5}), "debug.x", "expected true, false or a whole number, got 1.5"),
        (base(debug=[1]), "debug", "expected a mapping, got a list"),
        (base(workers={"gc": None}), "workers.gc", "expected a mapping, got null"),
        (base(processes="victim"), "processes", 'expected a list, got "victim"'),
        ({"name": "Seed Unmap"}, "name", 'got "Seed Unmap"'),
        ({"description": "no name"}, "name", "required key is missing"),
        ({"name": "t", 7: 1}, "7", "unknown key (expected one of: name, description,"),
    ],
)
def test_bad_input_names_file_key_and_expectation(data: dict[str, Any], key: str, expected: str) -> None:
    message = error_of(data)
    assert message.startswith(f"{WHERE}: {key}: "), message
    assert expected in message, message


def test_first_error_in_document_order_then_count() -> None:
    message = error_of({"name": "t", "repeats": 0, "variants": [{"strategy": "bitmap", "cap": "lots"}], "seed": -1})
    assert message == f"{WHERE}: repeats: expected a whole number from 1 to 1000, got 0 (and 2 more)"


def test_default_gc_cpu_missing_on_a_one_cpu_machine() -> None:
    message = error_of({"name": "t"}, cpus={0})
    assert message == f"{WHERE}: workers.gc.cpu: CPU 1 is not available on this machine (available: 0)"


@pytest.mark.parametrize("data", [[{"name": "t"}], "name: t", None, 5])
def test_top_level_not_a_mapping(data: Any) -> None:
    message = error_of(data)
    assert message.startswith(f"{WHERE}: expected a mapping of scenario keys"), message


# ---------------------------------------------------------------------------------- files


@pytest.fixture
def scenarios_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios").mkdir()
    return tmp_path / "scenarios"


def load(path: str) -> Scenario:
    return load_scenario(path, cpus=CPUS, strategies=STRATEGIES, profiles=PROFILES)


def load_error(text: str | bytes, scenarios_dir: Path) -> str:
    target = scenarios_dir / "x.yaml"
    target.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InputError) as info:
        load(WHERE)
    return str(info.value)


def test_file_errors_carry_the_key_path(scenarios_dir: Path) -> None:
    text = "name: t\nvariants:\n  - strategy: sync\n  - strategy: bitmap\n    cap: lots\n"
    assert load_error(text, scenarios_dir) == f'{WHERE}: variants[1].cap: expected a slot count or a size like 64M, got "lots"'
    text = "name: t\nworkers:\n  kiler: {cpu: 0}\n"
    assert load_error(text, scenarios_dir) == f"{WHERE}: workers.kiler: unknown key (expected one of: killer, gc, swapout, swapin, reclaim)"


def test_yaml_syntax_error_gives_line(scenarios_dir: Path) -> None:
    message = load_error("name: t\nzram:\n  disksize: [512M\nseed: 1\n", scenarios_dir)
    assert message.startswith(f"{WHERE}: line "), message
    assert "invalid YAML" in message
    message = load_error("name: t\n  seed: 1\n", scenarios_dir)
    assert message.startswith(f"{WHERE}: line 2, column "), message


def test_file_not_found(scenarios_dir: Path) -> None:
    with pytest.raises(InputError) as info:
        load(WHERE)
    assert str(info.value) == f"{WHERE}: no such file"


def test_directory_empty_and_top_level_list(scenarios_dir: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        load("scenarios")
    assert "got an empty document" in load_error("", scenarios_dir)
    assert load_error("- name: t\n", scenarios_dir) == (
        f"{WHERE}: expected a mapping of scenario keys (name, experiment, ...), got a list"
    )


@pytest.mark.parametrize(
    "text",
    [
        b"\xff\xfe\xfa garbage",
        "name: t\nseed: " + "9" * 5000 + "\n",
        "name: t\ndescription: 2024-13-45\n",
        "name: t\nx: !!python/object:os.system {}\n",
        "a: &a [*a]\nname: t\n",
        "[" * 5000,
        "name: t\n---\nname: u\n",
        "name: t\nname: u\n",
    ],
)
def test_odd_files_give_input_errors(text: str | bytes, scenarios_dir: Path) -> None:
    target = scenarios_dir / "x.yaml"
    target.write_bytes(text if isinstance(text, bytes) else text.encode())
    try:
        load(WHERE)
    except InputError as err:
        assert str(err).startswith(f"{WHERE}: ")


# ---------------------------------------------------------------------------------- fuzz

_KEYS = [
    "name", "description", "experiment", "page_size", "repeats", "seed", "profile", "zram", "disksize",
    "processes", "vma", "swapped", "data", "compression_ratio", "spread", "same_filled", "incompressible",
    "workers", "killer", "gc", "swapout", "cpu", "count", "variants", "strategy", "cap", "lockstat", "debug",
]
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, 1, 2, 5, 4096, 16384, 10**400, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["sync", "bitmap", "64M", "4K", "16K", "1.5G", "cpu1", "lots", "unmap", "t", "rk3588-cpu2", ""]),
)
_keys = st.one_of(st.sampled_from(_KEYS), st.text(max_size=6), st.integers(-3, 3), st.none(), st.booleans())
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=5)),
    max_leaves=20,
)


def _check(data: Any) -> None:
    try:
        s = build(data)
    except InputError as err:
        assert str(err).startswith(f"{WHERE}: ")
        return
    assert isinstance(s, Scenario)
    json.dumps(s.to_dict())
    assert all(math.isfinite(x) for x in (s.data.spread, s.data.same_filled, s.data.compression_ratio))


_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(_values)
def test_fuzz_top_level(data: Any) -> None:
    _check(data)


@_FUZZ
@given(st.dictionaries(_keys, _values, max_size=6))
def test_fuzz_top_level_mapping(data: dict[Any, Any]) -> None:
    _check({"name": "t", **data})


@_FUZZ
@given(_values, _values)
def test_fuzz_variants_and_workers(variants: Any, workers: Any) -> None:
    _check({"name": "t", "variants": variants})
    _check({"name": "t", "workers": workers})
    _check({"name": "t", "variants": [variants], "workers": {"gc": workers}})
