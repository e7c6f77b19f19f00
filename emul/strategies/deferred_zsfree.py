"""deferred-zsfree: RFC v2 -- slot_free's metadata part in place, zs_free deferred to the GC.

RFC v2, Wenchao Hao (Xiaomi), linux-mm, 2026-04-21 (docs/kernel-model.md, "The designs on the
table"): zs_free_deferred() with a per-pool array of 128 MiB worth of handles (32768 at 4 KiB
pages, the default cap), spin_trylock, and a synchronous fallback when the array is busy or full.
Its zram patch splits slot_free() into slot_free_extract() -- metadata and stats under the slot
lock, returning the handle -- and the deferred zs_free, used only by zram_slot_free_notify. The
slot is free at once, so a write that reuses it never meets a queued slot. Nhat Pham's review: a
per-pool queue limits concurrency. The cap is the array's own count (and bytes), kept under its
lock like v2's index: no zram-wide counter on the free path.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.context import Ctx
from emul.kernel.mm_types import Mm
from emul.kernel.zram import Zram
from emul.strategies.common import cap_or_device, dbuf_queue, defer_handle, drain_handle_bufs

NAME = "deferred-zsfree"
SUMMARY = "RFC v2: slot_free_extract in place, handles to a per-pool array (trylock, sync fallback)"
FAMILY = "handle queue"
NEEDS_GC = True
BACKLOG_IN_BUFFERS = True   # its queued handles and bytes are counted per buffer, not in gc_slots
DEFAULT_CAP_SLOTS = 32768   # 128 MiB worth of handles at 4 KiB pages


queue_words, setup_queue = dbuf_queue(cap_or_device, handles=True)


@njit(cache=True, _nrt=False, inline="always")   # per slot: see gc_hooks.gc_try_lazy_free
def enqueue(zram: Zram, ctx: Ctx, index: int) -> int:
    return defer_handle(zram, ctx, index, 0, False, False, 0)


@njit(cache=True, _nrt=False)
def drain(zram: Zram, mm: Mm, ctx: Ctx) -> int:
    return drain_handle_bufs(zram, ctx, False, False)
