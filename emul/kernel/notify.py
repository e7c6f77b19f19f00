"""zram_slot_free_notify: where a freed swap entry reaches zram, and where strategies plug in.

The RFC's change is the one line in the middle: instead of slot_free() in place, offer the slot
to the GC strategy (try_slot_lazy_free); if the strategy refuses (over its cap, or ``sync``),
free in place as today.
"""
from __future__ import annotations

from numba import njit

# a module, not its names: gc_hooks -> strategies -> mm_async -> swapfile -> here
from emul.kernel import gc_hooks
from emul.kernel.atomics import atomic_fetch_add
from emul.kernel.context import W_FALLBACK, W_IN_PLACE, W_LAZY, W_MISS_FREE, Ctx
from emul.kernel.zram import (LAZY_QUEUED, LAZY_REFUSED, ST_MISS_FREE, ST_NOTIFY_FREE, Zram,
    slot_free, slot_trylock, slot_unlock)


@njit(cache=True, _nrt=False)
def zram_slot_free_notify(zram: Zram, ctx: Ctx, index: int) -> None:
    """Free a slot whose last swap reference went away, in place or through the strategy."""
    atomic_fetch_add(zram.stats, ST_NOTIFY_FREE, 1)
    if not slot_trylock(zram, ctx, index):
        atomic_fetch_add(zram.stats, ST_MISS_FREE, 1)
        ctx.stat[W_MISS_FREE] += 1
        return
    lazy = gc_hooks.gc_try_lazy_free(zram, ctx, index)
    if lazy == LAZY_QUEUED:
        ctx.stat[W_LAZY] += 1
    else:
        if lazy == LAZY_REFUSED:
            ctx.stat[W_FALLBACK] += 1
        slot_free(zram, ctx, index)
        ctx.stat[W_IN_PLACE] += 1
    slot_unlock(zram, ctx, index)
