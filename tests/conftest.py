"""Shared helpers: tiny scenarios, running the real `emul` command, checking nothing is left."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def two_cpus() -> tuple[int, int]:
    cpus = usable_cpus()
    return cpus[0], cpus[1] if len(cpus) > 1 else cpus[0]


def tiny_scenario(**over) -> dict:
    a, b = two_cpus()
    doc = {
        "name": "tiny", "experiment": "unmap", "page_size": "4K", "repeats": 2, "seed": 3,
        "profile": "zero", "zram": {"disksize": "16M"},
        "processes": [{"name": "victim", "vma": "8M", "swapped": 1.0}],
        "data": {"compression_ratio": 2.5, "spread": 0.5, "same_filled": 0.1,
                 "incompressible": 0.05},
        "workers": {"killer": {"cpu": a}, "gc": {"cpu": b}, "swapout": {"cpu": a}},
        "variants": [{"name": "sync", "strategy": "sync"},
                     {"name": "bitmap", "strategy": "bitmap", "cap": 500}],
    }
    doc.update(over)
    return doc


def write_yaml(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def emul_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "emul.cli", *args]


def run_emul(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(emul_cmd(*args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def shm_entries(prefix: str = "emul-") -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefix)}


@pytest.fixture(autouse=True, scope="session")
def own_history(tmp_path_factory):
    """The tests' runs keep their A/A history (emul/report/history.py) in a file of their own,
    never in the user's: compare's floor must not depend on what ran here before."""
    path = tmp_path_factory.mktemp("history") / "history.jsonl"
    old = os.environ.get("EMUL_HISTORY")
    os.environ["EMUL_HISTORY"] = str(path)
    yield path
    if old is None:
        os.environ.pop("EMUL_HISTORY", None)
    else:
        os.environ["EMUL_HISTORY"] = old


@contextlib.contextmanager
def leftovers_checked(tmp: Path, mp: pytest.MonkeyPatch):
    """Runs inside leave no arena in /dev/shm, no control-socket directory and no worker
    process running. The machine is shared (other emul runs may be going on), so these runs
    are told apart: their arenas carry a tag, their control sockets live in ``tmp``, a
    directory of their own, which every worker's command line names."""
    import secrets

    import psutil
    tag = "t" + secrets.token_hex(4)
    mp.setenv("EMUL_ARENA_TAG", tag)      # mp undoes them: the test's own monkeypatch
    mp.setenv("TMPDIR", str(tmp))
    yield
    assert shm_entries(f"emul-{tag}-") == set(), "shared memory left behind"
    assert not [n for n in os.listdir(tmp) if n.startswith("emul-ctl-")], \
        "control socket directory left behind"
    strays = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
              if any(str(tmp) in a for a in (p.info["cmdline"] or []))]
    assert not strays, f"worker processes left running: {strays}"


@pytest.fixture
def no_leftovers(tmp_path_factory, monkeypatch):
    """The test's runs leave nothing behind (leftovers_checked)."""
    with leftovers_checked(tmp_path_factory.mktemp("ctl"), monkeypatch):
        yield


# The `fast` marker: the subset `make arm64-check` runs under emulation (`pytest -m fast`). It is
# assigned here by module (and one end-to-end run) so that test files need no decorators and new
# tests in these modules join the subset; keep slow work out of these modules or off this list.
FAST_MODULES = {"test_atomics.py", "test_zsmalloc.py", "test_zs_classes.py", "test_scenario.py",
                "test_traces.py", "test_clock_asm.py", "test_cachedir.py"}
FAST_TESTS = {"test_run.py::test_tiny_run_end_to_end"}


def pytest_configure(config):
    config.addinivalue_line("markers", "fast: the quick subset `make arm64-check` runs "
                                       "(assigned in tests/conftest.py)")
    config.addinivalue_line("markers", "realzram: measures the real kernel on a real zram "
                                       "device (root; runs only with EMUL_REAL_ZRAM=1)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.path.name
        if module in FAST_MODULES or f"{module}::{item.originalname}" in FAST_TESTS:
            item.add_marker(pytest.mark.fast)
