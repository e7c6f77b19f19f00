"""Shared helpers: tiny scenarios, running the real `emul` command, checking nothing is left."""
from __future__ import annotations

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


@pytest.fixture
def no_leftovers():
    """Asserts that the test left no arena in /dev/shm and no worker process running."""
    import psutil
    before_shm = shm_entries()
    yield
    assert shm_entries() - before_shm == set(), "shared memory left behind"
    strays = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
              if any(a.startswith("workers.") for a in (p.info["cmdline"] or []))]
    assert not strays, f"worker processes left running: {strays}"
