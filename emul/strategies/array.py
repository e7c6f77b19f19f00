"""array: one shared array of queued slot indices under a spinlock, emptied by the GC.

Barry Song's reply in the RFC thread (linux-mm, 2026-04-18): "a hierarchical bitmap, an XArray,
or even a simple array could work. If we cap it at 64MB, the array would be at most 128KB on a
PAGE_SIZE=4KB system" -- 64 MiB of pages is 16384 entries, the default cap here. The drain costs
O(queued), not O(device size); every free path CPU takes the same array lock.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.context import Ctx
from emul.kernel.mm_types import Mm
from emul.kernel.zram import Zram
from emul.strategies.common import cap_and_stale, dbuf_queue, drain_slot_bufs, queue_slot_in_buf

NAME = "array"
SUMMARY = "one array of queued slot indices under a spinlock (64 MiB of 4 KiB pages)"
FAMILY = "slot queue"
NEEDS_GC = True
DEFAULT_CAP_SLOTS = 16384


queue_words, setup_queue = dbuf_queue(cap_and_stale)   # sizes gc_queue for the controller


@njit(cache=True, _nrt=False, inline="always")   # per slot: see gc_hooks.gc_try_lazy_free
def enqueue(zram: Zram, ctx: Ctx, index: int) -> int:
    return queue_slot_in_buf(zram, ctx, index, 0)


@njit(cache=True, _nrt=False)
def drain(zram: Zram, mm: Mm, ctx: Ctx) -> int:
    return drain_slot_bufs(zram, ctx)
