"""mm-async: vivo's design -- an exiting process hands its swap entries to a kworker.

Zhiguo Jiang (vivo), "mm: tlb swap entries batch async release" v3, 2024-08-05, and Lei Liu
(vivo), "mm: swap: Gather swap entries and batch async release", 2025-09-09
(docs/kernel-model.md, "History of proposals"). The change sits in mm, not zram: zap_pte_range
of the dying process parks each swap entry (still referenced, so nobody can reuse the slot) in an
array (``defer_swap_entry``, reached through gc_hooks.gc_defer_swap_entry), and a kworker
(``drain``) later runs the whole swap_entry_free -> zram_slot_free_notify -> slot_free for it
(swap_entry_free_sync: the notify without the offer to a strategy, which for mm-async is LAZY_NO).
Swap-in faults and reclaim free their entries synchronously as today.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.atomics import atomic_fetch_add
from emul.kernel.context import W_IN_PLACE, Ctx
from emul.kernel.locking import spin_lock, spin_unlock
from emul.kernel.lockstat import LOCK_GC_QUEUE
from emul.kernel.mm_types import Mm
from emul.kernel.swapfile import swap_entry_free_sync
from emul.kernel.workqueue import cond_resched, queue_work
from emul.kernel.zram import (LAZY_NO, LAZY_QUEUED, LAZY_REFUSED, ST_GC_BYTES, ST_GC_SLOTS, Zram,
    get_slot_size)
from emul.strategies.common import (DB_LOCK, QH_DRAIN_LOCK, cap_or_device, dbuf_base, dbuf_emptied,
    dbuf_pending, dbuf_push, dbuf_queue, dbuf_room, dbuf_take, gc_drain_begin, gc_reserve)

NAME = "mm-async"
SUMMARY = "vivo: the exiting process hands its swap entries to a kworker (mm level, no cap)"
FAMILY = "pre-zram"
NEEDS_GC = True
DEFAULT_CAP_SLOTS = 0

queue_words, setup_queue = dbuf_queue(cap_or_device)


@njit(cache=True, _nrt=False)
def defer_swap_entry(zram: Zram, ctx: Ctx, slot: int) -> int:
    """The dying process parks swap entry slot for the kworker: LAZY_QUEUED, or LAZY_REFUSED
    over the cap (the caller frees it here)."""
    q = zram.gc_queue
    base = dbuf_base(q, 0)
    spin_lock(q, base + DB_LOCK, ctx, LOCK_GC_QUEUE)
    ok = dbuf_room(q, base) and gc_reserve(zram, ctx, slot)
    if ok:
        dbuf_push(q, base, slot)
    spin_unlock(q, base + DB_LOCK, ctx, LOCK_GC_QUEUE)
    if not ok:
        return LAZY_REFUSED
    queue_work(zram, ctx)
    return LAZY_QUEUED


@njit(cache=True, _nrt=False, inline="always")   # per slot: see gc_hooks.gc_try_lazy_free
def enqueue(zram: Zram, ctx: Ctx, index: int) -> int:
    return LAZY_NO     # zram itself frees in place; the deferral happened before, in mm


@njit(cache=True, _nrt=False)
def drain(zram: Zram, mm: Mm, ctx: Ctx) -> int:
    """vivo's kworker: free the swap entries dying processes handed over.

    Returns the slots its zram_slot_free_notify calls freed: those count as GC frees, not as the
    in-place frees the notify counts them as (a slot the notify found locked is a miss).
    """
    q = zram.gc_queue
    if not gc_drain_begin(zram, ctx):
        return 0
    in_place = ctx.stat[W_IN_PLACE]
    base = dbuf_base(q, 0)
    while dbuf_pending(q, base) != 0:
        start, n, half = dbuf_take(q, base, ctx)
        for k in range(n):
            slot = q[start + k]
            size = get_slot_size(zram, slot)
            swap_entry_free_sync(zram, mm, ctx, slot)   # its notify would say LAZY_NO
            atomic_fetch_add(zram.stats, ST_GC_SLOTS, -1)
            atomic_fetch_add(zram.stats, ST_GC_BYTES, -size)
            cond_resched(ctx)
        dbuf_emptied(q, base, half)
    spin_unlock(q, QH_DRAIN_LOCK, ctx, LOCK_GC_QUEUE)
    freed = ctx.stat[W_IN_PLACE] - in_place
    ctx.stat[W_IN_PLACE] = in_place
    return freed
