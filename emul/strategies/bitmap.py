"""bitmap: the RFC's GC — gc_map scanned with find_next_bit, slot trylock, a cap in slots.

"[RFC PATCH] zram: support asynchronous GC for lazy slot freeing", Barry Song, linux-mm,
2026-04-12 (Msg-ID 20260412060450.15813-1-baohua@kernel.org). try_slot_lazy_free() sets the
slot's bit in gc_map and bumps gc_slots unless gc_slots reached the cap (30000), then
queue_work()s the GC; gc_slots_free() walks gc_map with find_next_bit from 0, trylocks each
slot, frees it if its bit is still set, and calls cond_resched() after each. Kairui Song's review
(2026-04-12) notes the walk is O(n) per pass when the pending slots sit at the tail.

emul's one addition: a pass that had to skip locked slots re-queues the work item, or slots
skipped after the last enqueue would wait forever (the RFC relies on a later enqueue).
"""
from __future__ import annotations

from numba import njit

from emul.kernel.bitops import find_next_bit
from emul.kernel.context import W_GC_SKIPPED, W_SCAN_WORDS, Ctx
from emul.kernel.mm_types import Mm
from emul.kernel.workqueue import cond_resched, queue_work
from emul.kernel.zram import ZP_NR_SLOTS, Zram
from emul.strategies.common import gc_free_queued, lazy_queue_slot

NAME = "bitmap"
SUMMARY = "RFC v1 (Barry Song, 2026-04-12): gc_map walked with find_next_bit, slot trylock"
FAMILY = "slot queue"
NEEDS_GC = True
DEFAULT_CAP_SLOTS = 30000


def queue_words(nr_slots: int, cap_slots: int) -> int:
    return 0   # gc_map is the whole queue


@njit(cache=True, _nrt=False, inline="always")   # per slot: see gc_hooks.gc_try_lazy_free
def enqueue(zram: Zram, ctx: Ctx, index: int) -> int:
    """try_slot_lazy_free(): under the slot lock."""
    lazy = lazy_queue_slot(zram, ctx, index)
    if lazy > 0:
        queue_work(zram, ctx)
    return lazy


@njit(cache=True, _nrt=False)
def drain(zram: Zram, mm: Mm, ctx: Ctx) -> int:
    """gc_slots_free(): one walk of gc_map."""
    num_pages = zram.params[ZP_NR_SLOTS]
    freed = 0
    skipped = 0
    index = find_next_bit(zram.gc_map, num_pages, 0)
    while index < num_pages:
        done = gc_free_queued(zram, ctx, index, False)
        if done < 0:
            skipped += 1
        else:
            freed += done
            cond_resched(ctx)
        index = find_next_bit(zram.gc_map, num_pages, index + 1)
    ctx.stat[W_GC_SKIPPED] += skipped
    ctx.stat[W_SCAN_WORDS] += (num_pages + 63) >> 6
    if skipped:
        queue_work(zram, ctx)
    return freed
