"""percpu: per-CPU arrays of queued slot indices, drained by the GC a whole CPU's batch at a time.

Kairui Song's review of the RFC (linux-mm, 2026-04-12): "Perhaps a percpu stack can be used,
something like the folio batch?"; Barry Song's reply worries that per-CPU queues drained together
bring back the zsmalloc contention the series removes. Each CPU's array has its own lock (the
kernel would use local_lock; emul's workers can be preempted, so it is a real lock, uncontended
unless two workers share a CPU); the GC swaps a CPU's full half for an empty one in one lock hold
-- the batch -- and frees it without the lock.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.context import Ctx
from emul.kernel.mm_types import Mm
from emul.kernel.zram import Zram
from emul.strategies.common import (cap_and_stale, dbuf_queue, drain_slot_bufs, queue_slot_in_buf,
    this_cpu_buf)

NAME = "percpu"
SUMMARY = "per-CPU arrays of queued slots (local lock), each drained as one batch"
FAMILY = "slot queue"
NEEDS_GC = True
DEFAULT_CAP_SLOTS = 30000


queue_words, setup_queue = dbuf_queue(cap_and_stale, per_cpu=True)


@njit(cache=True, _nrt=False, inline="always")   # per slot: see gc_hooks.gc_try_lazy_free
def enqueue(zram: Zram, ctx: Ctx, index: int) -> int:
    return queue_slot_in_buf(zram, ctx, index, this_cpu_buf(zram.gc_queue, ctx))


@njit(cache=True, _nrt=False)
def drain(zram: Zram, mm: Mm, ctx: Ctx) -> int:
    return drain_slot_bufs(zram, ctx)
