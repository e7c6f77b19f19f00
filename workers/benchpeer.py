"""The second process of ``emul bench``: the far end of a lock hand-off and of the control plane.

Started by emul/bench.py through the same supervisor as every worker; its phases:

  echo     (ungated) answer ``done`` at once: one control-plane round trip
  handoff  arrive at the start gate, then take turns on the slot lock with the bench
"""
from __future__ import annotations

from emul.harness.microbench import OnCpu, loop_handoff
from workers.base import Worker, run


def echo(w: Worker, args: dict) -> None:
    return None


def handoff(w: Worker, args: dict) -> dict:
    on = OnCpu()
    early = loop_handoff(w.zram, w.ctx, int(args["index"]), 1, int(args["turns"]))
    return {"early": int(early), "preempted": on.preempted()}


WORKER = Worker("benchpeer", {"echo": echo, "handoff": handoff})

if __name__ == "__main__":
    run(WORKER)
