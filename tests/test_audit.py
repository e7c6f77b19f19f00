"""The audit catches each kind of fault when the state is broken on purpose (in one process)."""
from __future__ import annotations

import numpy as np
import pytest

from emul.harness.arena import Arena
from emul.kernel.audit import audit
from emul.kernel import layout as state
from emul.kernel.mm import populate_vma, swap_out_range, unmap_vma
from emul.kernel.zram import ZRAM_SAME, ZP_PAGE_SHIFT
from emul.kernel.zsmalloc import zs_free
from emul.strategies import strategy_id
from emul.kernel.gc_hooks import gc_drain

PAGES = 1024


@pytest.fixture
def arena():
    geo = state.Geometry(page_size=4096, nr_slots=2 * PAGES, total_pages=PAGES, n_workers=2,
                         strategy_id=strategy_id("bitmap"), cap_slots=0, cap_bytes=0,
                         queue_words=0, seed=5, mean_comp_len=1500, spread_permille=500,
                         same_ppm=100_000, huge_ppm=50_000)
    a = Arena.create(state.build_layout(geo))
    a.unlink()
    state.init_state(a, geo)
    z, mm = state.zram_view(a), state.mm_view(a)
    populate_vma(mm, 0, PAGES)
    swap_out_range(z, mm, state.ctx_view(a, 0), 0, PAGES, 1_000_000, state.page_buffer(a, 0))
    yield a
    a.close()


def problems(a, expect_empty=False) -> str:
    report = audit(a, expect_empty=expect_empty)
    assert report["ok"] == (not report["problems"])
    return " | ".join(report["problems"])


def queued_slots(a) -> np.ndarray:
    bits = np.unpackbits(a["gc_map"].view(np.uint8), bitorder="little")
    return np.flatnonzero(bits[: a["swap_map"].size])


def test_clean_state_passes(arena):
    assert problems(arena) == ""
    assert audit(arena, expect_empty=False)["counts"]["allocated"] == PAGES


def test_queued_slots_never_drained_are_lost(arena):
    unmap_vma(state.zram_view(arena), state.mm_view(arena), state.ctx_view(arena, 0), 0, PAGES)
    assert problems(arena) == ""                       # queued is a legal state mid-run
    assert "never freed (lost)" in problems(arena, expect_empty=True)
    gc_drain(state.zram_view(arena), state.ctx_view(arena, 1))
    assert problems(arena, expect_empty=True) == ""


def test_a_slot_dropped_from_the_queue_is_caught(arena):
    unmap_vma(state.zram_view(arena), state.mm_view(arena), state.ctx_view(arena, 0), 0, PAGES)
    s = queued_slots(arena)[0]
    arena["gc_map"][s >> 6] &= ~(np.int64(1) << np.int64(s & 63))  # a strategy "forgot" it
    text = problems(arena)
    assert "gc_slots" in text and "leaked" in text


def test_double_free_is_caught(arena):
    z = state.zram_view(arena)
    shift = int(z.params[ZP_PAGE_SHIFT]) + 1
    table = arena["table"].reshape(-1, 2)
    s = next(i for i in range(PAGES)
             if table[i, 0] and not (table[i, 1] >> (shift + ZRAM_SAME)) & 1)
    ctx = state.ctx_view(arena, 0)
    zs_free(z.pool, ctx, int(table[s, 0]))
    assert "names no allocated object" in problems(arena)
    zs_free(z.pool, ctx, int(table[s, 0]))
    assert "double free" in problems(arena)


def test_leaked_object_and_wrong_counter_are_caught(arena):
    shift = int(arena["zram_params"][ZP_PAGE_SHIFT]) + 1
    table = arena["table"].reshape(-1, 2)
    s = next(i for i in range(PAGES)
             if table[i, 0] and not (table[i, 1] >> (shift + ZRAM_SAME)) & 1)
    table[s, 0] = 0                                       # slot forgets its handle
    table[s, 1] &= ~((1 << shift) - 1)
    text = problems(arena)
    assert "leaked objects" in text and "pages_stored" in text and "lost data" in text


def test_swap_in_of_corrupted_content_is_caught(arena):
    from emul.kernel.mm import swap_in_range
    z, mm = state.zram_view(arena), state.mm_view(arena)
    clean = swap_in_range(z, mm, state.ctx_view(arena, 0), 0, PAGES // 2,
                          state.page_buffer(arena, 0))
    assert clean == PAGES // 2 and problems(arena) == ""
    shift = int(arena["zram_params"][ZP_PAGE_SHIFT]) + 1
    table = arena["table"].reshape(-1, 2)
    slots = [-int(arena["pte"][p]) - 1 for p in range(PAGES // 2, PAGES)]
    s = next(i for i in slots if table[i, 0] and not (table[i, 1] >> (shift + ZRAM_SAME)) & 1)
    arena["obj_csum"][table[s, 0] - 1] ^= 1                  # flip a bit of one stored page
    swap_in_range(z, mm, state.ctx_view(arena, 0), PAGES // 2, PAGES,
                  state.page_buffer(arena, 0))
    assert "1 reads returned other content" in problems(arena)
