"""The compiled switch from a run's strategy number to the strategy's enqueue and drain.

Compiled code cannot call through a Python registry, and passing functions as arguments would
defeat numba's on-disk cache, so the switch is written out. Adding a strategy: write its module,
add it to STRATEGY_MODULES in __init__.py, and add one branch to each function here.
"""
from __future__ import annotations

from numba import njit

from ..kernel.context import Ctx
from ..kernel.zram import ZP_STRATEGY, Zram
from . import bitmap, sync

STRATEGY_IDS = {"sync": 0, "bitmap": 1}


@njit(cache=True, _nrt=False)
def gc_try_lazy_free(zram: Zram, ctx: Ctx, index: int) -> int:
    kind = zram.params[ZP_STRATEGY]
    if kind == 1:
        return bitmap.enqueue(zram, ctx, index)
    return sync.enqueue(zram, ctx, index)


@njit(cache=True, _nrt=False)
def gc_drain(zram: Zram, ctx: Ctx) -> int:
    kind = zram.params[ZP_STRATEGY]
    if kind == 1:
        return bitmap.drain(zram, ctx)
    return sync.drain(zram, ctx)
