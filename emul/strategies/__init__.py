"""GC strategies: what happens when a swap slot is freed lazily. One module per strategy.

Each module has NAME, SUMMARY, NEEDS_GC, DEFAULT_CAP_SLOTS, ``queue_words(nr_slots, cap)`` (the
strategy's private queue storage in int64 words), optionally
``setup_queue(q, nr_slots, cap, cap_bytes)`` (the queue's initial values), and two compiled
halves: ``enqueue`` (the free path, under the slot lock; compiled inline) and ``drain`` (one GC
work item). See common.py for the contract.
A strategy whose queue counts its own backlog instead of zram's gc_slots sets
BACKLOG_IN_BUFFERS (the handle queues).
"""
from __future__ import annotations

from types import ModuleType

from emul.kernel.zram import ST_GC_BYTES, ST_GC_SLOTS, ZP_STRATEGY
from emul.strategies import (array, bitmap, deferred_zsfree, hbitmap, mm_async, percpu,
    percpu_zsfree, sync)
from emul.strategies.common import handles_held
from emul.kernel.gc_hooks import STRATEGY_IDS

STRATEGY_MODULES: dict[str, ModuleType] = {
    m.NAME: m for m in (sync, bitmap, hbitmap, array, percpu, deferred_zsfree, percpu_zsfree,
                        mm_async)}


def strategy_names() -> list[str]:
    return list(STRATEGY_MODULES)


def get_strategy(name: str) -> ModuleType:
    return STRATEGY_MODULES[name]


def strategy_id(name: str) -> int:
    return STRATEGY_IDS[name]


def backlog_in_buffers(arena) -> bool:
    """Whether the arena's strategy counts its GC backlog in its own buffers."""
    sid = int(arena["zram_params"][ZP_STRATEGY])
    name = next(n for n, i in STRATEGY_IDS.items() if i == sid)
    return bool(getattr(STRATEGY_MODULES[name], "BACKLOG_IN_BUFFERS", False))


def gc_backlog_now(arena) -> tuple[int, int]:
    """Slots (or handles) queued for the GC in this arena, and their compressed bytes: zram's
    gc_slots / gc_bytes, or the buffers' own counts (the Python side of dispatch.gc_backlog)."""
    if backlog_in_buffers(arena):
        n, b = handles_held(arena["gc_queue"])
        return int(n), int(b)
    stats = arena["zram_stats"]
    return int(stats[ST_GC_SLOTS]), int(stats[ST_GC_BYTES])
