"""The compiled switch from a run's strategy id to the strategy's enqueue, drain and mm hook.

Compiled code cannot call through a Python registry, and passing functions as arguments would
defeat numba's on-disk cache, so the switch is written out: one branch per strategy, comparing
the arena's ZP_STRATEGY with the strategy's id from the registry (emul.strategies.StrategyId:
the module's position in STRATEGIES).

A registered strategy cannot run end to end without a branch here (its id would fall through to
sync), and tests/test_registry.py fails until it has one. Adding a strategy ``foo``:
  1. emul/strategies/foo.py, with the attributes emul/strategies/__init__.py lists;
  2. in emul/strategies/__init__.py: ``foo`` in the import and at the end of STRATEGIES;
  3. here: ``from emul.strategies import foo`` and, in gc_try_lazy_free and gc_drain,
         if kind == StrategyId.FOO:
             return foo.enqueue(zram, ctx, index)      # foo.drain(zram, mm, ctx) in gc_drain
     (and one in gc_defer_swap_entry if foo has defer_swap_entry).
"""
from __future__ import annotations

from numba import njit

from emul.kernel.atomics import atomic_load
from emul.kernel.context import Ctx
from emul.kernel.mm_types import Mm
from emul.kernel.zram import LAZY_NO, ST_GC_BYTES, ST_GC_SLOTS, ZP_STRATEGY, Zram
from emul.strategies import (BACKLOG_IN_BUFFERS_MASK, StrategyId, array, bitmap, deferred_zsfree,
    hbitmap, mm_async, percpu, percpu_zsfree, sync)
from emul.strategies.common import handles_held


# inline, and so is every strategy's enqueue: a call passes the Zram views as ~190 scalar
# arguments (~25 ns), as much as most strategies' enqueue costs
@njit(cache=True, _nrt=False, inline="always")
def gc_try_lazy_free(zram: Zram, ctx: Ctx, index: int) -> int:
    """The strategy's enqueue (zram_slot_free_notify, slot lock held): a LAZY_* code."""
    kind = zram.params[ZP_STRATEGY]
    if kind == StrategyId.BITMAP:
        return bitmap.enqueue(zram, ctx, index)
    if kind == StrategyId.HBITMAP:
        return hbitmap.enqueue(zram, ctx, index)
    if kind == StrategyId.ARRAY:
        return array.enqueue(zram, ctx, index)
    if kind == StrategyId.PERCPU:
        return percpu.enqueue(zram, ctx, index)
    if kind == StrategyId.DEFERRED_ZSFREE:
        return deferred_zsfree.enqueue(zram, ctx, index)
    if kind == StrategyId.PERCPU_ZSFREE:
        return percpu_zsfree.enqueue(zram, ctx, index)
    if kind == StrategyId.MM_ASYNC:
        return mm_async.enqueue(zram, ctx, index)
    return sync.enqueue(zram, ctx, index)   # StrategyId.SYNC


@njit(cache=True, _nrt=False)
def gc_drain(zram: Zram, mm: Mm, ctx: Ctx) -> int:
    """One GC work item of the strategy; returns the slots (or handles) it freed."""
    kind = zram.params[ZP_STRATEGY]
    if kind == StrategyId.BITMAP:
        return bitmap.drain(zram, mm, ctx)
    if kind == StrategyId.HBITMAP:
        return hbitmap.drain(zram, mm, ctx)
    if kind == StrategyId.ARRAY:
        return array.drain(zram, mm, ctx)
    if kind == StrategyId.PERCPU:
        return percpu.drain(zram, mm, ctx)
    if kind == StrategyId.DEFERRED_ZSFREE:
        return deferred_zsfree.drain(zram, mm, ctx)
    if kind == StrategyId.PERCPU_ZSFREE:
        return percpu_zsfree.drain(zram, mm, ctx)
    if kind == StrategyId.MM_ASYNC:
        return mm_async.drain(zram, mm, ctx)
    return sync.drain(zram, mm, ctx)   # StrategyId.SYNC


@njit(cache=True, _nrt=False, inline="always")   # per swap PTE of an unmap
def gc_defer_swap_entry(zram: Zram, ctx: Ctx, slot: int) -> int:
    """zap_pte_range's hook for a strategy that defers in mm, before zram: LAZY_QUEUED (taken),
    LAZY_REFUSED (over its cap: free it here) or LAZY_NO (every other strategy)."""
    if zram.params[ZP_STRATEGY] == StrategyId.MM_ASYNC:
        return mm_async.defer_swap_entry(zram, ctx, slot)
    return LAZY_NO


@njit(cache=True, _nrt=False, inline="always")
def gc_backlog_in_buffers(zram: Zram) -> bool:
    """Whether the strategy counts its backlog in its own buffers (BACKLOG_IN_BUFFERS)."""
    return (BACKLOG_IN_BUFFERS_MASK >> zram.params[ZP_STRATEGY]) & 1 != 0


@njit(cache=True, _nrt=False, inline="always")
def gc_backlog(zram: Zram) -> int:
    """Slots (or handles) queued for the GC and not yet freed: zram's gc_slots, or the sum of
    the buffers of a strategy that counts them there."""
    if gc_backlog_in_buffers(zram):
        return handles_held(zram.gc_queue)[0]
    return atomic_load(zram.stats, ST_GC_SLOTS)


@njit(cache=True, _nrt=False)
def gc_backlog_bytes(zram: Zram) -> tuple:
    """(slots or handles queued, their compressed bytes): the audit's view of gc_backlog."""
    if gc_backlog_in_buffers(zram):
        return handles_held(zram.gc_queue)
    return atomic_load(zram.stats, ST_GC_SLOTS), atomic_load(zram.stats, ST_GC_BYTES)
