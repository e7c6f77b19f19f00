"""The audit catches each kind of fault when the state is broken on purpose (in one process)."""
from __future__ import annotations

import numpy as np
import pytest

from emul.harness.arena import Arena
from emul.kernel.audit import audit
from emul.kernel import layout as state
from emul.kernel.mm import populate_vma, swap_out_range, unmap_vma
from emul.kernel.debug import DEBUG_ASSERT_LOCKED
from emul.kernel.gc_hooks import gc_drain
from emul.kernel.zram import (ZRAM_SAME, set_slot_size, slot_lock, slot_unlock, table_flags,
    table_handles)
from emul.kernel.zsmalloc import zs_free
from emul.strategies import strategy_id

PAGES = 1024


def swapped_out_arena(debug: int = 0) -> Arena:
    """PAGES pages swapped out into a bitmap-strategy device (one process, no workers)."""
    geo = state.Geometry(page_size=4096, nr_slots=2 * PAGES, total_pages=PAGES, n_workers=2,
                         strategy_id=strategy_id("bitmap"), cap_slots=0, cap_bytes=0,
                         queue_words=0, seed=5, mean_comp_len=1500, spread_permille=500,
                         same_ppm=100_000, huge_ppm=50_000, debug=debug)
    a = Arena.create(state.build_layout(geo))
    a.unlink()
    state.init_state(a, geo)
    z, mm = state.zram_view(a), state.mm_view(a)
    populate_vma(mm, 0, PAGES)
    swap_out_range(z, mm, state.ctx_view(a, 0), 0, PAGES, 1_000_000, state.page_buffer(a, 0))
    return a


@pytest.fixture
def arena():
    a = swapped_out_arena()
    yield a
    a.close()


@pytest.fixture
def locked_arena():
    """The same with the debug switch assert_locked on."""
    a = swapped_out_arena(DEBUG_ASSERT_LOCKED)
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
    gc_drain(state.zram_view(arena), state.mm_view(arena), state.ctx_view(arena, 1))
    assert problems(arena, expect_empty=True) == ""


def test_a_slot_dropped_from_the_queue_is_caught(arena):
    unmap_vma(state.zram_view(arena), state.mm_view(arena), state.ctx_view(arena, 0), 0, PAGES)
    s = queued_slots(arena)[0]
    arena["gc_map"][s >> 6] &= ~(np.int64(1) << np.int64(s & 63))  # a strategy "forgot" it
    text = problems(arena)
    assert "gc_slots" in text and "leaked" in text


def object_slots(a, among=range(PAGES)) -> list[int]:
    """Slots (of those given) that hold a zsmalloc object: a handle, not ZRAM_SAME."""
    z = state.zram_view(a)
    handles, same = table_handles(z), table_flags(z, ZRAM_SAME)
    return [i for i in among if handles[i] and not same[i]]


def test_double_free_is_caught(arena):
    z = state.zram_view(arena)
    s = object_slots(arena)[0]
    handle = int(table_handles(z)[s])
    ctx = state.ctx_view(arena, 0)
    zs_free(z.pool, ctx, handle)
    assert "names no allocated object" in problems(arena)
    zs_free(z.pool, ctx, handle)
    assert "double free" in problems(arena)


def test_leaked_object_and_wrong_counter_are_caught(arena):
    z = state.zram_view(arena)
    s = object_slots(arena)[0]
    arena["table"][2 * s] = 0                             # slot forgets its handle
    set_slot_size(z, s, 0)
    text = problems(arena)
    assert "leaked objects" in text and "pages_stored" in text and "lost data" in text


def test_swap_in_of_corrupted_content_is_caught(arena):
    from emul.kernel.mm import swap_in_range
    z, mm = state.zram_view(arena), state.mm_view(arena)
    clean = swap_in_range(z, mm, state.ctx_view(arena, 0), 0, PAGES // 2,
                          state.page_buffer(arena, 0))
    assert clean == PAGES // 2 and problems(arena) == ""
    slots = [-int(arena["pte"][p]) - 1 for p in range(PAGES // 2, PAGES)]
    s = object_slots(arena, slots)[0]
    arena["obj_csum"][table_handles(z)[s] - 1] ^= 1          # flip a bit of one stored page
    swap_in_range(z, mm, state.ctx_view(arena, 0), PAGES // 2, PAGES,
                  state.page_buffer(arena, 0))
    assert "1 reads returned other content" in problems(arena)


def test_assert_locked_passes_the_locked_paths(locked_arena):
    """With assert_locked on, swap-out (writes), unmap (frees, queueing) and the GC's drain run
    every `__` function with its lock held: no fault."""
    a = locked_arena
    z, mm = state.zram_view(a), state.mm_view(a)
    unmap_vma(z, mm, state.ctx_view(a, 0), 0, PAGES)
    gc_drain(z, mm, state.ctx_view(a, 1))
    assert problems(a, expect_empty=True) == ""


def test_assert_locked_catches_an_unlocked_call(locked_arena):
    """A `__` function called without its lock is counted, and the audit reports it: the slot
    lock (zram) and the class lock (zsmalloc)."""
    from emul.kernel import zram as zram_mod
    from emul.kernel import zsmalloc as zs_mod
    a = locked_arena
    z = state.zram_view(a)
    s = object_slots(a)[0]
    getattr(zram_mod, "__debug_requeue")(z, s, False)   # needs the slot lock: not taken
    assert "1 calls of `__` functions without the lock they need (1 slot lock" in problems(a)
    ctx = state.ctx_view(a, 0)
    slot_lock(z, ctx, s)
    getattr(zram_mod, "__debug_requeue")(z, s, False)   # ... now taken: not counted
    slot_unlock(z, ctx, s)
    zspage = int(a["obj_zspage"][table_handles(z)[s] - 1])
    cls = int(zs_mod.zspage_class(z.pool, zspage))
    getattr(zs_mod, "__find_get_zspage")(z.pool, cls)   # needs the class lock: not taken
    assert "2 calls of `__` functions without the lock they need (1 slot lock, 1 class lock)" \
        in problems(a)


def test_assert_locked_is_off_by_default(arena):
    from emul.kernel import zram as zram_mod
    z = state.zram_view(arena)
    getattr(zram_mod, "__debug_requeue")(z, object_slots(arena)[0], False)
    assert problems(arena) == ""
