"""Compiled pieces every lazy-free strategy shares: the cap, gc_map, queue_work, the GC's pass.

A strategy's ``enqueue`` runs under the slot lock from zram_slot_free_notify and returns
LAZY_QUEUED, LAZY_NO or LAZY_REFUSED; its ``drain`` runs in the GC worker as one work item and
returns how many slots it freed. Whatever the strategy's own queue looks like, a queued slot is
marked in ``gc_map`` and counted in ``gc_slots``; slot_free() takes it off both, so a slot that a
write reuses while queued is never freed twice, and a drain frees a slot only if it is still
marked (checked under the slot lock).
"""
from __future__ import annotations

from numba import njit

from ..kernel.atomics import (atomic_fetch_add, atomic_load, atomic_xchg, count_trailing_zeros,
                              futex_wake)
from ..kernel.context import (COST_WAKE_UP, W_HEARTBEAT, W_PEAK_BACKLOG, W_WAKE_POLLED,
                              W_WAKEUPS, Ctx, model_cost)
from ..kernel.zram import (ST_GC_BYTES, ST_GC_SLOTS, ZP_CAP_BYTES, ZP_CAP_SLOTS, Zram, gc_mark,
                           get_slot_size)

# gc_ctl futex words (int32)
GC_PENDING = 0     # WORK_STRUCT_PENDING: set by queue_work, cleared when the work item starts
GC_IDLE = 1        # 1 while the worker sleeps (or is about to) on GC_PENDING
GC_STOP = 2        # the controller asks the worker to leave its loop
GC_POLLING = 3     # 1 while the idle worker polls PENDING before it sleeps (gc idle_poll)
GC_CTL_WORDS = 16

LAZY_QUEUED = 1      # the strategy took the slot
LAZY_NO = 0          # the strategy never defers (sync)
LAZY_REFUSED = -1    # over the cap: the caller frees in place (a counted fallback)


@njit(cache=True, _nrt=False)
def queue_work(zram: Zram, ctx: Ctx) -> None:
    """Schedule the GC work item: set PENDING, and wake the worker only if it is idle.

    An idle worker that still polls (its idle_poll) sees PENDING by itself; the waker then pays
    the modelled wake_up (what try_to_wake_up of a kworker costs on the board) instead of the
    host's futex syscall. PENDING is set before POLLING is read and the worker clears POLLING
    before it re-reads PENDING (all seq_cst), so one of the two always sees the other.
    """
    ctl = zram.gc_ctl
    if atomic_xchg(ctl, GC_PENDING, 1) != 0 or atomic_load(ctl, GC_IDLE) == 0:
        return
    if atomic_load(ctl, GC_POLLING) != 0:
        model_cost(ctx, COST_WAKE_UP)
        ctx.stat[W_WAKE_POLLED] += 1
        return
    futex_wake(ctl, GC_PENDING, 1)
    ctx.stat[W_WAKEUPS] += 1


@njit(cache=True, _nrt=False)
def gc_reserve(zram: Zram, ctx: Ctx, index: int) -> bool:
    """Count a slot into gc_slots / gc_bytes unless that goes over the cap (then undo, refuse)."""
    size = get_slot_size(zram, index)
    n = atomic_fetch_add(zram.stats, ST_GC_SLOTS, 1) + 1
    b = atomic_fetch_add(zram.stats, ST_GC_BYTES, size) + size
    cap_slots = zram.params[ZP_CAP_SLOTS]
    cap_bytes = zram.params[ZP_CAP_BYTES]
    if (cap_slots > 0 and n > cap_slots) or (cap_bytes > 0 and b > cap_bytes):
        atomic_fetch_add(zram.stats, ST_GC_SLOTS, -1)
        atomic_fetch_add(zram.stats, ST_GC_BYTES, -size)
        return False
    if n > ctx.stat[W_PEAK_BACKLOG]:
        ctx.stat[W_PEAK_BACKLOG] = n
    return True


@njit(cache=True, _nrt=False)
def lazy_queue_slot(zram: Zram, ctx: Ctx, index: int) -> int:
    """Reserve room and mark the slot queued in gc_map; the strategy then records it its way."""
    if not gc_reserve(zram, ctx, index):
        return LAZY_REFUSED
    gc_mark(zram, index)
    return LAZY_QUEUED


@njit(cache=True, _nrt=False)
def find_next_bit(words, nbits: int, start: int) -> int:
    """The first set bit at or after start (nbits if none), reading the live words."""
    if start >= nbits:
        return nbits
    w = start >> 6
    word = atomic_load(words, w) & (-1 << (start & 63))
    nwords = (nbits + 63) >> 6
    while word == 0:
        w += 1
        if w >= nwords:
            return nbits
        word = atomic_load(words, w)
    bit = (w << 6) + count_trailing_zeros(word)
    return bit if bit < nbits else nbits


@njit(cache=True, _nrt=False, inline="always")
def cond_resched(ctx: Ctx) -> None:
    """A voluntary yield point in a long kernel loop; emul's GC marks progress here."""
    ctx.stat[W_HEARTBEAT] += 1


@njit(cache=True, _nrt=False, inline="always")
def gc_backlog(zram: Zram) -> int:
    return atomic_load(zram.stats, ST_GC_SLOTS)
