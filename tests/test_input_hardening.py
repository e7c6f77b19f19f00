"""Input hardening (issue 19, items 4, 8, 9): alias bombs, duplicate keys, inputs that are not
regular files, and profiles checked as strictly as scenarios. The user-facing cases go through
the real command: exit 2, one line on stderr, never a traceback."""
from __future__ import annotations

import itertools
import os
import resource
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from emul.config.profiles import builtin_names, load_profile, page_size_warning
from emul.config.scenario import read_yaml
from emul.config.vary import expand_vary
from emul.config.yamlread import MAX_ALIASES, load_yaml, read_input_bytes
from emul.errors import InputError
from tests.conftest import ROOT, emul_cmd, run_emul, tiny_scenario, write_yaml

ADDRESS_SPACE = 1 << 30     # emul's imports fit in ~0.5 GiB; the unfixed bomb took 2-3 GiB
PROFILE_TAIL = "costs_ns: {}\nunlisted_ns: 0\n"


def bomb(levels: int = 9, width: int = 9) -> tuple[str, str]:
    """A "billion laughs" as YAML lines (anchor x<k> holds ``width`` aliases of x<k-1>) and
    the name of its top anchor."""
    lines = [f"xa: &xa [{', '.join(['lol'] * width)}]"]
    names = [f"x{chr(ord('a') + k)}" for k in range(levels)]
    for prev, cur in itertools.pairwise(names):
        lines.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * width)}]")
    return "\n".join(lines) + "\n", names[-1]


def scenario_bomb() -> str:
    """The bomb under ``vary:``, where expand_vary used to str() it."""
    text, top = bomb()
    return "name: t\nprofile: zero\n" + text + f"vary:\n  cap: *{top}\n"


def profile_bomb() -> str:
    """The bomb in a profile's name (once a 7 MB plot title)."""
    text, top = bomb(levels=7)
    return text + f"name: *{top}\n" + PROFILE_TAIL


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_limited(*args: str) -> subprocess.CompletedProcess:
    """The real command under an address-space cap: a bomb that expands dies of MemoryError."""
    return subprocess.run(emul_cmd(*args), check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, preexec_fn=limited)


def refused(r: subprocess.CompletedProcess, *words: str) -> str:
    """The one line an input error prints; asserts the shape of the failure."""
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("emul: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "s.yaml", tiny_scenario())


def profile_file(tmp_path: Path, text: str | bytes, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# Alias bombs
# --------------------------------------------------------------------------------------------


def test_scenario_alias_bomb_is_refused_by_the_real_command(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(scenario_bomb())
    assert path.stat().st_size < 1000
    line = refused(run_limited("run", str(path)), str(path), "too many YAML aliases (an alias bomb?)")
    assert len(line) < 300


def test_profile_alias_bomb_is_refused_by_the_real_command(tmp_path: Path, scenario: Path) -> None:
    path = profile_file(tmp_path, profile_bomb())
    assert path.stat().st_size < 600
    refused(run_limited("run", str(scenario), "--profile", str(path), "-o", str(tmp_path / "out")),
            str(path), "alias bomb")


@pytest.mark.parametrize("load", ["scenario", "profile"])
def test_alias_bomb_costs_little_memory(tmp_path: Path, load: str) -> None:
    path = tmp_path / f"{load}.yaml"
    path.write_text(scenario_bomb() if load == "scenario" else profile_bomb())
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="alias bomb"):
            read_yaml(str(path), path) if load == "scenario" else load_profile(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 << 20, f"peak {peak >> 20} MiB"


def test_too_many_aliases() -> None:
    head = "a: &a 1\nb: [" + ", ".join(["*a"] * MAX_ALIASES) + "]\n"
    assert len(load_yaml("f.yaml", head)["b"]) == MAX_ALIASES
    with pytest.raises(InputError, match=f"more than {MAX_ALIASES} aliases"):
        load_yaml("f.yaml", head + "c: *a\n")


def test_modest_aliases_and_merge_keys_still_load() -> None:
    doc = load_yaml("f.yaml", "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\nlist: [*b, *b]\n")
    assert doc["other"] == {"x": 3, "y": 2} and doc["list"] == [{"x": 1, "y": 2}] * 2


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(InputError, match="refers to the node it is in"):
        load_yaml("f.yaml", "a: &a [1, *a]\n")


def test_vary_values_are_checked_before_use() -> None:
    nested = [[1, 2]]
    for _ in range(30):                       # shared 2**30 leaves: str() of it never finishes
        nested = [nested, nested]
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as info:
            expand_vary({"name": "t", "vary": {"cap": nested}}, "f.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == "f.yaml: vary.cap[0]: expected a value or a list of plain values, got a list holding a list"
    assert peak < 10 << 20
    with pytest.raises(InputError, match=r"vary.profile\[0\]: expected a value of at most 100 characters"):
        expand_vary({"name": "t", "vary": {"profile": ["p" * 10_000]}}, "f.yaml")
    with pytest.raises(InputError, match=r"vary.cap\[1\]: .* got a mapping"):
        expand_vary({"name": "t", "vary": {"cap": [100, {"a": 1}]}}, "f.yaml")


def test_vary_plain_values_still_expand() -> None:
    groups = expand_vary({"name": "t", "vary": {"costs.zs_free": [100.5, 200],
                                                "zsmalloc": [["class_in_handle", "free_unlocked"]]}},
                         "f.yaml")
    names = [v["name"] for _, doc in groups for v in doc["variants"]]
    assert "bitmap zs=class_in_handle+free_unlocked costs.zs_free=100.5" in names


def test_a_huge_unknown_key_is_shown_short(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "s.yaml", tiny_scenario(**{"k" * 100_000: 1}))
    line = refused(run_emul("run", str(path), timeout=60), "unknown key")
    assert len(line) < 500
    # an explicit key ("? "): YAML allows an implicit one of at most 1024 characters
    prof = profile_file(tmp_path, "name: p\n? " + "c" * 100_000 + "\n: 1\n" + PROFILE_TAIL)
    plain = write_yaml(tmp_path / "plain.yaml", tiny_scenario())
    line = refused(run_emul("run", str(plain), "--profile", str(prof), timeout=60),
                   "unknown key")
    assert len(line) < 500


# --------------------------------------------------------------------------------------------
# Duplicate keys
# --------------------------------------------------------------------------------------------


def test_duplicate_scenario_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nprofile: zero\nseed: 1\nrepeats: 2\nseed: 2\n")
    assert refused(run_emul("run", str(path), timeout=60)) == \
        f"emul: {path}: duplicate key 'seed' (line 5)"


def test_duplicate_nested_and_quoted_keys() -> None:
    with pytest.raises(InputError, match=r"duplicate key 'vma' \(line 4\)"):
        load_yaml("f.yaml", "name: t\nprocesses:\n  - vma: 8M\n    vma: 4M\n")
    with pytest.raises(InputError, match=r"duplicate key 'seed' \(line 2\)"):
        load_yaml("f.yaml", '"seed": 1\nseed: 2\n')
    assert load_yaml("f.yaml", "a: {x: 1}\nb: {x: 1}\n") == {"a": {"x": 1}, "b": {"x": 1}}


def test_duplicate_profile_key_is_refused(tmp_path: Path, scenario: Path) -> None:
    prof = profile_file(tmp_path, "name: p\ncosts_ns: {zap_pte: 1, zap_pte: 2}\nunlisted_ns: 0\n")
    refused(run_emul("run", str(scenario), "--profile", str(prof), timeout=60),
            str(prof), "duplicate key 'zap_pte' (line 2)")


def test_shipped_scenarios_and_profiles_load() -> None:
    files = sorted((ROOT / "emul" / "scenarios").rglob("*.yaml"))
    assert files
    for path in files:
        assert isinstance(read_yaml(str(path), path), dict), path
    for name in builtin_names():
        profile = load_profile(name)
        assert profile.name == name and profile.page_size == 4096


# --------------------------------------------------------------------------------------------
# Regular files only
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    return path


def test_fifo_scenario(fifo: Path) -> None:
    assert refused(run_emul("run", str(fifo), timeout=60)) == \
        f"emul: {fifo}: not a regular file (a FIFO); expected a scenario file"


def test_fifo_profile(tmp_path: Path, fifo: Path, scenario: Path) -> None:
    refused(run_emul("run", str(scenario), "--profile", str(fifo), timeout=60),
            str(fifo), "not a regular file (a FIFO)")


def test_fifo_trace(fifo: Path) -> None:
    refused(run_emul("replay", str(fifo), timeout=60),
            str(fifo), "cannot read the trace: not a regular file (a FIFO)")


def test_directories(tmp_path: Path, scenario: Path) -> None:
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    refused(run_emul("run", str(folder), timeout=60), "is a directory, expected a scenario file")
    refused(run_emul("run", str(scenario), "--profile", str(folder), timeout=60),
            "is a directory, expected a cost profile file")
    refused(run_emul("replay", str(folder), timeout=60), "cannot read the trace: is a directory")


def test_character_device() -> None:
    with pytest.raises(InputError, match=r"not a regular file \(a character device\); expected a scenario"):
        read_yaml("/dev/zero", "/dev/zero")
    with pytest.raises(InputError, match="no such file"):
        read_input_bytes("x", "/nonexistent/x", 10, "a trace file")


def test_read_input_bytes_reads_at_most_one_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_input_bytes(str(path), path, 10, "a file") == b"x" * 11
    assert read_input_bytes(str(path), path, 100, "a file") == b"x" * 100


# --------------------------------------------------------------------------------------------
# Profiles as strict as scenarios
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, words", [
    (b"name: \xff\xfe\n" + PROFILE_TAIL.encode(), ["not readable as text at byte 6"]),
    ("name: [1, 2]\n" + PROFILE_TAIL, ["name: expected a name", "got a list"]),
    ("name: " + "n" * 200 + "\n" + PROFILE_TAIL, ["name: expected a name of at most 100", '..."']),
    ('name: "two\\nlines"\n' + PROFILE_TAIL, ["name: expected a name"]),
    ("name: p\ndescription: [1]\n" + PROFILE_TAIL, ["description: expected text", "got a list"]),
    ("name: p\npage_size: banana\n" + PROFILE_TAIL, ['page_size: expected 4K, 16K or 64K, got "banana"']),
    ("name: p\npage_size: 8K\n" + PROFILE_TAIL, ["page_size: expected 4K, 16K or 64K"]),
    ("name: p\nflavour: x\n" + PROFILE_TAIL, ["flavour: unknown key (expected one of: name,"]),
    ("name: p\ncosts_ns: {zap_pte: [1, 2]}\nunlisted_ns: 0\n",
     ["costs_ns.zap_pte: expected nanoseconds (a number >= 0), got a list"]),
    ("name: p\nmeasured: 3\n" + PROFILE_TAIL, ["measured: expected a mapping"]),
])
def test_bad_profile_is_one_line(tmp_path: Path, scenario: Path, text: str | bytes, words: list[str]) -> None:
    prof = profile_file(tmp_path, text)
    refused(run_emul("run", str(scenario), "--profile", str(prof), timeout=60), str(prof), *words)


@pytest.mark.parametrize("written, nbytes", [("4K", 4096), ("16K", 16384), (4096, 4096), ("64K", 65536)])
def test_profile_page_size(tmp_path: Path, written: str | int, nbytes: int) -> None:
    prof = profile_file(tmp_path, f"name: p\npage_size: {written}\nmeasured: {{x: 1}}\n" + PROFILE_TAIL)
    assert load_profile(str(prof)).page_size == nbytes


def test_page_size_warning(tmp_path: Path) -> None:
    said = load_profile(str(profile_file(tmp_path, "name: p16\npage_size: 16K\n" + PROFILE_TAIL)))
    unsaid = load_profile(str(profile_file(tmp_path, "name: q\n" + PROFILE_TAIL, "q.yaml")))
    assert unsaid.page_size is None and page_size_warning(unsaid, 4096) is None
    assert page_size_warning(said, 16384) is None
    warning = page_size_warning(said, 4096)
    assert warning is not None and "\n" not in warning
    assert "p16" in warning and "16K" in warning and "4K" in warning


def test_profile_without_a_name_takes_the_file_stem(tmp_path: Path) -> None:
    assert load_profile(str(profile_file(tmp_path, PROFILE_TAIL, "slow-gc.yaml"))).name == "slow-gc"
