"""The compiled switch from a run's strategy number to the strategy's enqueue and drain.

Compiled code cannot call through a Python registry, and passing functions as arguments would
defeat numba's on-disk cache, so the switch is written out. Adding a strategy: write its module,
add it to STRATEGY_MODULES in __init__.py, and add one branch to each function here.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.atomics import atomic_load
from emul.kernel.context import Ctx
from emul.kernel.zram import ST_GC_SLOTS, ZP_STRATEGY, Zram
from emul.strategies import (array, bitmap, deferred_zsfree, hbitmap, mm_async, percpu,
    percpu_zsfree, sync)
from emul.strategies.common import handles_held

STRATEGY_IDS = {"sync": 0, "bitmap": 1, "hbitmap": 2, "array": 3, "percpu": 4,
                "deferred-zsfree": 5, "percpu-zsfree": 6, "mm-async": 7}
MM_ASYNC = 7
_MODULES = (sync, bitmap, hbitmap, array, percpu, deferred_zsfree, percpu_zsfree, mm_async)
# the strategies that count their backlog in their own buffers (BACKLOG_IN_BUFFERS), one bit each
BACKLOG_IN_BUFFERS_MASK = sum(1 << STRATEGY_IDS[m.NAME] for m in _MODULES
                              if getattr(m, "BACKLOG_IN_BUFFERS", False))


# inline, and so is every strategy's enqueue: a call passes the Zram views as ~190 scalar
# arguments (~25 ns), as much as most strategies' enqueue costs
@njit(cache=True, _nrt=False, inline="always")
def gc_try_lazy_free(zram: Zram, ctx: Ctx, index: int) -> int:
    kind = zram.params[ZP_STRATEGY]
    if kind == 1:
        return bitmap.enqueue(zram, ctx, index)
    if kind == 2:
        return hbitmap.enqueue(zram, ctx, index)
    if kind == 3:
        return array.enqueue(zram, ctx, index)
    if kind == 4:
        return percpu.enqueue(zram, ctx, index)
    if kind == 5:
        return deferred_zsfree.enqueue(zram, ctx, index)
    if kind == 6:
        return percpu_zsfree.enqueue(zram, ctx, index)
    if kind == 7:
        return mm_async.enqueue(zram, ctx, index)
    return sync.enqueue(zram, ctx, index)


@njit(cache=True, _nrt=False)
def gc_drain(zram: Zram, ctx: Ctx) -> int:
    kind = zram.params[ZP_STRATEGY]
    if kind == 1:
        return bitmap.drain(zram, ctx)
    if kind == 2:
        return hbitmap.drain(zram, ctx)
    if kind == 3:
        return array.drain(zram, ctx)
    if kind == 4:
        return percpu.drain(zram, ctx)
    if kind == 5:
        return deferred_zsfree.drain(zram, ctx)
    if kind == 6:
        return percpu_zsfree.drain(zram, ctx)
    if kind == 7:
        return mm_async.drain(zram, ctx)
    return sync.drain(zram, ctx)


@njit(cache=True, _nrt=False, inline="always")
def gc_backlog(zram: Zram) -> int:
    """Slots (or handles) queued for the GC and not yet freed: zram's gc_slots, or the sum of
    the buffers of a strategy that counts them there."""
    if (BACKLOG_IN_BUFFERS_MASK >> zram.params[ZP_STRATEGY]) & 1:
        return handles_held(zram.gc_queue)[0]
    return atomic_load(zram.stats, ST_GC_SLOTS)
