"""The GC worker's loop: a kworker running the zram GC work item whenever it is queued.

queue_work() (kernel/workqueue.py) sets PENDING; this loop clears it as a pass starts and runs
the strategy's drain through gc_hooks. ``idle_poll`` (scenario ``workers.gc.idle_poll``, 0 by
default) lets the idle worker poll PENDING for a while before it sleeps, as cpuidle-haltpoll
does in a guest: a wake-up within the window costs the waker the profile's modelled ``wake_up``
instead of a real futex syscall, which on a VM costs several microseconds, far more than a
kworker wake-up on the board.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.atomics import (
    atomic_load,
    atomic_store,
    atomic_xchg,
    cpu_relax,
    futex_wait,
    futex_wake,
    read_clock,
)
from emul.kernel.context import (
    REGION_DESIGN,
    W_GC_BUSY,
    W_GC_FREED,
    W_GC_IDLE_AT,
    W_GC_PASSES,
    W_GC_POLL_NS,
    W_GC_SLEEPS,
    Ctx,
    note_cpu,
    note_event,
    step_enter,
    step_exit,
)
from emul.kernel.gc_hooks import gc_backlog, gc_drain
from emul.kernel.mm_types import Mm
from emul.kernel.workqueue import GC_FLUSH, GC_IDLE, GC_PENDING, GC_POLLING, GC_STOP
from emul.kernel.zram import Zram, chaos_point


@njit(cache=True, _nrt=False)
def gc_worker_run(zram: Zram, mm: Mm, ctx: Ctx, sleep_timeout_ns: int) -> None:
    """Serve GC work items until the controller sets GC_STOP."""
    ctl = zram.gc_ctl
    while atomic_load(ctl, GC_STOP) == 0:
        note_cpu(ctx)
        chaos_point(zram, ctx)
        if atomic_xchg(ctl, GC_PENDING, 0) != 0:
            t0 = read_clock()
            before = ctx.stat[W_GC_FREED]
            step_enter(ctx, REGION_DESIGN)     # the strategy's drain: its own work and steps
            ctx.stat[W_GC_FREED] += gc_drain(zram, mm, ctx)
            step_exit(ctx)
            t1 = read_clock()
            note_event(ctx, t0, t1, ctx.stat[W_GC_FREED] - before)
            ctx.stat[W_GC_PASSES] += 1
            ctx.stat[W_GC_BUSY] += t1 - t0
            if gc_backlog(zram) == 0:
                ctx.stat[W_GC_IDLE_AT] = t1
            continue
        atomic_store(ctl, GC_IDLE, 1)
        poll = ctx.stat[W_GC_POLL_NS]
        if poll > 0:
            atomic_store(ctl, GC_POLLING, 1)
            t0 = read_clock()
            while (atomic_load(ctl, GC_PENDING) == 0 and atomic_load(ctl, GC_STOP) == 0
                   and read_clock() - t0 < poll):
                cpu_relax()
            atomic_store(ctl, GC_POLLING, 0)
        if atomic_load(ctl, GC_PENDING) == 0 and atomic_load(ctl, GC_STOP) == 0:
            futex_wait(ctl, GC_PENDING, 0, sleep_timeout_ns)
            ctx.stat[W_GC_SLEEPS] += 1
        atomic_store(ctl, GC_IDLE, 0)


@njit(cache=True, _nrt=False)
def gc_worker_stop(zram: Zram) -> None:
    """Ask the GC worker to leave its loop, waking it if it sleeps."""
    atomic_store(zram.gc_ctl, GC_STOP, 1)
    atomic_store(zram.gc_ctl, GC_PENDING, 1)
    futex_wake(zram.gc_ctl, GC_PENDING, 1 << 30)


@njit(cache=True, _nrt=False)
def gc_worker_reset(zram: Zram) -> None:
    """Clear the work item's words before a phase (the worker is not running)."""
    atomic_store(zram.gc_ctl, GC_STOP, 0)
    atomic_store(zram.gc_ctl, GC_PENDING, 0)
    atomic_store(zram.gc_ctl, GC_IDLE, 0)
    atomic_store(zram.gc_ctl, GC_POLLING, 0)
    atomic_store(zram.gc_ctl, GC_FLUSH, 0)
