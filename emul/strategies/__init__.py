"""GC strategies: what happens when a swap slot is freed lazily. One module per strategy.

Each module has NAME, SUMMARY, FAMILY (one of FAMILIES), NEEDS_GC, DEFAULT_CAP_SLOTS,
``queue_words(nr_slots, cap)`` (the strategy's private queue storage in int64 words), optionally
``setup_queue(q, nr_slots, cap, cap_bytes)`` (the queue's initial values), and two compiled
halves: ``enqueue(zram, ctx, index)`` (the free path, under the slot lock; compiled inline) and
``drain(zram, mm, ctx)`` (one GC work item). A strategy that defers before zram, in mm, also has
``defer_swap_entry(zram, ctx, slot)``. See common.py for the contract. A strategy whose queue
counts its own backlog instead of zram's gc_slots sets BACKLOG_IN_BUFFERS (the handle queues).

The registry is STRATEGIES: a strategy's id (the arena's ZP_STRATEGY) is its position there.
kernel/gc_hooks.py dispatches on these ids with one written-out branch per strategy (see its
docstring for what a new strategy needs).
"""
from __future__ import annotations

from enum import IntEnum
from types import ModuleType

from emul.kernel.zram import ST_GC_BYTES, ST_GC_SLOTS, ZP_STRATEGY
from emul.strategies import (array, bitmap, deferred_zsfree, hbitmap, mm_async, percpu,
    percpu_zsfree, sync)
from emul.strategies.common import handles_held

# what "freed exactly once" means for a strategy (tests/test_strategies.py checks each):
FAMILIES = (
    "none",          # nothing is deferred (sync)
    "slot queue",    # the slot stays allocated and marked in gc_map until the GC frees it
    "handle queue",  # the slot is freed at once; only its zsmalloc handle waits for the GC
    "pre-zram",      # mm hands whole swap entries to a kworker before they reach zram
)

# the registry, in id order; sync must stay first: id 0 is a zeroed arena's "free in place"
STRATEGIES: tuple[ModuleType, ...] = (sync, bitmap, hbitmap, array, percpu, deferred_zsfree,
                                      percpu_zsfree, mm_async)

STRATEGY_IDS: dict[str, int] = {m.NAME: sid for sid, m in enumerate(STRATEGIES)}
STRATEGY_MODULES: dict[str, ModuleType] = {m.NAME: m for m in STRATEGIES}
# the ids as named constants for compiled code (gc_hooks): module name in capitals
StrategyId = IntEnum("StrategyId", [(m.__name__.rpartition(".")[2].upper(), sid)
                                    for sid, m in enumerate(STRATEGIES)])
# the strategies that count their backlog in their own buffers, one bit per id (gc_backlog)
BACKLOG_IN_BUFFERS_MASK = sum(1 << sid for sid, m in enumerate(STRATEGIES)
                              if getattr(m, "BACKLOG_IN_BUFFERS", False))


def strategy_names() -> list[str]:
    return [m.NAME for m in STRATEGIES]


def get_strategy(name: str) -> ModuleType:
    return STRATEGY_MODULES[name]


def strategy_id(name: str) -> int:
    return STRATEGY_IDS[name]


def backlog_in_buffers(arena) -> bool:
    """Whether the arena's strategy counts its GC backlog in its own buffers."""
    return bool((BACKLOG_IN_BUFFERS_MASK >> int(arena["zram_params"][ZP_STRATEGY])) & 1)


def gc_backlog_now(arena) -> tuple[int, int]:
    """Slots (or handles) queued for the GC in this arena, and their compressed bytes: zram's
    gc_slots / gc_bytes, or the buffers' own counts (the Python side of gc_hooks.gc_backlog)."""
    if backlog_in_buffers(arena):
        n, b = handles_held(arena["gc_queue"])
        return int(n), int(b)
    stats = arena["zram_stats"]
    return int(stats[ST_GC_SLOTS]), int(stats[ST_GC_BYTES])
