"""The compiled loops of ``emul bench`` (emul/bench.py), and the check that a timed stretch kept
its CPU.

They live in the harness, not in the bench command, because two processes run them: the bench
and its peer (workers/benchpeer.py), which loads the code the bench compiled before starting it
(emul/harness/entrypoints.py lists them).
"""
from __future__ import annotations

import time

import numpy as np
from numba import njit

from emul.kernel.atomics import atomic_fetch_add, atomic_store, read_clock
from emul.kernel.context import Ctx, note_cpu
from emul.kernel.gc_hooks import gc_backlog, gc_drain, gc_try_lazy_free
from emul.kernel.mm_types import Mm
from emul.kernel.workqueue import GC_FLUSH
from emul.kernel.zram import (
    LAZY_QUEUED,
    Zram,
    slot_lock,
    slot_trylock,
    slot_unlock,
    zram_write_page,
)


@njit(cache=True, _nrt=False)
def loop_atomic_add(words: np.ndarray, n: int) -> int:
    for _ in range(n):
        atomic_fetch_add(words, 0, 1)
    return words[0]


@njit(cache=True, _nrt=False)
def loop_slot_lock(zram: Zram, ctx: Ctx, n: int, mask: int) -> int:
    """trylock + unlock over a small, cache-resident run of slots (mask + 1 of them)."""
    got = 0
    for i in range(n):
        index = i & mask
        if slot_trylock(zram, ctx, index):
            got += 1
            slot_unlock(zram, ctx, index)
    return got


@njit(cache=True, _nrt=False)
def loop_handoff(zram: Zram, ctx: Ctx, index: int, me: int, turns: int) -> int:
    """Take the slot lock ``turns`` times on my turn, passing the turn to the other process.

    The turn counter is the slot's handle word, changed only under the slot lock (as everything
    in an entry is), so each turn needs the lock's cache line to come over from the other CPU:
    one hand-off of a contended lock. Returns the acquisitions that found it not my turn.
    """
    note_cpu(ctx)
    done = 0
    early = 0
    while done < turns:
        slot_lock(zram, ctx, index)
        t = zram.table[2 * index]
        if t & 1 == me:
            zram.table[2 * index] = t + 1
            done += 1
        else:
            early += 1
        slot_unlock(zram, ctx, index)
    return early


@njit(cache=True, _nrt=False)
def fill_slots(zram: Zram, ctx: Ctx, start: int, end: int, page: np.ndarray) -> int:
    """Write content into every slot of [start, end) through zram's real write path."""
    n = 0
    for i in range(start, end):
        if zram_write_page(zram, ctx, i, i, page):
            n += 1
    return n


@njit(cache=True, _nrt=False)
def loop_enqueue(zram: Zram, ctx: Ctx, start: int, end: int) -> int:
    """zram_slot_free_notify's lazy part for each slot: trylock, offer it to the strategy,
    unlock. Returns the slots the strategy queued."""
    queued = 0
    for i in range(start, end):
        if slot_trylock(zram, ctx, i):
            if gc_try_lazy_free(zram, ctx, i) == LAZY_QUEUED:
                queued += 1
            slot_unlock(zram, ctx, i)
    return queued


@njit(cache=True, _nrt=False)
def loop_drain(zram: Zram, mm: Mm, ctx: Ctx, max_passes: int) -> int:
    """Run GC work items until nothing is queued (the GC worker's loop without the sleeps),
    as at the end of an exit: flushed (a per-page strategy gives up its last page too)."""
    atomic_store(zram.gc_ctl, GC_FLUSH, 1)
    freed = 0
    passes = 0
    while gc_backlog(zram) > 0 and passes < max_passes:
        freed += gc_drain(zram, mm, ctx)
        passes += 1
    return freed


@njit(cache=True, _nrt=False)
def loop_chunks(zram: Zram, mm: Mm, ctx: Ctx, start: int, end: int, chunk: int,
                out: np.ndarray) -> None:
    """Enqueue [start, end) chunk slots at a time and drain after each chunk; adds enqueue
    ticks, drain ticks, slots queued and slots freed into out[0..3]."""
    i = start
    while i < end:
        j = min(end, i + chunk)
        t0 = read_clock()
        queued = loop_enqueue(zram, ctx, i, j)
        t1 = read_clock()
        freed = loop_drain(zram, mm, ctx, 1_000_000)
        t2 = read_clock()
        out[0] += t1 - t0
        out[1] += t2 - t1
        out[2] += queued
        out[3] += freed
        i = j


class OnCpu:
    """Did this thread keep its CPU through a timed stretch? Every timed loop here spins, so
    its thread's CPU time equals the wall time unless a neighbour took the CPU (on a shared
    machine a whole time slice, which can double a batch)."""

    def __init__(self) -> None:
        self.cpu0 = time.thread_time_ns()
        self.wall0 = time.perf_counter_ns()

    def preempted(self) -> bool:
        wall = time.perf_counter_ns() - self.wall0
        return time.thread_time_ns() - self.cpu0 < 0.95 * wall
