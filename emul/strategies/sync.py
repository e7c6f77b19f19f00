"""sync: today's kernel. zram_slot_free_notify frees the slot in place; there is no GC.

The baseline every report compares against (drivers/block/zram/zram_drv.c, before the RFC).
"""
from __future__ import annotations

from numba import njit

from emul.kernel.context import Ctx
from emul.kernel.mm_types import Mm
from emul.kernel.zram import LAZY_NO, Zram

NAME = "sync"
SUMMARY = "free in place in zram_slot_free_notify (today's kernel, the baseline)"
FAMILY = "none"
NEEDS_GC = False
DEFAULT_CAP_SLOTS = 0


def queue_words(nr_slots: int, cap_slots: int) -> int:
    return 0


@njit(cache=True, _nrt=False, inline="always")   # per slot: see gc_hooks.gc_try_lazy_free
def enqueue(zram: Zram, ctx: Ctx, index: int) -> int:
    return LAZY_NO


@njit(cache=True, _nrt=False)
def drain(zram: Zram, mm: Mm, ctx: Ctx) -> int:
    return 0
