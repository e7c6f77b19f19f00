"""An installed emul (the built wheel, not the editable checkout) runs from any directory: its
scenarios and traces are package data (issue 18). The fresh venv borrows the test venv's
dependencies through a .pth line (no download); emul itself comes from the wheel only."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        "-q", "-w", str(tmp / "dist"), str(ROOT)], capture_output=True,
                       text=True, timeout=600)
    if r.returncode != 0 and "No module named" in r.stderr:
        pytest.skip(f"cannot build a wheel here: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    wheel = next((tmp / "dist").glob("emul-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the dependencies, from the test venv; its editable emul is not on this path (a path a
    # .pth line adds is not a site directory: its own .pth hooks do not run)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                        "install", "--no-deps", "-q", str(wheel)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    return venv


def emul_in(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    return subprocess.run([str(venv / "bin" / "emul"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_the_wheel_runs_run_replay_and_soak_from_an_empty_directory(installed: Path,
                                                                    tmp_path: Path) -> None:
    where = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import emul; print(emul.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path).stdout
    assert str(installed) in where and str(ROOT) not in where, where
    empty = tmp_path / "empty"
    empty.mkdir()
    r = emul_in(installed, empty, "run", "--repeats", "1", "--warmup", "0", "-o", "out")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert (empty / "out" / "results.json").exists()
    r = emul_in(installed, empty, "replay", "scenarios/traces/burst.log", "--repeats", "1",
                "--warmup", "0", "-o", "replay")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    r = emul_in(installed, empty, "soak", "--minutes", "0.2", "-o", "soak")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert sorted(p.name for p in empty.iterdir()) == ["out", "replay", "soak"]
