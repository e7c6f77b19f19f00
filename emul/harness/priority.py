"""Nice -20 in a session of its own: every measured worker of a run, and calibrate's children.

With root rights (or CAP_SYS_NICE) another CPU-bound task on the same CPU then takes about 1 %
of the worker's CPU rather than half (CFS weights 88761 against 1024). With autogroup scheduling
(kernel.sched_autogroup_enabled) a process's nice only weighs within its session's group, so
the process first starts a session of its own and sets that group's nice too. Without the right
nothing changes, and the run's disturbed-repeat check (emul/harness/disturbance.py) is what
stands between another task and the figures.
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


def nice_now() -> int:
    """This process's nice value (what boost() achieved, in the worker that called it)."""
    return os.getpriority(os.PRIO_PROCESS, 0)


def can_boost() -> bool:
    """Whether boost() will take effect: said in the progress and recorded in the profile."""
    return os.geteuid() == 0 or os.getpriority(os.PRIO_PROCESS, 0) <= BOOST_NICE
