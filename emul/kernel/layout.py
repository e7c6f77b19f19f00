"""Shared state of one run: what goes into the arena, how it starts, and the views workers use.

``build_layout`` sizes every array from a :class:`Geometry`; ``init_state`` (controller only)
sets the initial values; ``views`` gives the ``Zram`` / ``Mm`` namedtuples and per-worker ``Ctx``
that compiled code takes. All arrays are 1-D int64 (futex words int32), C-contiguous and
64-byte aligned, so every process compiles against identical types and numba's disk cache hits.
"""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from emul.kernel.context import COSTS_WORDS, STAT_WORDS, Ctx
from emul.kernel.lockstat import LOCKSTAT_WORDS, reset_rows
from emul.kernel.mm_types import SWAP_CURSOR, Mm
from emul.kernel.zram import (FAULTS_WORDS, PARAMS_WORDS, STATS_WORDS, ZP_CAP_BYTES, ZP_CAP_SLOTS,
    ZP_DEBUG, ZP_GC_QUEUE_LEN, ZP_HUGE_CLASS_SIZE, ZP_HUGE_PPM, ZP_MEAN_COMP_LEN, ZP_NR_PATTERNS,
    ZP_NR_SLOTS, ZP_PAGE_SHIFT, ZP_SAME_PPM, ZP_SEED, ZP_SPREAD_PERMILLE, ZP_STRATEGY,
    ZP_TRACK_OWNERS, KILL_WORDS, Zram)
from emul.kernel.workqueue import GC_CTL_WORDS
from emul.kernel.zs_classes import build_size_classes
from emul.kernel.zsmalloc import (CI_HUGE, CI_OBJS, CI_PAGES, CI_SIZE, CI_WORDS, CLASS_LOCK_STRIDE,
    CS_WORDS, NR_FULLNESS_GROUPS, PC_CLASS_DELTA, PC_FLAGS, PC_MAX_OBJS, PC_MAX_ZSPAGES,
    PC_DEBUG, PC_NR_RAW_CLASSES, PC_PAGE_SIZE, PC_WORDS, PS_WORDS, Z_WORDS, ZONE_WORDS, Pool)

CTL_WORDS = 64
CTL_GATE_ARRIVE = 0     # workers arrived at the start gate (own cache line)
CTL_GATE_GO = 8         # the phase number the controller opened the gate for
CTL_CHAOS_PY = 40       # emul run --chaos: the worker index + 1 that must raise in Python


ALIGN = 64              # every array starts on its own cache line


class Arena(Protocol):
    """What this module needs of an arena (emul/harness/arena.py maps one): a view by name."""

    def __getitem__(self, name: str) -> np.ndarray: ...


@dataclass
class Layout:
    """Named arrays at 64-byte aligned offsets (each array starts on its own cache line)."""

    arrays: dict[str, tuple[str, tuple[int, ...], int]] = field(default_factory=dict)
    size: int = 0

    def add(self, name: str, dtype, shape) -> None:
        if name in self.arrays:
            raise ValueError(f"array {name} declared twice")
        dt = np.dtype(dtype)
        shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        offset = (self.size + ALIGN - 1) // ALIGN * ALIGN
        self.arrays[name] = (dt.str, shape, offset)
        self.size = offset + max(nbytes, dt.itemsize)

    def to_json(self) -> dict:
        return {"size": self.size,
                "arrays": {k: [d, list(s), o] for k, (d, s, o) in self.arrays.items()}}

    @classmethod
    def from_json(cls, data: dict) -> "Layout":
        lay = cls()
        lay.size = int(data["size"])
        lay.arrays = {k: (d, tuple(s), int(o)) for k, (d, s, o) in data["arrays"].items()}
        return lay



@dataclass(frozen=True)
class Geometry:
    """Everything the arena's size and initial values depend on."""

    page_size: int
    nr_slots: int
    total_pages: int
    n_workers: int
    strategy_id: int
    cap_slots: int
    cap_bytes: int
    queue_words: int
    seed: int
    mean_comp_len: int
    spread_permille: int
    same_ppm: int
    huge_ppm: int
    chain_size: int = 8
    debug: int = 0
    zs_flags: int = 0
    alloc_start: int = -1      # the swap allocator's first slot; -1: chosen from the seed
    n_kills: int = 0           # replays: victims whose teardown is tracked per kill
    patterns: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return asdict(self)


def pool_capacity(geo: Geometry, max_objs: int, nr_classes: int) -> tuple[int, int]:
    """(zspage descriptors, objects) the arena reserves for the pool.

    Every stored page holds at most one object; partly used zspages add free objects. Twice the
    slot count plus one zspage's worth per class is plenty for emul's workloads; beyond it
    zs_malloc fails and the write is counted in failed_writes, as on a full device.
    """
    return geo.nr_slots + nr_classes * 2, 2 * geo.nr_slots + nr_classes * max_objs


def build_layout(geo: Geometry) -> Layout:
    table = build_size_classes(geo.page_size, geo.chain_size)
    nc = table.nr_classes
    max_z, max_obj = pool_capacity(geo, table.max_objs_per_zspage, nc)
    lay = Layout()
    i64 = np.int64
    # zram
    lay.add("table", i64, 2 * geo.nr_slots)
    lay.add("zram_stats", i64, STATS_WORDS)
    lay.add("gc_map", i64, (geo.nr_slots + 63) // 64)
    lay.add("gc_ctl", np.int32, GC_CTL_WORDS)
    lay.add("gc_queue", i64, max(1, geo.queue_words))
    lay.add("zram_params", i64, PARAMS_WORDS)
    lay.add("faults", i64, FAULTS_WORDS)
    lay.add("patterns", i64, max(1, len(geo.patterns)) * (geo.page_size // 8))
    lay.add("pattern_len", i64, max(1, len(geo.patterns)))
    lay.add("owner", i64, geo.nr_slots if geo.n_kills else 1)
    lay.add("kills", i64, max(1, geo.n_kills) * KILL_WORDS)
    # zsmalloc
    lay.add("pool_lock", i64, 8)
    lay.add("pool_stat", i64, PS_WORDS)
    lay.add("class_lock", i64, nc * CLASS_LOCK_STRIDE)
    lay.add("class_stat", i64, nc * CS_WORDS)
    lay.add("class_info", i64, nc * CI_WORDS)
    lay.add("class_of_index", i64, nc)
    lay.add("fullness", i64, nc * NR_FULLNESS_GROUPS)
    lay.add("zspage", i64, max_z * Z_WORDS)
    lay.add("zone", i64, ZONE_WORDS)
    lay.add("zone_free", i64, nc)
    lay.add("obj_next", i64, max_obj)
    lay.add("obj_head", i64, max_obj)
    lay.add("obj_zspage", i64, max_obj)
    lay.add("obj_csum", i64, max_obj)
    lay.add("pool_consts", i64, PC_WORDS)
    # mm
    lay.add("pte", i64, max(1, geo.total_pages))
    lay.add("swap_map", i64, geo.nr_slots)
    lay.add("swap_lock", i64, 16)
    lay.add("swap_recent", i64, geo.nr_slots)
    # emulator
    lay.add("ctl", i64, CTL_WORDS)
    lay.add("wstat", i64, (geo.n_workers, STAT_WORDS))
    lay.add("lockstat", i64, (geo.n_workers, LOCKSTAT_WORDS))
    lay.add("costs", i64, (geo.n_workers, COSTS_WORDS))
    lay.add("pagebuf", i64, (geo.n_workers, geo.page_size // 8))
    return lay


def init_state(arena: Arena, geo: Geometry) -> None:
    """Initial values: an empty zram device, an empty pool, no pages mapped."""
    table = build_size_classes(geo.page_size, geo.chain_size)
    nc = table.nr_classes
    max_z, max_obj = pool_capacity(geo, table.max_objs_per_zspage, nc)
    p = arena["zram_params"]
    p[ZP_PAGE_SHIFT] = geo.page_size.bit_length() - 1
    p[ZP_NR_SLOTS] = geo.nr_slots
    p[ZP_HUGE_CLASS_SIZE] = table.huge_class_size
    p[ZP_STRATEGY] = geo.strategy_id
    p[ZP_CAP_SLOTS] = geo.cap_slots
    p[ZP_CAP_BYTES] = geo.cap_bytes
    p[ZP_SEED] = geo.seed
    p[ZP_MEAN_COMP_LEN] = geo.mean_comp_len
    p[ZP_SPREAD_PERMILLE] = geo.spread_permille
    p[ZP_SAME_PPM] = geo.same_ppm
    p[ZP_HUGE_PPM] = geo.huge_ppm
    p[ZP_DEBUG] = geo.debug
    p[ZP_GC_QUEUE_LEN] = geo.queue_words
    p[ZP_NR_PATTERNS] = len(geo.patterns)
    p[ZP_TRACK_OWNERS] = int(geo.n_kills > 0)
    arena["owner"][:] = -1
    for k, text in enumerate(geo.patterns):
        image, comp_len = pattern_page(text, geo.page_size)
        arena["patterns"].reshape(-1, geo.page_size // 8)[k] = image
        arena["pattern_len"][k] = min(comp_len, geo.page_size)
    info = arena["class_info"].reshape(nc, CI_WORDS)
    info[:, CI_SIZE] = table.size
    info[:, CI_PAGES] = table.pages_per_zspage
    info[:, CI_OBJS] = table.objs_per_zspage
    info[:, CI_HUGE] = (table.pages_per_zspage == 1) & (table.objs_per_zspage == 1)
    arena["class_of_index"][:] = table.class_of_index
    c = arena["pool_consts"]
    c[PC_PAGE_SIZE] = geo.page_size
    c[PC_NR_RAW_CLASSES] = nc
    c[PC_CLASS_DELTA] = table.size_class_delta
    c[PC_MAX_ZSPAGES] = max_z
    c[PC_MAX_OBJS] = max_obj
    c[PC_FLAGS] = geo.zs_flags
    c[PC_DEBUG] = geo.debug
    # the swap allocator starts at a seed-chosen slot: on a running system the first free
    # cluster is rarely slot 0, and where it starts decides which slots a wrap-around reuses
    arena["swap_lock"][SWAP_CURSOR] = (geo.alloc_start if geo.alloc_start >= 0
                                       else (geo.seed * 2654435761) % geo.nr_slots)
    arena["fullness"][:] = -1
    arena["zone_free"][:] = -1
    reset_rows(arena["lockstat"])


def pattern_page(text: str, page_size: int) -> tuple[np.ndarray, int]:
    """A page filled with text repeated, as int64 words, and its compressed length.

    The length comes from a real compressor on the real page (zlib at level 1 standing in for
    lz4, which the standard library lacks): a stand-in, but a measured one.
    """
    raw = (text.encode() * (page_size // len(text.encode()) + 1))[:page_size]
    return np.frombuffer(raw, dtype=np.int64).copy(), len(zlib.compress(raw, 1))


def zram_view(arena: Arena) -> Zram:
    pool = Pool(arena["pool_lock"], arena["pool_stat"], arena["class_lock"], arena["class_stat"],
                arena["class_info"], arena["class_of_index"], arena["fullness"],
                arena["zspage"], arena["zone"], arena["zone_free"], arena["obj_next"],
                arena["obj_head"], arena["obj_zspage"], arena["obj_csum"], arena["pool_consts"])
    return Zram(arena["table"], arena["zram_stats"], arena["gc_map"], arena["gc_ctl"],
                arena["gc_queue"], arena["zram_params"], arena["faults"], arena["patterns"],
                arena["pattern_len"], arena["owner"], arena["kills"], pool)


def mm_view(arena: Arena) -> Mm:
    return Mm(arena["pte"], arena["swap_map"], arena["swap_lock"], arena["swap_recent"])


def ctx_view(arena: Arena, worker: int) -> Ctx:
    return Ctx(arena["wstat"][worker], arena["lockstat"][worker], arena["costs"][worker])


def page_buffer(arena: Arena, worker: int) -> np.ndarray:
    return arena["pagebuf"][worker]
