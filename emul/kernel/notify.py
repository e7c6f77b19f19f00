"""Where a freed swap entry reaches zram, and where the strategies plug in.

swap_entry_free (mm/swapfile.c: the last reference to a swap slot gone) ends in
swap_range_free -> swap_slot_free_notify -> zram_slot_free_notify; the slot becomes allocatable
again only after the notify returned. The RFC's change is the one line in the middle of the
notify: instead of slot_free() in place, offer the slot to the GC strategy (try_slot_lazy_free,
here gc_hooks.gc_try_lazy_free); if the strategy refuses (over its cap, or ``sync``), free in
place as today (kernel/zram.py's zram_slot_free_sync is the notify without the offer).
"""
from __future__ import annotations

from numba import njit

from emul.kernel.context import (
    COST_SWAP_ENTRY_FREE,
    REGION_DESIGN,
    W_FALLBACK,
    W_IN_PLACE,
    W_LAZY,
    W_SWAP_FREED,
    Ctx,
    step_enter,
    step_exit,
)
from emul.kernel.gc_hooks import gc_try_lazy_free
from emul.kernel.mm_types import Mm
from emul.kernel.swapfile import swap_entry_put, swap_range_free
from emul.kernel.zram import (
    LAZY_QUEUED,
    LAZY_REFUSED,
    Zram,
    slot_free,
    slot_unlock,
    zram_slot_free_trylock,
)


@njit(cache=True, _nrt=False)
def zram_slot_free_notify(zram: Zram, ctx: Ctx, index: int) -> None:
    """Free a slot whose last swap reference went away, through the strategy or in place."""
    if not zram_slot_free_trylock(zram, ctx, index):
        return
    step_enter(ctx, REGION_DESIGN)      # the strategy's own work: not part of any target
    lazy = gc_try_lazy_free(zram, ctx, index)
    step_exit(ctx)
    if lazy == LAZY_QUEUED:
        ctx.stat[W_LAZY] += 1
    else:
        if lazy == LAZY_REFUSED:
            ctx.stat[W_FALLBACK] += 1
        slot_free(zram, ctx, index)
        ctx.stat[W_IN_PLACE] += 1
    slot_unlock(zram, ctx, index)


@njit(cache=True, _nrt=False)
def swap_entry_free(zram: Zram, mm: Mm, ctx: Ctx, slot: int) -> None:
    """Drop one reference to a swap slot; the last one frees it through the zram notify."""
    step_enter(ctx, COST_SWAP_ENTRY_FREE)
    if swap_entry_put(mm, ctx, slot):
        zram_slot_free_notify(zram, ctx, slot)
        ctx.stat[W_SWAP_FREED] += 1
        swap_range_free(mm, ctx, slot)
    step_exit(ctx)
