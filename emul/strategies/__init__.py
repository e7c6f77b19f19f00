"""GC strategies: what happens when a swap slot is freed lazily. One module per strategy.

Each module has NAME, SUMMARY, NEEDS_GC, DEFAULT_CAP_SLOTS, ``queue_words(nr_slots, cap)`` (the
strategy's private queue storage in int64 words), optionally ``setup_queue(q, nr_slots, cap)``
(the queue's initial values), and two compiled halves: ``enqueue`` (the free
path, under the slot lock) and ``drain`` (one GC work item). See common.py for the contract.
"""
from __future__ import annotations

from types import ModuleType

from . import array, bitmap, deferred_zsfree, hbitmap, mm_async, percpu, percpu_zsfree, sync
from .dispatch import STRATEGY_IDS

STRATEGY_MODULES: dict[str, ModuleType] = {
    m.NAME: m for m in (sync, bitmap, hbitmap, array, percpu, deferred_zsfree, percpu_zsfree,
                        mm_async)}


def strategy_names() -> list[str]:
    return list(STRATEGY_MODULES)


def get_strategy(name: str) -> ModuleType:
    return STRATEGY_MODULES[name]


def strategy_id(name: str) -> int:
    return STRATEGY_IDS[name]
