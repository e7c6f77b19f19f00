"""Every compiled entry point a process calls from Python, in one table.

numba's on-disk cache is not safe against several processes compiling the same function at the
same moment, so the controller compiles every entry point once, before any worker starts
(``compile_entry_points(views)``); each worker then loads only the ones its role calls
(``ROLE_ENTRY_POINTS``), which is a cache hit. A function missing here would be compiled by the
first worker that calls it, concurrently with the others.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from emul.harness import microbench as mb
from emul.kernel import audit, layout
from emul.kernel.context import Ctx, note_cpu
from emul.kernel.gate import gate_wait
from emul.kernel.gc_worker import gc_worker_reset, gc_worker_run, gc_worker_stop
from emul.kernel.layout import Arena
from emul.kernel.mm import Mm, populate_vma, reclaim_run, swap_in_range, swap_out_range, unmap_vma
from emul.kernel.replay import reap_run
from emul.kernel.zram import Zram


@dataclass(frozen=True)
class Views:
    """What compiled code takes, for one worker's row of the arena."""

    zram: Zram
    mm: Mm
    ctx: Ctx
    page: np.ndarray
    ctl: np.ndarray

    @classmethod
    def of(cls, arena: Arena, index: int) -> "Views":
        return cls(layout.zram_view(arena), layout.mm_view(arena), layout.ctx_view(arena, index),
                   layout.page_buffer(arena, index), arena["ctl"])


_ONE = np.zeros(1, dtype=np.int64)
_OUT4 = np.zeros(4, dtype=np.int64)

# name -> (dispatcher, the arguments it is compiled for, built from a worker's views)
ENTRY_POINTS: dict[str, tuple[Callable, Callable[[Views], tuple]]] = {
    "swap_out_range": (swap_out_range, lambda v: (v.zram, v.mm, v.ctx, 0, 0, 0, v.page)),
    "unmap_vma": (unmap_vma, lambda v: (v.zram, v.mm, v.ctx, 0, 0)),
    "reap_run": (reap_run, lambda v: (v.zram, v.mm, v.ctx, v.ctl, _ONE, _ONE, 0)),
    "swap_in_range": (swap_in_range, lambda v: (v.zram, v.mm, v.ctx, 0, 0, v.page)),
    "reclaim_run": (reclaim_run, lambda v: (v.zram, v.mm, v.ctx, v.ctl, 0, 0, v.page)),
    "gc_worker_run": (gc_worker_run, lambda v: (v.zram, v.mm, v.ctx, 0)),
    "populate_vma": (populate_vma, lambda v: (v.mm, 0, 0)),
    "gc_worker_stop": (gc_worker_stop, lambda v: (v.zram,)),
    "gc_worker_reset": (gc_worker_reset, lambda v: (v.zram,)),
    "gate_wait": (gate_wait, lambda v: (v.ctl, 0, 0)),
    "note_cpu": (note_cpu, lambda v: (v.ctx,)),
    # emul bench's loops (emul/harness/microbench.py)
    "loop_atomic_add": (mb.loop_atomic_add, lambda v: (v.ctl, 0)),
    "loop_slot_lock": (mb.loop_slot_lock, lambda v: (v.zram, v.ctx, 0, 0)),
    "loop_handoff": (mb.loop_handoff, lambda v: (v.zram, v.ctx, 0, 0, 0)),
    "fill_slots": (mb.fill_slots, lambda v: (v.zram, v.ctx, 0, 0, v.page)),
    "loop_enqueue": (mb.loop_enqueue, lambda v: (v.zram, v.ctx, 0, 0)),
    "loop_drain": (mb.loop_drain, lambda v: (v.zram, v.mm, v.ctx, 0)),
    "loop_chunks": (mb.loop_chunks, lambda v: (v.zram, v.mm, v.ctx, 0, 0, 0, _OUT4)),
}

# what each worker role calls (workers/<role>.py); the controller compiles RUN_ENTRY_POINTS
ROLE_ENTRY_POINTS: dict[str, tuple[str, ...]] = {
    "swapout": ("swap_out_range", "gate_wait"),
    "killer": ("unmap_vma", "reap_run", "gate_wait"),
    "swapin": ("swap_in_range", "gate_wait"),
    "reclaim": ("reclaim_run", "gate_wait"),
    "gc": ("gc_worker_run", "gate_wait"),
    "benchpeer": ("loop_handoff", "gate_wait"),
}
RUN_ENTRY_POINTS = ("swap_out_range", "unmap_vma", "reap_run", "swap_in_range", "reclaim_run",
                    "gc_worker_run", "populate_vma", "gc_worker_stop", "gc_worker_reset",
                    "gate_wait")
BENCH_ENTRY_POINTS = ("loop_atomic_add", "loop_slot_lock", "loop_handoff", "fill_slots",
                      "loop_enqueue", "loop_drain", "loop_chunks", "gate_wait", "note_cpu")


def compile_for(dispatcher: Any, *args: Any) -> None:
    """Load (or compile) dispatcher for these arguments' types without running it."""
    dispatcher.compile(tuple(numba.typeof(a) for a in args))


def compile_entry_points(views: Views, names: Iterable[str]) -> None:
    """Compile (or load from the cache) the named entry points for these views' types."""
    for name in names:
        fn, args = ENTRY_POINTS[name]
        compile_for(fn, *args(views))


def compile_run(views: Views) -> None:
    """Everything a run's workers and the controller call, and the audit's compiled checks."""
    compile_entry_points(views, RUN_ENTRY_POINTS)
    audit.compile_audit(views.zram)
