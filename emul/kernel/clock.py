"""Time in compiled code: ticks of the constant-rate counter, converted with a measured factor.

``read_clock()`` (atomics.py) is a few nanoseconds and never leaves user space. The controller
measures ticks per nanosecond against ``time.perf_counter_ns()`` once per run and hands the factor
to every worker, so all processes convert with the same number.
"""
from __future__ import annotations

import time

import numpy as np
from numba import njit

from emul.kernel.atomics import read_clock


@njit(cache=True, _nrt=False)
def clock_now() -> int:
    return read_clock()


@njit(cache=True, _nrt=False)
def delay_ticks(ticks: int) -> None:
    """Busy-wait ``ticks``: how a modelled cost (work emul does not physically do) is paid.

    A spin on the counter rather than a sleep, because the kernel work it stands for keeps the
    CPU busy and non-preemptible for that long.
    """
    if ticks <= 0:
        return
    end = read_clock() + ticks
    while read_clock() < end:
        pass


def measure_ticks_per_ns(duration_s: float = 0.05) -> float:
    """Ticks of read_clock per nanosecond of CLOCK_MONOTONIC, the median of five short windows."""
    clock_now()  # compile before timing
    ratios = []
    for _ in range(5):
        t0, c0 = time.perf_counter_ns(), clock_now()
        target = t0 + int(duration_s * 1e9 / 5)
        while time.perf_counter_ns() < target:
            pass
        t1, c1 = time.perf_counter_ns(), clock_now()
        ratios.append((c1 - c0) / max(1, t1 - t0))
    return float(np.median(ratios))
