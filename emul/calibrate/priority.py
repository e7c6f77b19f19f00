"""Nice -20 in a session of its own, for the measuring children and the emulated runs.

With root rights (or CAP_SYS_NICE) another CPU-bound task then takes about 1 % of their CPU
rather than half. With autogroup scheduling (kernel.sched_autogroup_enabled) a process's nice
only weighs within its session's group, so the process first starts a session of its own and
sets that group's nice too. Still, calibrate on an otherwise idle machine: the emulated runs
have no preemption filter.
"""
from __future__ import annotations

import os

BOOST_NICE = -20


def boost() -> None:
    """Run at nice -20 when allowed. Used alike for the measuring children and the emul runs
    (whose workers inherit it); the group goes away with them. Every step may fail quietly:
    without the right the run is only more exposed to other tasks."""
    try:
        os.setsid()
    except OSError:
        pass
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(BOOST_NICE))
    except OSError:
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, BOOST_NICE)
    except OSError:
        pass


def can_boost() -> bool:
    """Whether boost() will take effect: said in the progress and recorded in the profile."""
    return os.geteuid() == 0 or os.getpriority(os.PRIO_PROCESS, 0) <= BOOST_NICE
