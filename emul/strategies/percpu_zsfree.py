"""percpu-zsfree: RFC v3 -- per-CPU buffers of handles, freed in same-class runs by the GC.

Kairui Song's review of the RFC (linux-mm, 2026-04-12) suggests to "clear the handler for the
freeing slot and leave the handler in a percpu stack, then batch free these handlers ...
something like kmem_cache_free_bulk but for zsmalloc"; v3 (docs/kernel-model.md, "History of
proposals"; 2026-05-08, with the 2026-05-09 variant that batches by size class) does that: each
CPU pushes handles (with their class) into a one-page buffer with preemption off, a WQ_UNBOUND
worker drains full pages, and with no spare page the free is synchronous. The drain sorts a page
by class and frees each run of one class under one class-lock hold; W_BATCH_SAVED counts the
class-lock acquisitions that saves.

The series' page pool (docs/kernel-model.md, "RFC v3"): ZS_DEFERRED_POOL_SIZE, 256 KiB of
pages (64 of 4 KiB, 512 handles each), shared by the CPUs; a full page is swapped for a pool
page and queued for the worker; the worker drains at most half the pool's pages per
invocation, then queues itself again. emul keeps each CPU's handles in a double buffer whose
halves hold half the pool plus the current page (POOL_HALF entries). The producer fills its
active half under its CPU's page lock (the kernel's local_lock; the worker never takes it) and,
at each full page, hands the half to the worker if the worker is done with the other one; so at
most the pool and the current page are in flight, the worker takes at most half the pool per
invocation, and a push that finds no room frees synchronously, as v3 does with no free page.
The worker is queued when a page's worth (PAGE_ENTRIES) has filled, not on every push; the
controller flushes the last partial page once the actors are done (FLUSH_AT_END, the
kernel's zs_free_deferred_flush). Where emul differs: the pool is per CPU
here (two killers on two CPUs get a pool each, the kernel's share one), and a sweep takes a
half as it is, not page by page. v3 has no other cap: a scenario's cap is split over the
buffers of the CPUs whose workers free, each counted under its own lock.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.atomics import atomic_load, atomic_store_release
from emul.kernel.context import Ctx
from emul.kernel.locking import spin_lock, spin_unlock
from emul.kernel.lockstat import LOCK_GC_QUEUE
from emul.kernel.mm_types import Mm
from emul.kernel.workqueue import GC_FLUSH, queue_work
from emul.kernel.zram import (LAZY_NO, LAZY_QUEUED, LAZY_REFUSED, ZRAM_SAME, Zram,
    get_slot_handle, get_slot_size, slot_free_extract, test_slot_flag)
from emul.kernel.zsmalloc import zs_lookup_class_index
from emul.strategies.common import (DB_ACTIVE, DB_BYTES, DB_COUNT, DB_LOCK, QH_DRAIN_LOCK,
    QH_NR_BUFS, dbuf_base, dbuf_emptied, dbuf_half_start, dbuf_held, dbuf_queue,
    free_handle_entries, gc_drain_begin, handle_entry, handle_room, handles_held,
    note_peak_backlog, this_cpu_buf)

NAME = "percpu-zsfree"
SUMMARY = "RFC v3: per-CPU handle pages from a 64-page pool, drained in same-class runs"
FAMILY = "handle queue"
NEEDS_GC = True
BACKLOG_IN_BUFFERS = True   # its queued handles and bytes are counted per buffer, not in gc_slots
DEFAULT_CAP_SLOTS = 0          # the page pool is the bound
FLUSH_AT_END = True            # the worker is queued per full page: flush the last one


PAGE_ENTRIES = 512             # one 4 KiB page of 8-byte handles
POOL_PAGES = 64                # ZS_DEFERRED_POOL_SIZE: 256 KiB of 4 KiB pages
POOL_HALF = (POOL_PAGES + 1) * PAGE_ENTRIES // 2


queue_words, setup_queue = dbuf_queue(lambda nr_slots, cap_slots: POOL_HALF, per_cpu=True,
                                       handles=True)


@njit(cache=True, _nrt=False, inline="always")
def hand_over(zram: Zram, ctx: Ctx, q, base: int) -> bool:
    """The producer's page swap: give the active half to the worker and take the other one,
    if the worker is done with it (its count back to 0); queue the worker. Only the owning
    CPU writes DB_ACTIVE, so no lock: the worker drains whichever half is not active."""
    half = q[base + DB_ACTIVE]
    if atomic_load(q, base + DB_COUNT + 1 - half) != 0:
        return False          # still being drained: keep filling this one (the pool's room)
    atomic_store_release(q, base + DB_ACTIVE, 1 - half)
    queue_work(zram, ctx)
    return True


@njit(cache=True, _nrt=False, inline="always")   # per slot: see gc_hooks.gc_try_lazy_free
def enqueue(zram: Zram, ctx: Ctx, index: int) -> int:
    """zs_free_deferred() with preemption off: the slot's metadata freed now, its handle
    appended to this CPU's page; a full page goes to the worker, and with no room a
    synchronous free. The worker never takes the page lock (it drains the half that is not
    active); the lock is the kernel's local_lock: two emul workers pinned to one CPU can
    preempt each other mid-push, which preemption off rules out on the board."""
    if test_slot_flag(zram, index, ZRAM_SAME) or get_slot_handle(zram, index) == 0:
        return LAZY_NO
    q = zram.gc_queue
    base = dbuf_base(q, this_cpu_buf(q, ctx))
    spin_lock(q, base + DB_LOCK, ctx, LOCK_GC_QUEUE)
    lazy = push_locked(zram, ctx, q, base, index)
    spin_unlock(q, base + DB_LOCK, ctx, LOCK_GC_QUEUE)
    return lazy


@njit(cache=True, _nrt=False, inline="always")
def push_locked(zram: Zram, ctx: Ctx, q, base: int, index: int) -> int:
    """The push under this CPU's page lock."""
    size = get_slot_size(zram, index)
    if not handle_room(q, base, size) and not hand_over(zram, ctx, q, base):
        return LAZY_REFUSED
    if not handle_room(q, base, size):
        return LAZY_REFUSED       # this CPU's share of a scenario cap is used up
    handle = slot_free_extract(zram, ctx, index)
    half = q[base + DB_ACTIVE]
    n = q[base + DB_COUNT + half]
    q[dbuf_half_start(q, base, half) + n] = handle_entry(
        handle, size, zs_lookup_class_index(zram.pool, size))
    atomic_store_release(q, base + DB_BYTES + half, q[base + DB_BYTES + half] + size)
    atomic_store_release(q, base + DB_COUNT + half, n + 1)    # entries first, then the count
    held, nbytes = dbuf_held(q, base)
    note_peak_backlog(ctx, held, nbytes)
    if (n + 1) % PAGE_ENTRIES == 0:
        hand_over(zram, ctx, q, base)
    return LAZY_QUEUED


@njit(cache=True, _nrt=False)
def drain(zram: Zram, mm: Mm, ctx: Ctx) -> int:
    """The drain worker: each CPU's half that is not active, freed in same-class runs; once
    the actors are done (GC_FLUSH), the active halves too. One sweep per invocation: the
    producers queue it again with their next page."""
    q = zram.gc_queue
    if not gc_drain_begin(zram, ctx):
        return 0
    held, nbytes = handles_held(q)
    note_peak_backlog(ctx, held, nbytes)
    flush = atomic_load(zram.gc_ctl, GC_FLUSH) != 0
    freed = 0
    for buf in range(q[QH_NR_BUFS]):
        base = dbuf_base(q, buf)
        active = atomic_load(q, base + DB_ACTIVE)
        for k in range(2 if flush else 1):
            half = 1 - active if k == 0 else active
            n = atomic_load(q, base + DB_COUNT + half)
            # the producer may have handed over between the two loads: the half just read
            # may be its active one now (a half with entries cannot be handed over again)
            if k == 0 and atomic_load(q, base + DB_ACTIVE) != active:
                continue
            if n:
                freed += free_handle_entries(zram, ctx, base, half,
                                             dbuf_half_start(q, base, half), n, True)
                dbuf_emptied(q, base, half)
    spin_unlock(q, QH_DRAIN_LOCK, ctx, LOCK_GC_QUEUE)
    return freed
