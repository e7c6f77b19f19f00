"""array: one shared array of queued slot indices under a spinlock, emptied by the GC.

Barry Song's reply in the RFC thread (linux-mm, 2026-04-18): "a hierarchical bitmap, an XArray,
or even a simple array could work. If we cap it at 64MB, the array would be at most 128KB on a
PAGE_SIZE=4KB system" -- 64 MiB of pages is 16384 entries, the default cap here. The drain costs
O(queued), not O(device size); every free path CPU takes the same array lock.
"""
from __future__ import annotations

from numba import njit

from ..kernel.context import Ctx
from ..kernel.zram import Zram
from .common import dbufs_words, drain_slot_bufs, init_queue, queue_slot_in_buf

NAME = "array"
SUMMARY = "one array of queued slot indices under a spinlock (64 MiB of 4 KiB pages)"
NEEDS_GC = True
DEFAULT_CAP_SLOTS = 16384
NR_BUFS = 1


def buffer_cap(nr_slots: int, cap_slots: int) -> int:
    # room for the cap, plus stale entries of slots reused while queued
    return min(nr_slots, cap_slots) + 256 if cap_slots else nr_slots


def queue_words(nr_slots: int, cap_slots: int) -> int:
    return dbufs_words(NR_BUFS, buffer_cap(nr_slots, cap_slots))


def setup_queue(q, nr_slots: int, cap_slots: int) -> None:
    init_queue(q, NR_BUFS, buffer_cap(nr_slots, cap_slots))


@njit(cache=True, _nrt=False)
def enqueue(zram: Zram, ctx: Ctx, index: int) -> int:
    return queue_slot_in_buf(zram, ctx, index, 0)


@njit(cache=True, _nrt=False)
def drain(zram: Zram, ctx: Ctx) -> int:
    return drain_slot_bufs(zram, ctx)
