"""zs_malloc / zs_free against a Python model of the live objects (single process).

The pool lives in a real arena (created once for the module, reset between examples the way
controller.run_repeat does: every array zeroed, then init_state). After random sequences of
allocations, frees and double frees, the compiled pool walk must find every structure
consistent, and the pool's own counters must equal what the live handles imply.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emul.harness.arena import Arena
from emul.kernel.audit import (PA_BAD_CLASS_STAT, PA_BAD_FREELIST, PA_BAD_FULLNESS, PA_BAD_HANDLE,
    PA_BAD_INUSE, PA_BAD_LIST, PA_DUP_HANDLE, PA_LISTED, PA_LIVE_ZSPAGES, PA_PAGES, PA_SLOT_HANDLES,
    PA_TAGGED, pool_walk)
from emul.kernel.layout import Geometry, build_layout, ctx_view, init_state, zram_view
from emul.kernel.zs_classes import build_size_classes, class_index_for
from emul.kernel.zsmalloc import (CS_OBJS_INUSE, CS_WORDS, OBJ_ALLOCATED_TAG, PC_MAX_OBJS,
    PC_MAX_ZSPAGES, PS_ALLOC_FAILED, PS_BAD_FREE, PS_PAGES_ALLOCATED, PS_ZSPAGES, ZS_HANDLE_SIZE,
    ZSPAGE_LIVE, class_pages_per_zspage, class_size, zs_free, zs_lookup_class_index, zs_malloc,
    zs_obj_read, zspage_class, zspage_state)

PAGE = 4096
GEO = Geometry(page_size=PAGE, nr_slots=2048, total_pages=1, n_workers=1, strategy_id=0,
               cap_slots=0, cap_bytes=0, queue_words=0, seed=1, mean_comp_len=2048,
               spread_permille=250, same_ppm=0, huge_ppm=0)
TABLE = build_size_classes(PAGE, GEO.chain_size)
LAST_CLASS = int(TABLE.class_of_index[-1])
BAD_WALK = {PA_BAD_INUSE: "inuse", PA_BAD_FREELIST: "free list", PA_BAD_FULLNESS: "fullness",
            PA_BAD_LIST: "fullness list", PA_BAD_CLASS_STAT: "class stat",
            PA_BAD_HANDLE: "slot handle", PA_DUP_HANDLE: "duplicate handle"}


class PoolModel:
    """The arena, its views, and what the test believes is allocated."""

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self.zram = zram_view(arena)
        self.pool = self.zram.pool
        self.ctx = ctx_view(arena, 0)
        self.reset()

    def reset(self) -> None:
        for key in self.arena.views:
            self.arena[key][...] = 0
        init_state(self.arena, GEO)
        self.live: dict[int, tuple[int, int]] = {}   # handle -> (size, csum)
        self.freed: set[int] = set()                 # handles freed and not handed out again
        self.bad_frees = 0

    def malloc(self, size: int, csum: int) -> int:
        h = int(zs_malloc(self.pool, self.ctx, size, csum))
        assert h > 0, f"zs_malloc({size}) failed"
        assert h not in self.live, f"zs_malloc handed out live handle {h} again"
        self.live[h] = (size, csum)
        self.freed.discard(h)
        return h

    def free(self, h: int) -> None:
        zs_free(self.pool, self.ctx, h)
        del self.live[h]
        self.freed.add(h)

    def double_free(self, h: int) -> None:
        assert h in self.freed and h not in self.live
        before = self.pool.stat.copy()
        zs_free(self.pool, self.ctx, h)
        self.bad_frees += 1
        after = self.pool.stat.copy()
        assert after[PS_BAD_FREE] == before[PS_BAD_FREE] + 1, "double free went unnoticed"
        after[PS_BAD_FREE] = before[PS_BAD_FREE]
        assert np.array_equal(before, after), "a double free changed the pool's counters"

    def check(self) -> None:
        pool, stat = self.pool, self.pool.stat
        walk = pool_walk(self.zram)
        bad = {name: int(walk[k]) for k, name in BAD_WALK.items() if walk[k]}
        assert not bad, f"pool walk found broken structures: {bad}"
        assert walk[PA_SLOT_HANDLES] == 0
        assert walk[PA_TAGGED] == len(self.live), "allocated objects != live handles"
        assert stat[PS_PAGES_ALLOCATED] == walk[PA_PAGES]
        assert stat[PS_ZSPAGES] == walk[PA_LIVE_ZSPAGES] == walk[PA_LISTED]
        assert stat[PS_BAD_FREE] == self.bad_frees
        assert stat[PS_ALLOC_FAILED] == 0

        # the counters again, from the model: zspages of live objects and their pages
        zspages: dict[int, int] = {}
        inuse = Counter()
        for h, (size, csum) in self.live.items():
            obj = h - 1
            assert pool.obj_head[obj] == h | OBJ_ALLOCATED_TAG
            assert zs_obj_read(pool, h) == csum, f"handle {h} lost its content"
            z = int(pool.obj_zspage[obj])
            assert zspage_state(pool, z) == ZSPAGE_LIVE
            cls = int(zspage_class(pool, z))
            zspages[z] = cls
            inuse[cls] += 1
            assert cls == class_index_for(TABLE, size), f"size {size} in class {cls}"
            if cls != LAST_CLASS:
                assert class_size(pool, cls) >= size + ZS_HANDLE_SIZE
        pages = sum(int(class_pages_per_zspage(pool, c)) for c in zspages.values())
        assert stat[PS_PAGES_ALLOCATED] == pages
        assert stat[PS_ZSPAGES] == len(zspages)
        objs_inuse = pool.class_stat.reshape(-1, CS_WORDS)[:, CS_OBJS_INUSE]
        expected = np.zeros_like(objs_inuse)
        for cls, n in inuse.items():
            expected[cls] = n
        assert np.array_equal(objs_inuse, expected)


@pytest.fixture(scope="module")
def model():
    arena = Arena.create(build_layout(GEO))
    try:
        yield PoolModel(arena)
    finally:
        arena.unlink()
        arena.close()


# a few sizes share classes (so zspages fill, move between fullness groups and empty out);
# the rest spread over every class, the boundaries included
FEW_SIZES = [1, 24, 25, 100, 500, 1000, 2000, 3000, 3616, 3617, 4088, 4089, 4096]
sizes = st.one_of(st.integers(1, PAGE), st.sampled_from(FEW_SIZES))
csums = st.integers(-(1 << 63), (1 << 63) - 1)
ops = st.lists(st.one_of(
    st.tuples(st.just("malloc"), sizes, csums),
    st.tuples(st.just("burst"), st.sampled_from(FEW_SIZES), st.integers(1, 300), csums),
    st.tuples(st.just("free"), st.integers(0, 1 << 30)),
    st.tuples(st.just("free_many"), st.integers(0, 1 << 30), st.integers(1, 200)),
    st.tuples(st.just("double_free"), st.integers(0, 1 << 30)),
    st.tuples(st.just("check"),),
), min_size=8, max_size=80)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops)
def test_random_malloc_free_keeps_pool_consistent(model: PoolModel, ops) -> None:
    m = model
    m.reset()
    for op in ops:
        kind = op[0]
        if kind == "malloc":
            m.malloc(op[1], op[2])
        elif kind == "burst":
            for i in range(op[2]):
                m.malloc(op[1], op[3] ^ i)
        elif kind == "free" and m.live:
            m.free(sorted(m.live)[op[1] % len(m.live)])
        elif kind == "free_many" and m.live:
            handles = sorted(m.live)
            start = op[1] % len(handles)
            for h in handles[start:start + op[2]]:
                m.free(h)
        elif kind == "double_free" and m.freed:
            m.double_free(sorted(m.freed)[op[1] % len(m.freed)])
        elif kind == "check":
            m.check()
    m.check()
    for h in list(m.live):
        m.free(h)
    m.check()
    assert m.pool.stat[PS_PAGES_ALLOCATED] == 0
    assert m.pool.stat[PS_ZSPAGES] == 0
    assert pool_walk(m.zram)[PA_LIVE_ZSPAGES] == 0


def test_double_free_is_counted(model: PoolModel) -> None:
    m = model
    m.reset()
    # a and b share a zspage: freeing a twice must not touch b or the zspage's count
    a, b = m.malloc(100, 11), m.malloc(100, 22)
    assert m.pool.obj_zspage[a - 1] == m.pool.obj_zspage[b - 1]
    m.free(a)
    m.double_free(a)
    assert m.pool.stat[PS_BAD_FREE] == 1
    m.check()
    # c is alone in its zspage: the first free gives the zspage back, the second is still caught
    c = m.malloc(3000, 33)
    pages = int(m.pool.stat[PS_PAGES_ALLOCATED])
    m.free(c)
    assert m.pool.stat[PS_PAGES_ALLOCATED] < pages
    m.double_free(c)
    assert m.pool.stat[PS_BAD_FREE] == 2
    m.check()
    # the given-back zspage is reused, and the reused object is a fresh allocation
    d = m.malloc(3000, 44)
    assert d == c and zs_obj_read(m.pool, d) == 44
    m.check()
    m.free(d)
    m.free(b)
    m.check()
    assert m.pool.stat[PS_PAGES_ALLOCATED] == 0 and m.pool.stat[PS_ZSPAGES] == 0


@pytest.mark.parametrize("size", [0, -1, PAGE + 1, 1 << 20])
def test_malloc_rejects_bad_sizes(model: PoolModel, size: int) -> None:
    m = model
    m.reset()
    assert zs_malloc(m.pool, m.ctx, size, 5) == 0
    assert not m.pool.stat.any()
    assert not m.pool.class_stat.any()
    m.check()


def test_every_size_lands_in_a_big_enough_class(model: PoolModel) -> None:
    m = model
    m.reset()
    handles = {s: m.malloc(s, s * 7919) for s in range(1, PAGE + 1)}
    m.check()   # includes class == class_index_for(size) and class size >= size + 8
    for s, h in handles.items():
        cls = int(zspage_class(m.pool, int(m.pool.obj_zspage[h - 1])))
        if s + ZS_HANDLE_SIZE <= PAGE:
            assert class_size(m.pool, cls) >= s + ZS_HANDLE_SIZE, (s, cls)
        else:
            assert cls == LAST_CLASS and class_size(m.pool, cls) == PAGE
        # what RFC v3's enqueue keys a handle by, from the size alone: the object's own class
        assert zs_lookup_class_index(m.pool, s) == cls, s
    for h in handles.values():
        m.free(h)
    m.check()
    assert m.pool.stat[PS_PAGES_ALLOCATED] == 0


def test_full_pool_fails_cleanly_and_recovers(model: PoolModel) -> None:
    """Huge objects take a zspage each: the descriptor table runs out, zs_malloc returns 0."""
    m = model
    m.reset()
    max_z = int(m.pool.consts[PC_MAX_ZSPAGES])
    assert max_z <= int(m.pool.consts[PC_MAX_OBJS])
    handles = [m.malloc(PAGE, i) for i in range(max_z)]
    assert zs_malloc(m.pool, m.ctx, PAGE, -1) == 0
    assert m.pool.stat[PS_ALLOC_FAILED] == 1
    assert m.pool.stat[PS_PAGES_ALLOCATED] == max_z
    m.pool.stat[PS_ALLOC_FAILED] = 0     # counted; the model's check expects none
    m.check()
    victim = handles.pop(len(handles) // 2)
    m.free(victim)
    assert m.malloc(PAGE, 12345) == victim    # its descriptor is given out again
    m.check()
    for h in list(m.live):
        m.free(h)
    m.check()
    assert m.pool.stat[PS_PAGES_ALLOCATED] == 0 and m.pool.stat[PS_ZSPAGES] == 0
