"""vary: matrices, several killers, the swap allocator's start, and the significance test."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from emul.errors import InputError
from emul.config.profiles import builtin_names
from emul.report.summary import permutation_p, summarize
from emul.config.vary import load_matrix
from emul.strategies import strategy_names

from conftest import run_emul, tiny_scenario, two_cpus, write_yaml

ROOT = Path(__file__).resolve().parent.parent


def matrix(tmp_path: Path, doc: dict) -> list:
    path = write_yaml(tmp_path / "m.yaml", doc)
    return load_matrix(path, cpus=set(two_cpus()), strategies=strategy_names(),
                       profiles=builtin_names())


def test_vary_is_the_cartesian_product_grouped_by_structure(tmp_path: Path) -> None:
    doc = tiny_scenario(vary={"page_size": ["4K", "16K"], "strategy": ["sync", "bitmap", "array"],
                              "cap": [100, "1M"]})
    groups = matrix(tmp_path, doc)
    assert [g.page_size for g in groups] == [4096, 16384]
    names = [v.name for g in groups for v in g.variants]
    # sync takes no cap axis: 1 + 2 + 2 variants per page size
    assert len(names) == 10 and len(set(names)) == 10
    assert "bitmap cap=1M page=16K" in names and "sync page=4K" in names
    bm = next(v for v in groups[1].variants if v.name == "bitmap cap=1M page=16K")
    assert (bm.cap_slots, bm.cap_bytes, bm.group) == (64, 1 << 20, "page=16K")


def test_without_vary_a_file_is_one_group(tmp_path: Path) -> None:
    groups = matrix(tmp_path, tiny_scenario())
    assert len(groups) == 1 and [v.name for v in groups[0].variants] == ["sync", "bitmap"]
    assert groups[0].variants[0].group == ""


@pytest.mark.parametrize(("vary", "key", "expected"), [
    ({"colour": ["red"]}, "vary", 'expected keys from: strategy, cap'),
    ({"strategy": "sync"}, "vary.strategy", "expected a non-empty list"),
    ({"strategy": []}, "vary.strategy", "expected a non-empty list"),
    ([1, 2], "vary", "expected a mapping"),
])
def test_bad_vary_is_a_clear_error(tmp_path: Path, vary, key: str, expected: str) -> None:
    with pytest.raises(InputError) as info:
        matrix(tmp_path, tiny_scenario(vary=vary))
    assert f": {key}: " in str(info.value) and expected in str(info.value)


def test_a_bad_value_in_vary_names_the_group_and_the_key(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        matrix(tmp_path, tiny_scenario(vary={"page_size": ["4K", "3K"]}))
    text = str(info.value)
    assert "(vary: page=3K)" in text and "page_size: expected 4K or 16K" in text


def test_killers_take_the_cpus_in_turn(tmp_path: Path) -> None:
    a, b = two_cpus()
    doc = tiny_scenario(workers={"killer": {"cpu": "all", "count": 3}, "gc": {"cpu": b},
                                 "swapout": {"cpu": a}})
    sc = matrix(tmp_path, doc)[0]
    cpus = sorted({a, b})
    assert sc.workers.killers == tuple(cpus[k % len(cpus)] for k in range(3))


def test_every_shipped_thread_scenario_expands() -> None:
    files = sorted((ROOT / "scenarios" / "thread").glob("*.yaml"))
    assert len(files) == 5
    for f in files:
        groups = load_matrix(f, cpus=set(two_cpus()), strategies=strategy_names(),
                             profiles=builtin_names())
        names = [v.name for g in groups for v in g.variants]
        assert len(names) == len(set(names)) >= 2, f
        assert any(v.strategy == "sync" for v in groups[0].variants), f


def test_permutation_test_flags_a_large_difference_and_not_an_equal_pair() -> None:
    slow = [100.0, 101.0, 99.5, 100.5, 100.2]
    fast = [50.0, 51.0, 49.0, 50.5, 50.2]
    assert permutation_p(slow, fast) < 0.01
    assert permutation_p(slow, list(reversed(slow))) > 0.5
    assert permutation_p([1.0], [2.0]) == 1.0     # one repeat: nothing can be significant


def _row(variant: str, strategy: str, t: float, group: str = "") -> dict:
    return {"variant": variant, "strategy": strategy, "group": group, "time_ns": t,
            "ns_per_page": t / 10, "lazy": 0, "in_place": 0, "fallback": 0, "gc_drain_ns": 0.0,
            "gc_busy_ns": 0.0, "gc_freed": 0, "peak_backlog": 0, "miss_free": 0,
            "audit": {"ok": True}}


def test_each_group_is_compared_with_its_own_sync() -> None:
    rows = []
    for k in range(5):
        rows += [_row("sync a", "sync", 100 + k, "a"), _row("bitmap a", "bitmap", 50 + k, "a"),
                 _row("sync b", "sync", 1000 + k, "b"), _row("bitmap b", "bitmap", 1000 + k, "b")]
    s = {x["variant"]: x for x in summarize(rows, ["sync a", "bitmap a", "sync b", "bitmap b"])}
    assert s["bitmap a"]["baseline"] == "sync a" and s["bitmap b"]["baseline"] == "sync b"
    assert s["bitmap a"]["significant"] and round(s["bitmap a"]["ratio"], 2) == round(102 / 52, 2)
    assert not s["bitmap b"]["significant"] and s["bitmap b"]["ratio"] == 1.0


def test_matrix_run_end_to_end(tmp_path: Path, no_leftovers) -> None:
    doc = tiny_scenario(repeats=2, vary={"page_size": ["4K", "16K"],
                                         "strategy": ["sync", "hbitmap"]},
                        zram={"disksize": "16M", "alloc_from": "tail"})
    doc.pop("variants")
    path = write_yaml(tmp_path / "m.yaml", doc)
    out = tmp_path / "out"
    r = run_emul("run", str(path), "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["vary"] == doc["vary"] and len(res["groups"]) == 2
    assert {s["variant"] for s in res["summary"]} == {
        "sync page=4K", "hbitmap page=4K", "sync page=16K", "hbitmap page=16K"}
    assert all(s["audit_clean"] == 2 for s in res["summary"])
    order = [row["variant"] for row in res["repeats"]]
    assert order[:4] == list(reversed(order[4:]))          # interleaved, reversed every repeat
    by = {s["variant"]: s for s in res["summary"]}
    assert by["hbitmap page=16K"]["baseline"] == "sync page=16K"
    assert {row["ptes"] for row in res["repeats"] if "16K" in row["variant"]} == {8 * 1024 // 16}
