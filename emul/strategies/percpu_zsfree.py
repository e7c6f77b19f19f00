"""percpu-zsfree: RFC v3 -- per-CPU buffers of handles, freed in same-class runs by the GC.

Kairui Song's review of the RFC (linux-mm, 2026-04-12) suggests to "clear the handler for the
freeing slot and leave the handler in a percpu stack, then batch free these handlers ...
something like kmem_cache_free_bulk but for zsmalloc"; v3 (docs/kernel-model.md, "History of
proposals"; 2026-05-08, with the 2026-05-09 variant that batches by size class) does that: each
CPU pushes handles (with their class) into a one-page buffer with preemption off, a WQ_UNBOUND
worker drains full pages, and with no spare page the free is synchronous. The drain sorts a page
by class and frees each run of one class under one class-lock hold; W_BATCH_SAVED counts the
class-lock acquisitions that saves.

emul's buffer per CPU is two pages (the one being filled and the spare being drained); the push
queues the worker every time, not only when a page fills, so the last partial page of an exit is
not stranded (the kernel would need a flush for it). v3 has no global cap; emul's scenario cap
is split over the buffers of the CPUs whose workers free, each counted under its own lock, so
no free touches a zram-wide counter and a CPU whose share is used up frees synchronously.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.context import Ctx
from emul.kernel.mm_types import Mm
from emul.kernel.zram import Zram
from emul.strategies.common import dbuf_queue, defer_handle, drain_handle_bufs, this_cpu_buf

NAME = "percpu-zsfree"
SUMMARY = "RFC v3: per-CPU one-page handle buffers, freed in same-class runs under one class lock"
FAMILY = "handle queue"
NEEDS_GC = True
BACKLOG_IN_BUFFERS = True   # its queued handles and bytes are counted per buffer, not in gc_slots
DEFAULT_CAP_SLOTS = 30000


PAGE_ENTRIES = 512   # one 4 KiB page of 8-byte handles


queue_words, setup_queue = dbuf_queue(lambda nr_slots, cap_slots: PAGE_ENTRIES, per_cpu=True,
                                       handles=True)


@njit(cache=True, _nrt=False, inline="always")   # per slot: see gc_hooks.gc_try_lazy_free
def enqueue(zram: Zram, ctx: Ctx, index: int) -> int:
    return defer_handle(zram, ctx, index, this_cpu_buf(zram.gc_queue, ctx), True, True)


@njit(cache=True, _nrt=False)
def drain(zram: Zram, mm: Mm, ctx: Ctx) -> int:
    return drain_handle_bufs(zram, ctx, True)
