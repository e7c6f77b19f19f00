"""The start gate: every worker of a phase begins within microseconds of the others.

Workers arrive (an atomic count), then spin on the GO word until the controller writes this
phase's number there. Spinning rather than sleeping, because a futex wake-up reaches each
waiter at a different moment. The spin is bounded, so a worker whose controller is gone leaves.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.atomics import atomic_fetch_add, atomic_load, cpu_relax, read_clock
from emul.kernel.layout import CTL_GATE_ARRIVE, CTL_GATE_GO


@njit(cache=True, _nrt=False)
def gate_wait(ctl, seq: int, timeout_ticks: int) -> bool:
    atomic_fetch_add(ctl, CTL_GATE_ARRIVE, 1)
    deadline = read_clock() + timeout_ticks
    while atomic_load(ctl, CTL_GATE_GO) < seq:
        cpu_relax()
        if read_clock() > deadline:
            return False
    return True
