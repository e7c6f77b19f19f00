"""`emul run --chaos SEED`: one fault at a random moment, to test that a run fails cleanly.

The fault is one of the ways a long study dies: a worker killed (SIGKILL), a worker that stops
answering (SIGSTOP), the controller interrupted (SIGINT, SIGTERM), a worker raising inside
compiled code or in its Python code. The seed picks the kind (unless --chaos-kind names it), the
moment (50 ms to 1.5 s after the workers are up) and the victim among the measured actors and
GC workers. Whatever it is, the run must end within seconds with exit 3, partial results marked
"aborted" with the reason, and nothing left behind.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field

KINDS = ("kill", "stop", "sigint", "sigterm", "raise-compiled", "raise-python")


@dataclass
class Chaos:
    seed: int
    kind: str | None = None
    delay_s: float = 0.0
    fired: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.kind = self.kind or rng.choice(KINDS)
        self.delay_s = rng.uniform(0.05, 1.5)
        self._pick = rng.random()
        self._timer: threading.Timer | None = None
        self._done = threading.Event()

    def arm(self, controllers: list) -> None:
        """Start the clock once every group's workers are up."""
        self.controllers = controllers
        self.t0 = time.monotonic()
        self._timer = threading.Timer(self.delay_s, self.fire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        self._done.set()
        if self._timer is not None:
            self._timer.cancel()

    def fire(self) -> None:
        if self._done.is_set():
            return
        ctl = self.controllers[0]
        targets = [w for w in ctl.workers if w.role != "swapout"]
        w = targets[int(self._pick * len(targets)) % len(targets)]
        self.fired = {"seed": self.seed, "kind": self.kind, "at_s": round(time.monotonic() - self.t0, 3),
                      "phase": ctl.phase}
        if self.kind in ("sigint", "sigterm"):
            self.fired["target"] = "controller"
            os.kill(os.getpid(), signal.SIGINT if self.kind == "sigint" else signal.SIGTERM)
            return
        self.fired["target"] = w.name
        if self.kind == "kill":
            os.kill(w.popen.pid, signal.SIGKILL)
        elif self.kind == "stop":
            os.kill(w.popen.pid, signal.SIGSTOP)
        else:   # the controller applies it at every repeat's start too (the arena is reset)
            ctl.chaos_raise = (self.kind, w.index)
            ctl.apply_chaos()
