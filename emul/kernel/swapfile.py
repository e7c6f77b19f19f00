"""The swap device (mm/swapfile.c): the slot allocator, and the two ends of freeing an entry.

Freeing a swap entry (kernel/notify.py's swap_entry_free) drops the reference here
(swap_entry_put), lets zram free the content (zram_slot_free_notify), and then makes the slot
allocatable again (swap_range_free). Lock order: si->lock is taken after the notify, never
around it.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.atomics import atomic_cas, atomic_fetch_add, atomic_load, atomic_store_release
from emul.kernel.context import (
    COST_SWAP_ENTRY_FREE,
    W_SWAP_FREED,
    Ctx,
    model_cost,
    step_enter,
    step_exit,
)
from emul.kernel.locking import spin_lock, spin_unlock
from emul.kernel.lockstat import LOCK_SWAP
from emul.kernel.mm_types import SWAP_CURSOR, SWAP_RECENT_TOP, Mm
from emul.kernel.zram import Zram, zram_slot_free_sync


@njit(cache=True, _nrt=False)
def get_swap_slot(mm: Mm, ctx: Ctx) -> int:
    """Allocate a free swap slot (-1: the device is full): the most recently freed one if any
    is still free, else the next free one from the cursor."""
    n = mm.swap_map.size
    spin_lock(mm.swap_lock, 0, ctx, LOCK_SWAP)
    slot = -1
    while mm.swap_lock[SWAP_RECENT_TOP] > 0:
        mm.swap_lock[SWAP_RECENT_TOP] -= 1
        s = mm.swap_recent[mm.swap_lock[SWAP_RECENT_TOP]]
        if atomic_load(mm.swap_map, s) == 0:
            atomic_store_release(mm.swap_map, s, 1)
            spin_unlock(mm.swap_lock, 0, ctx, LOCK_SWAP)
            return s
    start = mm.swap_lock[SWAP_CURSOR]
    for k in range(n):
        s = start + k
        if s >= n:
            s -= n
        if atomic_load(mm.swap_map, s) == 0:
            atomic_store_release(mm.swap_map, s, 1)
            slot = s
            mm.swap_lock[SWAP_CURSOR] = s + 1 if s + 1 < n else 0
            break
    spin_unlock(mm.swap_lock, 0, ctx, LOCK_SWAP)
    return slot


@njit(cache=True, _nrt=False, inline="always")
def swap_entry_put(mm: Mm, ctx: Ctx, slot: int) -> bool:
    """Drop one reference to a swap slot: True if it was the last (the caller then frees the
    slot's zram content and calls swap_range_free). The last reference moves 1 -> -1
    (freeing): not allocatable until the notify has returned."""
    model_cost(ctx, COST_SWAP_ENTRY_FREE)
    if atomic_cas(mm.swap_map, slot, 1, -1) != 1:
        atomic_fetch_add(mm.swap_map, slot, -1)
        return False
    return True


@njit(cache=True, _nrt=False)
def swap_range_free(mm: Mm, ctx: Ctx, slot: int) -> None:
    """The slot is free again, and the allocator takes it first (under the device lock)."""
    spin_lock(mm.swap_lock, 0, ctx, LOCK_SWAP)
    atomic_store_release(mm.swap_map, slot, 0)
    top = mm.swap_lock[SWAP_RECENT_TOP]
    if top < mm.swap_recent.size:
        mm.swap_recent[top] = slot
        mm.swap_lock[SWAP_RECENT_TOP] = top + 1
    spin_unlock(mm.swap_lock, 0, ctx, LOCK_SWAP)


@njit(cache=True, _nrt=False)
def swap_entry_free_sync(zram: Zram, mm: Mm, ctx: Ctx, slot: int) -> None:
    """swap_entry_free with today's zram notify, which asks no strategy: what a kworker that
    already took the entry off the dying process (mm-async) runs. (The RFC's swap_entry_free,
    whose notify offers the slot to the strategy, is kernel/notify.py's; this one cannot call
    it: the strategies sit above the notify's hook.)"""
    step_enter(ctx, COST_SWAP_ENTRY_FREE)
    if swap_entry_put(mm, ctx, slot):
        zram_slot_free_sync(zram, ctx, slot)
        ctx.stat[W_SWAP_FREED] += 1
        swap_range_free(mm, ctx, slot)
    step_exit(ctx)
