"""The farm's work on a host: one cell is one ``emul run`` subprocess, run by a Dask task.

These functions run inside the Dask worker's process on the host (the task is submitted by
reference to this module, and everything it gets is plain data: the scenario's YAML text, the
options). The cell runs exactly as ``emul run`` on that machine: its own workers pinned with
psutil, its own shared memory, its own invariant audit; the task returns the results document.

Why a subprocess and not the harness in the Dask worker: the worker's threads and event loop
would share the CPUs the emul workers are pinned to, and a fault in a run must not take the
Dask worker with it. The subprocess gets SIGTERM when the worker dies (PR_SET_PDEATHSIG, set by
a shim before emul starts), so a host that drops out leaves no emul run behind; SIGTERM is an
interrupt to emul run, which cleans up as on Ctrl-C.
"""
from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TOPIC = "emul-farm"              # the Dask event topic a cell's progress goes to
PROGRESS_PREFIX = "emul-progress "   # emul run's machine-readable progress lines (EMUL_PROGRESS)
STOP_WAIT_S = 30.0               # how long stop_cells waits for interrupted runs to clean up

# the shim: the child's death signal is SIGTERM from the thread that started it; if that
# thread is already gone (getppid changed), stop before emul starts
_SHIM = ("import ctypes, os, signal, sys\n"
         "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
         "if os.getppid() != int(sys.argv[1]): sys.exit(3)\n"
         "os.execv(sys.executable, [sys.executable, '-m', 'emul.cli', *sys.argv[2:]])\n")

_running: dict[str, subprocess.Popen] = {}
_lock = threading.Lock()


def _emit(event: dict[str, Any]) -> None:
    """One progress event to the controller, through the scheduler's event log."""
    try:
        from distributed import get_worker
        get_worker().log_event(TOPIC, event)
    except (ImportError, ValueError):       # not in a Dask worker (a direct call)
        pass


def emul_run_command(cell: dict[str, Any], workdir: Path) -> list[str]:
    """The cell's `emul run` argument list, its input files written into workdir."""
    scenario = workdir / cell["scenario_file"]
    scenario.write_text(cell["scenario_text"])
    args = ["run", str(scenario), "-o", str(workdir / "out"), "--format", "plain"]
    if cell.get("profile_text") is not None:
        profile = workdir / cell["profile_file"]
        profile.write_text(cell["profile_text"])
        args += ["--profile", str(profile)]
    elif cell.get("profile"):
        args += ["--profile", cell["profile"]]
    if cell.get("only_group"):
        args += ["--only-group", str(cell["only_group"])]
    return args + [str(a) for a in cell.get("run_args", [])]


def run_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """Run one cell; returns its exit code, results document (None if none was written) and
    the end of its stderr."""
    workdir = Path(tempfile.mkdtemp(prefix="emul-farm-"))
    tail: collections.deque[str] = collections.deque(maxlen=40)
    t0 = time.monotonic()
    try:
        args = emul_run_command(cell, workdir)
        env = dict(os.environ, EMUL_PROGRESS="json")
        with open(workdir / "stdout.txt", "w") as out:
            proc = subprocess.Popen([sys.executable, "-c", _SHIM, str(os.getpid()), *args],
                                    cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.PIPE, text=True, errors="replace")
        with _lock:
            _running[cell["id"]] = proc
        _emit({"cell": cell["id"], "state": "running"})
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip("\n")
            if line.startswith(PROGRESS_PREFIX):
                try:
                    _emit({"cell": cell["id"], **json.loads(line[len(PROGRESS_PREFIX):])})
                except ValueError:
                    tail.append(line)
            else:
                tail.append(line)
        code = proc.wait()
        with _lock:
            _running.pop(cell["id"], None)
        results = workdir / "out" / "results.json"
        doc = json.loads(results.read_text()) if results.exists() else None
        return {"cell": cell["id"], "code": code, "doc": doc, "stderr": "\n".join(tail),
                "wall_s": time.monotonic() - t0,
                "summary": (workdir / "out" / "summary.txt").read_text()
                if (workdir / "out" / "summary.txt").exists() else ""}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def stop_cells(wait_s: float = STOP_WAIT_S) -> list[int]:
    """Interrupt every emul run this worker started (SIGTERM: emul run cleans up, exit 3) and
    wait for them to end; the pids still alive after wait_s (then killed) are returned.
    Called with client.run, which reaches a worker while its task thread is busy."""
    with _lock:
        procs = list(_running.values())
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    stuck = []
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            stuck.append(p.pid)
    return stuck


def plan_groups(cell: dict[str, Any]) -> dict[str, Any]:
    """For --spread, on one host: the scenario's runnable structural groups (their labels, in
    the order `emul run --only-group` counts them) and the points this machine cannot run, or
    the error the scenario gets here. Called with client.run."""
    from emul.config.profiles import builtin_names
    from emul.config.vary import load_sweep
    from emul.errors import EmulError
    from emul.strategies import strategy_names
    workdir = Path(tempfile.mkdtemp(prefix="emul-farm-plan-"))
    try:
        args = emul_run_command(cell, workdir)
        profiles = builtin_names() + ([args[args.index("--profile") + 1]]
                                      if "--profile" in args else [])
        groups, skipped = load_sweep(args[1], cpus=os.sched_getaffinity(0),
                                     strategies=strategy_names(), profiles=profiles)
        return {"groups": [g.variants[0].group for g in groups],
                "skipped": [f"not run: {p.group}: {p.reason}" for p in skipped], "error": None}
    except EmulError as exc:
        return {"groups": [], "skipped": [], "error": str(exc).replace(str(workdir) + "/", "")}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
