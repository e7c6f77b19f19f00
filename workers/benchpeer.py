"""The second process of ``emul bench``: the far end of a lock hand-off and of the control plane.

Started by emul/bench.py as ``python -m workers.benchpeer --control … --name … --token …``. It
says hello on the control plane (emul/harness/control.py, as every worker), gets the arena's name and
layout and its CPU in the setup message, pins itself, attaches the arena, loads the bench
kernels the bench compiled before starting it, says ready, and then serves phase messages:

  echo     answer ``done`` at once (one control-plane round trip)
  handoff  arrive at the start gate, then take turns on the slot lock with the bench
  exit     leave
"""
from __future__ import annotations

import argparse
import signal
import sys
import traceback

from workers.base import SETUP_TIMEOUT_MS, die_with_parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workers.benchpeer")
    ap.add_argument("--control", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--token", required=True)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the bench orchestrates shutdown
    die_with_parent()

    from emul.harness.control import ControlClient
    client = ControlClient(args.control, args.name, args.token)
    try:
        return serve(client)
    except Exception as exc:
        client.send({"type": "error", "message": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc()})
        return 1
    finally:
        client.close()


def serve(client) -> int:
    import os

    import psutil

    from emul import bench
    from emul.harness.arena import Arena, Layout
    from emul.kernel import layout as state
    from emul.kernel.gate import gate_wait

    client.send({"type": "hello", "role": "benchpeer", "pid": os.getpid()})
    setup = client.recv(SETUP_TIMEOUT_MS)
    if setup is None or setup["type"] != "setup":
        return 1
    psutil.Process().cpu_affinity(setup["cpus"])
    arena = Arena.attach(setup["arena"], Layout.from_json(setup["layout"]))
    zram = state.zram_view(arena)
    ctx = state.ctx_view(arena, int(setup["index"]))
    ctl = arena["ctl"]
    timeout_ticks = int(60e9 * float(setup["ticks_per_ns"]))
    bench.compile_for(bench.loop_handoff, zram, ctx, 0, 0, 0)
    bench.compile_for(gate_wait, ctl, 0, 0)
    client.send({"type": "ready"})
    while True:
        msg = client.recv(1000)
        if msg is None:
            if os.getppid() == 1:
                return 1
            continue
        if msg["type"] == "exit":
            return 0
        if msg["type"] != "phase":
            continue
        seq = msg["seq"]
        if msg["phase"] == "echo":
            client.send({"type": "done", "seq": seq})
        elif msg["phase"] == "handoff":
            a = msg.get("args") or {}
            if not gate_wait(ctl, int(seq), timeout_ticks):
                raise RuntimeError("the start gate never opened (bench gone?)")
            on = bench.OnCpu()
            early = bench.loop_handoff(zram, ctx, int(a["index"]), 1, int(a["turns"]))
            client.send({"type": "done", "seq": seq,
                         "result": {"early": int(early), "preempted": on.preempted()}})


if __name__ == "__main__":
    sys.exit(main())
