"""The GC's work item: the gc_ctl futex words, queue_work, and cond_resched.

Workqueue semantics: queue_work() sets PENDING; the worker (kernel/gc_worker.py) clears PENDING
as the work item starts, so an enqueue during a pass queues one more pass. With nothing pending
the worker sleeps on a futex on the PENDING word (a real sleep: it gives its CPU back), and
queue_work wakes it only when it is idle, as the kernel wakes an idle worker pool.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.atomics import atomic_load, atomic_store, atomic_xchg, futex_wake
from emul.kernel.context import COST_WAKE_UP, W_HEARTBEAT, W_WAKE_POLLED, W_WAKEUPS, Ctx, model_cost
from emul.kernel.zram import Zram

# gc_ctl futex words (int32)
GC_PENDING = 0     # WORK_STRUCT_PENDING: set by queue_work, cleared when the work item starts
GC_IDLE = 1        # 1 while the worker sleeps (or is about to) on GC_PENDING
GC_STOP = 2        # the controller asks the worker to leave its loop
GC_POLLING = 3     # 1 while the idle worker polls PENDING before it sleeps (gc idle_poll)
GC_FLUSH = 4       # 1 once the actors are done: the worker may take what producers still hold
GC_CTL_WORDS = 16


@njit(cache=True, _nrt=False, inline="always")
def queue_work(zram: Zram, ctx: Ctx) -> None:
    """Schedule the GC work item: set PENDING, and wake the worker only if it is idle.

    An idle worker that still polls (its idle_poll) sees PENDING by itself; the waker then pays
    the modelled wake_up (what try_to_wake_up of a kworker costs on the board) instead of the
    host's futex syscall. PENDING is set before POLLING is read and the worker clears POLLING
    before it re-reads PENDING (all seq_cst), so one of the two always sees the other.
    """
    ctl = zram.gc_ctl
    if atomic_xchg(ctl, GC_PENDING, 1) != 0 or atomic_load(ctl, GC_IDLE) == 0:
        return
    if atomic_load(ctl, GC_POLLING) != 0:
        model_cost(ctx, COST_WAKE_UP)
        ctx.stat[W_WAKE_POLLED] += 1
        return
    futex_wake(ctl, GC_PENDING, 1)
    ctx.stat[W_WAKEUPS] += 1


@njit(cache=True, _nrt=False)
def flush_work(zram: Zram) -> None:
    """Queue the work item once more from the controller once the actors are done (the
    kernel's zs_free_deferred_flush): a strategy that queues its worker only per full page
    leaves the last partial one otherwise. No worker's wake-up count is charged."""
    ctl = zram.gc_ctl
    atomic_store(ctl, GC_FLUSH, 1)
    atomic_xchg(ctl, GC_PENDING, 1)
    futex_wake(ctl, GC_PENDING, 1)


@njit(cache=True, _nrt=False, inline="always")
def cond_resched(ctx: Ctx) -> None:
    """A voluntary yield point in a long kernel loop; emul's GC marks progress here."""
    ctx.stat[W_HEARTBEAT] += 1
