"""Issue 21: emul farm through a real Dask scheduler and real workers on loopback.

Each farm here is `dask scheduler` and `dask worker` processes started by the test (one thread,
resources emul=1, named like boards), so the farm reaches them by address exactly as a lab's.
The workers' environment tags their emul runs' shared memory and puts their control sockets in
a directory of the test's, so "nothing left behind" is checked for these runs alone. Two
"hosts" here are one 2-core machine: their runs disturb each other, and the tests check
behaviour, never a time.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from conftest import ROOT, emul_cmd, run_emul, shm_entries, tiny_scenario, write_yaml

pytest.importorskip("distributed")

DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]
FAKE = ROOT / "tests" / "helpers" / "fake_host.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabFarm:
    """A scheduler and named workers, each a process of its own."""

    def __init__(self, tmp: Path) -> None:
        self.tag = "t" + secrets.token_hex(4)
        self.tmp = tmp
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.env = dict(os.environ, EMUL_ARENA_TAG=self.tag, TMPDIR=str(tmp))
        self.procs: dict[str, subprocess.Popen] = {}
        self.start("scheduler", [*DASK, "--host", "127.0.0.1", "--port",
                                 self.address.rsplit(":", 1)[1], "--no-dashboard"])

    def start(self, name: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")
        p = subprocess.Popen(cmd, env=env or self.env, cwd=self.tmp, stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL)
        self.procs[name] = p
        return p

    def worker(self, name: str, fake: dict | None = None) -> subprocess.Popen:
        """A worker named like a board; fake: facts it reports in place of its own."""
        extra = ["--preload", str(FAKE)] if fake else []
        env = dict(self.env, EMUL_FAKE_HOST=json.dumps(fake)) if fake else self.env
        return self.start(name, [*WORKER, self.address, "--nthreads", "1", "--resources",
                                 "emul=1", "--name", name, "--no-nanny", "--no-dashboard",
                                 *extra], env)

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client
        with Client(self.address, timeout=60, set_as_default=False) as c:
            c.wait_for_workers(n, timeout=120)

    def emul_runs(self, worker: str | None = None) -> list[psutil.Process]:
        """The emul run processes the workers started (their children, by command line)."""
        out = []
        for name, p in self.procs.items():
            if name == "scheduler" or (worker and name != worker):
                continue
            try:
                kids = psutil.Process(p.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            out += [k for k in kids if "emul.cli" in " ".join(_cmdline(k))]
        return out

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def tagged_emul_processes(tag: str, tmp: Path) -> list[psutil.Process]:
    """Any emul run or worker still alive whose control directory is under tmp."""
    out = []
    for p in psutil.process_iter(["cmdline", "environ"]):
        try:
            env = p.info["environ"] or {}
        except psutil.Error:
            continue
        cmd = " ".join(p.info["cmdline"] or [])
        if env.get("EMUL_ARENA_TAG") == tag and ("emul.cli" in cmd or "workers" in cmd):
            out.append(p)
    return out


def until(cond, timeout: float, what: str) -> None:
    """Wait for a condition (polled), failing with what was awaited."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def assert_nothing_left(farm: LabFarm) -> None:
    until(lambda: not tagged_emul_processes(farm.tag, farm.tmp), 60,
          "the hosts' emul runs to end")
    assert shm_entries(f"emul-{farm.tag}-") == set(), "shared memory left behind"
    assert not [n for n in os.listdir(farm.tmp) if n.startswith("emul-ctl-")], \
        "control directories left behind"


@contextmanager
def lab(tmp: Path, *workers: str | tuple[str, dict]):
    """A farm of these workers (a name, or a name and the facts it fakes)."""
    farm = LabFarm(tmp)
    try:
        for w in workers:
            name, fake = (w, None) if isinstance(w, str) else w
            farm.worker(name, fake)
        farm.wait_for_workers(len(workers))
        yield farm
    finally:
        farm.stop()


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory):
    """One farm of two hosts, shared by the tests that only run on it."""
    with lab(tmp_path_factory.mktemp("farm"), "rk3588-a", "rk3588-b") as farm:
        yield farm


def farm_run(farm: LabFarm, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_emul("farm", "run", *args, "--scheduler", farm.address, "--warmup", "0",
                    "--format", "plain", timeout=timeout)


def start_farm_run(farm: LabFarm, sc: Path, out: Path) -> subprocess.Popen:
    """emul farm run in the background (to be interrupted, or to lose a host, mid-run)."""
    return subprocess.Popen(emul_cmd("farm", "run", str(sc), "--scheduler", farm.address,
                                     "--warmup", "0", "--format", "plain", "-o", str(out)),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def doc_of(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_each_runs_the_scenario_on_both_hosts_and_merges(two_hosts, tmp_path):
    sc = write_yaml(tmp_path / "tiny.yaml", tiny_scenario(repeats=1))
    out = tmp_path / "out"
    r = farm_run(two_hosts, str(sc), "-o", str(out))
    assert r.returncode == 0, r.stderr + r.stdout
    doc = doc_of(out)
    assert doc["farm"]["mode"] == "each" and doc["status"] == "ok"
    assert {c["host"]: c["state"] for c in doc["farm"]["cells"]} == {"rk3588-a": "done",
                                                                     "rk3588-b": "done"}
    groups = {row["group"] for row in doc["repeats"]}
    assert groups == {"host=rk3588-a", "host=rk3588-b"}
    assert all(row["audit"]["ok"] for row in doc["repeats"])
    variants = [s["variant"] for s in doc["summary"]]
    assert variants == ["sync @rk3588-a", "bitmap @rk3588-a", "sync @rk3588-b",
                        "bitmap @rk3588-b"]
    # each host's design against its own sync
    assert {s["variant"]: s["baseline"] for s in doc["summary"]}["bitmap @rk3588-b"] == \
        "sync @rk3588-b"
    # the two "hosts" are one machine, and the results and the output say so
    assert doc["farm"]["same_machine"] == [["rk3588-a", "rk3588-b"]]
    assert "one machine" in r.stdout
    # the side-by-side table emul compare prints, with each host's machine
    assert "rk3588-a" in r.stdout and doc["machine"]["arch"] in r.stdout
    for cell in ("rk3588-a", "rk3588-b"):
        assert doc_of(out / "cells" / cell)["status"] == "ok"
    again = run_emul("report", str(out), "--format", "plain")
    assert again.returncode == 0, again.stderr
    assert_nothing_left(two_hosts)


def test_spread_deals_one_group_to_each_host(two_hosts, tmp_path):
    sc = write_yaml(tmp_path / "matrix.yaml", tiny_scenario(
        repeats=1, vary={"disksize": ["16M", "32M"]}))
    out = tmp_path / "out"
    r = farm_run(two_hosts, str(sc), "--spread", "-o", str(out))
    assert r.returncode == 0, r.stderr + r.stdout
    doc = doc_of(out)
    assert doc["farm"]["mode"] == "spread"
    host_of = {row["group"]: row["host"] for row in doc["repeats"]}
    assert len(host_of) == 2 and set(host_of.values()) == {"rk3588-a", "rk3588-b"}
    # merged as one machine's matrix: both groups, in the matrix's order, each with its sync
    assert [g["variants"][0]["group"] for g in doc["groups"]] == list(host_of)
    assert len(doc["summary"]) == 4
    assert all(s["baseline"].startswith("sync") for s in doc["summary"])
    assert all(row["audit"]["ok"] for row in doc["repeats"])
    assert_nothing_left(two_hosts)


def test_a_host_with_another_emul_is_refused_by_name(tmp_path):
    with lab(tmp_path, "good-host", ("old-host", {"emul": "0.0.9 (000000000000)"})) as farm:
        out = tmp_path / "out"
        r = farm_run(farm, "-o", str(out))
        assert r.returncode == 2, r.stderr + r.stdout
        line = r.stderr.strip()
        assert line.startswith("emul: ") and "\n" not in line and "Traceback" not in r.stderr
        assert "old-host runs emul 0.0.9" in line and "good-host" not in line
        assert not out.exists(), "refused before anything ran"
        assert farm.emul_runs() == []


def test_spread_over_different_machines_is_refused(tmp_path):
    """--spread merges as one machine's run: a host that is another board is refused, with
    the fact that differs, before anything runs; --each is what the line suggests."""
    sc = write_yaml(tmp_path / "matrix.yaml", tiny_scenario(
        repeats=1, vary={"disksize": ["16M", "32M"]}))
    with lab(tmp_path, "x86-box", ("rpi4", {"cpu_model": "Cortex-A72", "cpus": 4})) as farm:
        out = tmp_path / "out"
        r = farm_run(farm, str(sc), "--spread", "-o", str(out))
        assert r.returncode == 2, r.stderr + r.stdout
        line = r.stderr.strip()
        assert line.startswith("emul: ") and "\n" not in line and "Traceback" not in r.stderr
        assert "cpu_model" in line and "Cortex-A72" in line and "cpus" in line
        assert "--each" in line and not out.exists()
        hosts = run_emul("farm", "hosts", "--scheduler", farm.address, "--format", "json")
        assert hosts.returncode == 0, hosts.stderr
        listed = {h["name"]: h for h in json.loads(hosts.stdout)}
        assert listed["rpi4"]["cpu_model"] == "Cortex-A72" and listed["x86-box"]["cpus"] == \
            os.cpu_count()


def test_a_worker_killed_mid_run_fails_its_cell_and_the_other_finishes(tmp_path):
    sc = write_yaml(tmp_path / "tiny.yaml", tiny_scenario(repeats=3))
    with lab(tmp_path, "board-a", "board-b") as farm:
        out = tmp_path / "out"
        proc = start_farm_run(farm, sc, out)
        until(lambda: farm.emul_runs("board-b"), 120, "board-b's emul run to start")
        farm.procs["board-b"].kill()                  # the host drops out mid-run
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 3, stderr + stdout
        doc = doc_of(out)
        cells = {c["host"]: c for c in doc["farm"]["cells"]}
        assert cells["board-a"]["state"] == "done"
        assert cells["board-b"]["state"] == "failed" and cells["board-b"]["reason"]
        assert {row["group"] for row in doc["repeats"]} == {"host=board-a"}
        assert doc["status"] == "partial" and "board-b" in doc["reason"]
        # the dropped host's emul run got its parent's death signal and cleaned up
        assert_nothing_left(farm)


def test_ctrl_c_cancels_every_cell_and_leaves_nothing(tmp_path):
    sc = write_yaml(tmp_path / "long.yaml", tiny_scenario(repeats=50))
    with lab(tmp_path, "board-a", "board-b") as farm:
        out = tmp_path / "out"
        proc = start_farm_run(farm, sc, out)
        until(lambda: len(farm.emul_runs()) >= 2, 120, "both hosts' emul runs to start")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 3, stderr + stdout
        assert "interrupted" in stderr + stdout and "Traceback" not in stderr
        assert_nothing_left(farm)
        # the workers themselves are fine: the farm can run again
        assert all(p.poll() is None for p in farm.procs.values())


def test_both_or_neither_target_is_refused(tmp_path):
    r = run_emul("farm", "run", "--hosts", "a", "--scheduler", "tcp://127.0.0.1:1")
    assert r.returncode == 2 and r.stderr.startswith("emul: ") and "exactly one" in r.stderr
    r = run_emul("farm", "hosts")
    assert r.returncode == 2 and "exactly one" in r.stderr
    r = run_emul("farm")
    assert r.returncode == 2 and "run" in r.stderr and "hosts" in r.stderr


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    r = run_emul("farm", "hosts", "--scheduler", f"tcp://127.0.0.1:{free_port()}",
                 "--connect-timeout", "2")
    assert r.returncode == 5, r.stderr
    assert r.stderr.startswith("emul: cannot reach the farm") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr


def test_without_distributed_the_farm_says_how_to_install_it(tmp_path):
    """A plain install has no Dask: emul farm says what to install; emul run is unaffected."""
    (tmp_path / "distributed").mkdir()
    (tmp_path / "distributed" / "__init__.py").write_text(
        "raise ImportError('No module named distributed')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    r = subprocess.run(emul_cmd("farm", "hosts", "--scheduler", "tcp://127.0.0.1:1"), cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 5, r.stderr
    assert "pip install 'emul[farm]'" in r.stderr and r.stderr.count("\n") == 1
