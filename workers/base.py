"""What every worker does around its role: handshake, pinning, attach, phases, usage, exit."""
from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

import numba
import psutil

PR_SET_PDEATHSIG = 1
SETUP_TIMEOUT_MS = 120_000


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this worker if the controller dies (no orphan burns a core)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass
    if os.getppid() == 1:
        os._exit(1)


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


def usage_snapshot(proc: psutil.Process) -> dict:
    t = proc.cpu_times()
    c = proc.num_ctx_switches()
    return {"cpu_s": t.user + t.system, "wall_s": time.perf_counter(),
            "voluntary": c.voluntary, "involuntary": c.involuntary, "migrations": migrations()}


def usage_delta(a: dict, b: dict) -> dict:
    return {k: None if a[k] is None or b[k] is None else b[k] - a[k] for k in a}


class Worker:
    """Sequences one role. ``phases`` maps a phase name to ``fn(worker, args) -> dict``."""

    def __init__(self, role: str, phases: dict[str, Callable[["Worker", dict], dict]],
                 warm: Callable[["Worker"], None]) -> None:
        self.role, self.phases, self.warm = role, phases, warm

    def main(self, argv: list[str] | None = None) -> int:
        ap = argparse.ArgumentParser(prog=f"python -m workers.{self.role}")
        ap.add_argument("--control", required=True)
        ap.add_argument("--name", required=True)
        ap.add_argument("--token", required=True)
        args = ap.parse_args(argv)
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # the controller orchestrates shutdown
        die_with_parent()

        from emul.harness.control import ControlClient
        self.client = ControlClient(args.control, args.name, args.token)
        try:
            return self._serve(args.name)
        except Exception as exc:  # reported as one line; the traceback goes to the run's log
            self.client.send({"type": "error", "message": f"{type(exc).__name__}: {exc}",
                              "traceback": traceback.format_exc()})
            return 1
        finally:
            self.client.close()

    def _serve(self, name: str) -> int:
        from emul.harness.arena import Arena, Layout
        from emul.kernel import layout as state

        self.client.send({"type": "hello", "role": self.role, "pid": os.getpid()})
        setup = self.client.recv(SETUP_TIMEOUT_MS)
        if setup is None or setup["type"] != "setup":
            return 1
        proc = psutil.Process()
        proc.cpu_affinity(setup["cpus"])
        self.index = int(setup["index"])
        self.ticks_per_ns = float(setup["ticks_per_ns"])
        self.arena = Arena.attach(setup["arena"], Layout.from_json(setup["layout"]))
        self.zram = state.zram_view(self.arena)
        self.mm = state.mm_view(self.arena)
        self.ctx = state.ctx_view(self.arena, self.index)
        self.page = state.page_buffer(self.arena, self.index)
        self.ctl = self.arena["ctl"]
        self.warm(self)
        self.client.send({"type": "ready", "numba": numba.__version__})
        from emul.kernel.gate import gate_wait
        while True:
            msg = self.client.recv(1000)
            if msg is None:
                if os.getppid() == 1:
                    return 1
                continue
            if msg["type"] == "exit":
                return 0
            if msg["type"] != "phase":
                continue
            fn = self.phases[msg["phase"]]
            if self.ctl[state.CTL_CHAOS_PY] == self.index + 1:
                raise RuntimeError("chaos: a fault raised in the worker's Python code")
            before = usage_snapshot(proc)
            if not gate_wait(self.ctl, int(msg["seq"]), int(60e9 * self.ticks_per_ns)):
                raise RuntimeError("the start gate never opened (controller gone?)")
            result = fn(self, msg.get("args") or {})
            usage = usage_delta(before, usage_snapshot(proc))
            self.client.send({"type": "done", "seq": msg["seq"], "result": result,
                              "usage": usage, "cpu_now": proc.cpu_num(),
                              "cpus_allowed": proc.cpu_affinity()})


def compile_for(dispatcher, *args) -> None:
    """Load (or compile) dispatcher for these arguments' types without running it."""
    dispatcher.compile(tuple(numba.typeof(a) for a in args))


def run(worker: Worker) -> None:
    sys.exit(worker.main())


def run_ranges(w: Worker, path, ranges, *extra) -> int:
    """Run compiled path(zram, mm, ctx, start, end, *extra) over each range in turn; the
    phase's time is from the first range's start to the last one's end."""
    from emul.kernel.context import W_T_START
    first = None
    total = 0
    for start, end in ranges:
        total += path(w.zram, w.mm, w.ctx, int(start), int(end), *extra) or 0
        first = w.ctx.stat[W_T_START] if first is None else first
    if first is not None:
        w.ctx.stat[W_T_START] = first
    return int(total)
