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
halves hold half the pool plus the current page (POOL_HALF entries): the producer fills one
half while the worker drains the other, so at most the pool and the current page are in
flight, the worker takes at most half the pool per sweep (one sweep per invocation, queued
again while entries are left), and a push that finds no room frees synchronously, as v3 does
with no free page. The worker is queued when a page's worth (PAGE_ENTRIES) has filled, not on
every push; the controller flushes the last partial page once the actors are done
(FLUSH_AT_END, the kernel's zs_free_deferred_flush). Where emul differs: the pool is per CPU
here (two killers on two CPUs get a pool each, the kernel's share one), and a sweep takes a
half as it is, not page by page. v3 has no other cap: a scenario's cap is split over the
buffers of the CPUs whose workers free, each counted under its own lock.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.context import Ctx
from emul.kernel.mm_types import Mm
from emul.kernel.zram import Zram
from emul.strategies.common import dbuf_queue, defer_handle, drain_handle_bufs, this_cpu_buf

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


@njit(cache=True, _nrt=False, inline="always")   # per slot: see gc_hooks.gc_try_lazy_free
def enqueue(zram: Zram, ctx: Ctx, index: int) -> int:
    return defer_handle(zram, ctx, index, this_cpu_buf(zram.gc_queue, ctx), True, True,
                        PAGE_ENTRIES)


@njit(cache=True, _nrt=False)
def drain(zram: Zram, mm: Mm, ctx: Ctx) -> int:
    return drain_handle_bufs(zram, ctx, True, True)
