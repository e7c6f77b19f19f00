"""The swap device (mm/swapfile.c): the slot allocator and swap_entry_free.

Freeing a swap entry ends, as in mm/swapfile.c, in swap_range_free -> swap_slot_free_notify ->
zram_slot_free_notify; the slot becomes allocatable again only after the notify returned.
Lock order: si->lock is taken after the notify, never around it.
"""
from __future__ import annotations

from numba import njit

# a module, not its names: notify -> gc_hooks -> strategies -> mm_async -> here
from emul.kernel import notify
from emul.kernel.atomics import atomic_cas, atomic_fetch_add, atomic_load, atomic_store_release
from emul.kernel.context import COST_SWAP_ENTRY_FREE, W_SWAP_FREED, Ctx, model_cost
from emul.kernel.locking import spin_lock, spin_unlock
from emul.kernel.lockstat import LOCK_SWAP
from emul.kernel.mm_types import SWAP_CURSOR, SWAP_RECENT_TOP, Mm
from emul.kernel.zram import Zram


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


@njit(cache=True, _nrt=False)
def swap_entry_free(zram: Zram, mm: Mm, ctx: Ctx, slot: int) -> None:
    """Drop one reference to a swap slot; the last one frees it through the zram notify."""
    model_cost(ctx, COST_SWAP_ENTRY_FREE)
    # the last reference moves 1 -> -1 (freeing): not allocatable until the notify returned
    if atomic_cas(mm.swap_map, slot, 1, -1) != 1:
        atomic_fetch_add(mm.swap_map, slot, -1)
        return
    notify.zram_slot_free_notify(zram, ctx, slot)
    ctx.stat[W_SWAP_FREED] += 1
    spin_lock(mm.swap_lock, 0, ctx, LOCK_SWAP)        # swap_range_free, under the device lock
    atomic_store_release(mm.swap_map, slot, 0)
    top = mm.swap_lock[SWAP_RECENT_TOP]
    if top < mm.swap_recent.size:
        mm.swap_recent[top] = slot
        mm.swap_lock[SWAP_RECENT_TOP] = top + 1
    spin_unlock(mm.swap_lock, 0, ctx, LOCK_SWAP)
