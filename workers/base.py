"""What every worker does around its role: handshake, pinning, attach, phases, usage, exit.

A role (workers/<role>.py) is a table of phases, each ``fn(worker, args) -> dict | None``; the
compiled code it calls is loaded at set-up from the entry points the controller compiled
(emul/harness/entrypoints.py, ROLE_ENTRY_POINTS). Every phase ends with one versioned ``done``
message (emul/harness/supervisor.py, PhaseDone) or an ``error``.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

PR_SET_PDEATHSIG = 1
SETUP_TIMEOUT_MS = 120_000
GATE_TIMEOUT_NS = 60e9       # a gate that never opens: the controller is gone
ROLES = ("swapout", "killer", "swapin", "reclaim", "gc", "benchpeer")

Phase = Callable[["Worker", dict], "dict | None"]


def parent_arg(argv: list[str]) -> int:
    """The controller's pid from ``--parent PID`` (0 when absent: the parent at start)."""
    for i, a in enumerate(argv[:-1]):
        if a == "--parent" and argv[i + 1].isdigit():
            return int(argv[i + 1])
    return 0


def die_with_parent(parent: int = 0) -> None:
    """Ask the kernel to SIGKILL this worker when the controller dies (no orphan burns a core),
    and leave now if it already has: our parent is no longer the pid that started us."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass
    global _PARENT
    _PARENT = _PARENT or parent or os.getppid()
    if orphaned():
        os._exit(1)


_PARENT = 0      # the controller's pid, from die_with_parent


def orphaned() -> bool:
    """The controller that started this worker is gone (whoever adopted us)."""
    return os.getppid() != _PARENT


def migrations() -> int | None:
    """CPU migrations of this process so far (se.nr_migrations; None without SCHED_DEBUG)."""
    try:
        with open("/proc/self/sched") as f:
            for line in f:
                if line.startswith("se.nr_migrations"):
                    return int(line.split(":")[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def schedstat_ns(field: int) -> int | None:
    """/proc/self/schedstat, in ns: field 0 the time on a CPU, field 1 the time waited on a
    runqueue while runnable (another task had the CPU); None where the kernel has none."""
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[field])
    except (OSError, ValueError, IndexError):
        return None


def runqueue_wait_ns() -> int | None:
    return schedstat_ns(1)


def usage_snapshot(proc: "psutil.Process") -> dict:
    # CPU time from schedstat where the kernel has it: ns resolution, brought up to date at
    # every scheduler tick and switch, where utime + stime come in 10 ms ticks (a phase
    # shorter than a tick would look idle to the busy checks)
    on_cpu = schedstat_ns(0)
    if on_cpu is None:
        t = proc.cpu_times()
        cpu_s = t.user + t.system
    else:
        cpu_s = on_cpu / 1e9
    c = proc.num_ctx_switches()
    return {"cpu_s": cpu_s, "wall_s": time.perf_counter(),
            "voluntary": c.voluntary, "involuntary": c.involuntary, "migrations": migrations()}


def usage_delta(a: dict, b: dict) -> dict:
    return {k: None if a[k] is None or b[k] is None else b[k] - a[k] for k in a}


class Worker:
    """Sequences one role: ``phases`` maps a phase name to its function."""

    def __init__(self, role: str, phases: dict[str, Phase]) -> None:
        self.role, self.phases = role, phases

    def main(self, argv: list[str] | None = None) -> int:
        ap = argparse.ArgumentParser(prog=f"python -m workers.{self.role}")
        ap.add_argument("--parent", type=int, default=0)
        ap.add_argument("--control", required=True)
        ap.add_argument("--name", required=True)
        ap.add_argument("--token", required=True)
        args = ap.parse_args(argv)
        # the controller orchestrates shutdown; a closed terminal's SIGHUP is its to handle
        for sig in (signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        die_with_parent(args.parent)

        from emul.harness.control import ControlClient
        self.client = ControlClient(args.control, args.name, args.token)
        try:
            return self._serve()
        except Exception as exc:  # reported as one line; the traceback goes to the run's log
            self.client.send({"type": "error", "message": f"{type(exc).__name__}: {exc}",
                              "traceback": traceback.format_exc()})
            return 1
        finally:
            self.client.close()

    def _setup(self, setup: dict) -> None:
        import psutil

        from emul.harness.arena import Arena, Layout
        from emul.harness.entrypoints import ROLE_ENTRY_POINTS, Views, compile_entry_points
        self.proc = psutil.Process()
        self.proc.cpu_affinity(setup["cpus"])
        if setup.get("boost"):
            from emul.harness.priority import boost
            boost()
        self.index = int(setup["index"])
        self.ticks_per_ns = float(setup["ticks_per_ns"])
        self.arena = Arena.attach(setup["arena"], Layout.from_json(setup["layout"]))
        self.views = Views.of(self.arena, self.index)
        self.zram, self.mm, self.ctx = self.views.zram, self.views.mm, self.views.ctx
        self.page, self.ctl = self.views.page, self.views.ctl
        compile_entry_points(self.views, ROLE_ENTRY_POINTS[self.role])

    def _serve(self) -> int:
        self.client.send({"type": "hello", "role": self.role, "pid": os.getpid()})
        setup = self.client.recv(SETUP_TIMEOUT_MS)
        if setup is None or setup["type"] != "setup":
            return 1
        self._setup(setup)
        from emul.harness.priority import nice_now
        self.client.send({"type": "ready", "nice": nice_now()})
        while True:
            msg = self.client.recv(1000)
            if msg is None:
                if orphaned():
                    return 1
                continue
            if msg["type"] == "exit":
                return 0
            if msg["type"] == "phase":
                self.client.send(self._phase(msg))

    def _phase(self, msg: dict) -> dict:
        """Run one phase (on the start gate unless the message says otherwise): its done."""
        from emul.harness.supervisor import PHASE_DONE_VERSION
        from emul.kernel.gate import gate_wait
        from emul.kernel.layout import CTL_CHAOS_PY
        fn = self.phases[msg["phase"]]
        done = {"type": "done", "v": PHASE_DONE_VERSION, "seq": msg["seq"]}
        if not msg.get("gate", True):   # a control-plane echo: nothing else on the way
            return dict(done, result=fn(self, msg.get("args") or {}) or {}, cpu_now=-1,
                        cpus_allowed=[], usage=None)
        if self.ctl[CTL_CHAOS_PY] == self.index + 1:
            raise RuntimeError("chaos: a fault raised in the worker's Python code")
        before = usage_snapshot(self.proc)
        if not gate_wait(self.ctl, int(msg["seq"]), int(GATE_TIMEOUT_NS * self.ticks_per_ns)):
            raise RuntimeError("the start gate never opened (controller gone?)")
        queued = runqueue_wait_ns()           # from the gate on: the phase's own preemptions
        result = fn(self, msg.get("args") or {}) or {}
        usage = usage_delta(before, usage_snapshot(self.proc))
        after = runqueue_wait_ns()
        usage["runqueue_wait_s"] = (None if queued is None or after is None
                                    else (after - queued) / 1e9)
        return dict(done, result=result, usage=usage, cpu_now=self.proc.cpu_num(),
                    cpus_allowed=self.proc.cpu_affinity())


def run(worker: Worker) -> None:
    sys.exit(worker.main())


def run_ranges(w: Worker, path: Callable[..., object], ranges: list, *extra: object) -> None:
    """Run compiled path(zram, mm, ctx, start, end, *extra) over each range in turn; the
    phase's time is from the first range's start to the last one's end."""
    from emul.kernel.context import W_T_START
    first = None
    for start, end in ranges:
        path(w.zram, w.mm, w.ctx, int(start), int(end), *extra)
        first = w.ctx.stat[W_T_START] if first is None else first
    if first is not None:
        w.ctx.stat[W_T_START] = first
