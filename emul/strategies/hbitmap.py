"""hbitmap: the RFC's gc_map with a summary level, so the GC's scan skips empty words.

Kairui Song's review of the RFC (linux-mm, 2026-04-12): "find_next_bit does a O(n) looks up for
every gc call looks really expensive if the pending slot is at tail"; Barry Song's answer names
"a hierarchical bitmap, an XArray, or even a simple array". Here gc_map stays the truth of what
is queued; ``summary`` (in gc_queue) has one bit per gc_map word, set after the slot's bit. The
drain clears a summary bit *before* it reads the word it covers, so a slot marked meanwhile
either is seen now or leaves the summary bit set for the next pass.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.atomics import atomic_fetch_and, atomic_fetch_or, atomic_load, count_trailing_zeros
from emul.kernel.bitops import find_next_bit
from emul.kernel.context import W_GC_SKIPPED, W_SCAN_WORDS, Ctx
from emul.kernel.mm_types import Mm
from emul.kernel.workqueue import cond_resched, queue_work
from emul.kernel.zram import ZP_NR_SLOTS, Zram
from emul.strategies.common import gc_free_queued, lazy_queue_slot

NAME = "hbitmap"
SUMMARY = "bitmap plus a summary level (one bit per gc_map word): the walk skips empty words"
FAMILY = "slot queue"
NEEDS_GC = True
DEFAULT_CAP_SLOTS = 30000


def queue_words(nr_slots: int, cap_slots: int) -> int:
    return ((nr_slots + 63) // 64 + 63) // 64   # the summary bitmap


@njit(cache=True, _nrt=False, inline="always")   # per slot: see gc_hooks.gc_try_lazy_free
def enqueue(zram: Zram, ctx: Ctx, index: int) -> int:
    lazy = lazy_queue_slot(zram, ctx, index)
    if lazy > 0:
        word = index >> 6
        atomic_fetch_or(zram.gc_queue, word >> 6, 1 << (word & 63))
        queue_work(zram, ctx)
    return lazy


@njit(cache=True, _nrt=False)
def drain(zram: Zram, mm: Mm, ctx: Ctx) -> int:
    """Walk the summary; for each marked gc_map word, free the slots it holds."""
    num_pages = zram.params[ZP_NR_SLOTS]
    nwords = (num_pages + 63) >> 6
    summary = zram.gc_queue
    freed = 0
    skipped = 0
    scanned = 0
    word = find_next_bit(summary, nwords, 0)
    while word < nwords:
        atomic_fetch_and(summary, word >> 6, ~(1 << (word & 63)))
        bits = atomic_load(zram.gc_map, word)
        scanned += 1
        left = False
        while bits != 0:
            index = (word << 6) + count_trailing_zeros(bits)
            bits &= bits - 1
            done = gc_free_queued(zram, ctx, index, False)
            if done < 0:
                skipped += 1
                left = True
            else:
                freed += done
                cond_resched(ctx)
        if left:
            atomic_fetch_or(summary, word >> 6, 1 << (word & 63))
        word = find_next_bit(summary, nwords, word + 1)
    ctx.stat[W_GC_SKIPPED] += skipped
    ctx.stat[W_SCAN_WORDS] += scanned + ((nwords + 63) >> 6)
    if skipped:
        queue_work(zram, ctx)
    return freed

