"""mm-async: vivo's design -- an exiting process hands its swap entries to a kworker.

Zhiguo Jiang (vivo), "mm: tlb swap entries batch async release" v3, 2024-08-05, and Lei Liu
(vivo), "mm: swap: Gather swap entries and batch async release", 2025-09-09 (KERNEL-MODEL.md,
"History of proposals"). The change sits in mm, not zram: zap_pte_range of the dying process
parks each swap entry (still referenced, so nobody can reuse the slot) in an array, and a kworker
later runs the whole swap_entry_free -> zram_slot_free_notify -> slot_free for it. Swap-in faults
and reclaim free their entries synchronously as today. The kworker's side is mm_async_work in
emul/kernel/mm.py (it needs the swap map); here is the hand-off and the queue.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.context import Ctx
from emul.kernel.locking import spin_lock, spin_unlock
from emul.kernel.lockstat import LOCK_GC_QUEUE
from emul.kernel.zram import Zram
from emul.strategies.common import (DB_LOCK, LAZY_NO, cap_or_device, dbuf_base, dbuf_push,
    dbuf_queue, dbuf_room, gc_reserve, queue_work)

NAME = "mm-async"
SUMMARY = "vivo: the exiting process hands its swap entries to a kworker (mm level, no cap)"
NEEDS_GC = True
DEFAULT_CAP_SLOTS = 0


queue_words, setup_queue = dbuf_queue(cap_or_device)


@njit(cache=True, _nrt=False)
def hand_off(zram: Zram, ctx: Ctx, slot: int) -> bool:
    """The dying process parks swap entry slot for the kworker; False: free it here (cap)."""
    q = zram.gc_queue
    base = dbuf_base(q, 0)
    spin_lock(q, base + DB_LOCK, ctx, LOCK_GC_QUEUE)
    ok = dbuf_room(q, base) and gc_reserve(zram, ctx, slot)
    if ok:
        dbuf_push(q, base, slot)
    spin_unlock(q, base + DB_LOCK, ctx, LOCK_GC_QUEUE)
    if ok:
        queue_work(zram, ctx)
    return ok


@njit(cache=True, _nrt=False, inline="always")   # per slot: see dispatch.gc_try_lazy_free
def enqueue(zram: Zram, ctx: Ctx, index: int) -> int:
    return LAZY_NO     # zram itself frees in place; the deferral happened before, in mm


@njit(cache=True, _nrt=False)
def drain(zram: Zram, ctx: Ctx) -> int:
    return 0           # the kworker runs mm_async_work instead (emul/kernel/workqueue.py)
