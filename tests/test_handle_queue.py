"""The handle queues' own accounting (deferred-zsfree, percpu-zsfree), in one process.

These strategies count their backlog in each buffer under its lock, as the kernel designs do,
instead of in zram's gc_slots. Against a real arena and the compiled enqueue and GC pass: what
the buffers say they hold equals the handles and bytes actually queued, each buffer stays within
its share of the cap (slots and bytes), what does not fit is refused, and a GC pass leaves
nothing held. The concurrent side (two freeing processes, a GC, reuse) is in
test_strategies.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emul.harness.arena import Arena
from emul.harness.microbench import fill_slots, loop_enqueue
from emul.kernel import layout as state
from emul.kernel.context import W_CPU, W_PEAK_BACKLOG, note_cpu
from emul.kernel.gc_hooks import gc_backlog, gc_drain
from emul.kernel.zram import ST_GC_BYTES, ST_GC_SLOTS
from emul.kernel.workqueue import GC_FLUSH
from emul.strategies import backlog_in_buffers, gc_backlog_now, get_strategy, strategy_id
from emul.strategies.common import (DB_BYTES, DB_COUNT, DB_HEADER, DB_SHARE_BYTES, DB_SHARE_SLOTS,
    HE_SIZE_BITS, HE_SIZE_SHIFT, HELD_UPDATE, NO_CAP, QH_BUF_CAP, QH_NR_BUFS, QH_WORDS,
    dbuf_emptied, dbuf_take, free_handle_entries)

HANDLE_STRATEGIES = ["deferred-zsfree", "percpu-zsfree"]
NR_SLOTS = 2048
PAGE = 4096


class Device:
    """An arena big enough for every handle strategy's queue, reset per example."""

    def __init__(self) -> None:
        words = max(get_strategy(n).queue_words(NR_SLOTS, NR_SLOTS) for n in HANDLE_STRATEGIES)
        self.arena = Arena.create(state.build_layout(self.geometry("sync", 0, 0, words)))
        self.words = words
        self.zram = state.zram_view(self.arena)
        self.mm = state.mm_view(self.arena)
        self.ctx = state.ctx_view(self.arena, 0)
        self.page = state.page_buffer(self.arena, 0)

    def geometry(self, name: str, cap_slots: int, cap_bytes: int, words: int) -> state.Geometry:
        return state.Geometry(page_size=PAGE, nr_slots=NR_SLOTS, total_pages=1, n_workers=1,
                              strategy_id=strategy_id(name), cap_slots=cap_slots,
                              cap_bytes=cap_bytes, queue_words=words, seed=7,
                              mean_comp_len=1800, spread_permille=600, same_ppm=50_000,
                              huge_ppm=20_000)

    def reset(self, name: str, cap_slots: int, cap_bytes: int, freeing: str = "all"):
        """A fresh device; ``freeing`` says which CPUs the cap is split over: "all", "mine"
        (the CPU this process's enqueues use) or "mine and another". Returns that list."""
        geo = self.geometry(name, cap_slots, cap_bytes, self.words)
        for view in self.arena.views.values():
            view[...] = 0
        state.init_state(self.arena, geo)
        note_cpu(self.ctx)   # the enqueues below use this CPU's buffer, wherever they run
        me = int(self.ctx.stat[W_CPU])
        cpus = {"all": None, "mine": [me], "mine and another": [me, me + 1]}[freeing]
        get_strategy(name).setup_queue(self.arena["gc_queue"], NR_SLOTS, cap_slots, cap_bytes,
                                       cpus=cpus)
        self.arena["costs"][:] = 0      # the zero profile: targets 0, no machinery taken off
        return cpus

    def drain(self, max_passes: int = 1000) -> int:
        """GC work items until nothing is queued, as the GC worker runs them (without sleeps),
        once the actors are done (GC_FLUSH: a per-page strategy then takes its last page)."""
        self.zram.gc_ctl[GC_FLUSH] = 1
        freed = passes = 0
        while gc_backlog(self.zram) > 0 and passes < max_passes:
            freed += int(gc_drain(self.zram, self.mm, self.ctx))
            passes += 1
        return freed

    def base(self, buf: int) -> int:
        return QH_WORDS + buf * (DB_HEADER + 2 * int(self.arena["gc_queue"][QH_BUF_CAP]))

    def shares(self, word: int) -> list[int]:
        q = self.arena["gc_queue"]
        return [int(q[self.base(b) + word]) for b in range(int(q[QH_NR_BUFS]))]

    def buffers(self):
        """(entries, bytes, sizes of the entries) of each buffer's two halves, from the layout."""
        q = self.arena["gc_queue"]
        cap = int(q[QH_BUF_CAP])
        for buf in range(int(q[QH_NR_BUFS])):
            base = self.base(buf)
            for half in (0, 1):
                n = int(q[base + DB_COUNT + half])
                start = base + DB_HEADER + half * cap
                sizes = (q[start:start + n] >> HE_SIZE_SHIFT) & ((1 << HE_SIZE_BITS) - 1)
                yield buf, n, int(q[base + DB_BYTES + half]), sizes


@pytest.fixture(scope="module")
def device():
    d = Device()
    yield d
    d.arena.unlink()
    d.arena.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(HANDLE_STRATEGIES),
       cap_slots=st.sampled_from([0, 1, 7, 64, 300, 5000]),
       cap_bytes=st.sampled_from([0, 4096, 100_000, 1 << 20]),
       n=st.integers(1, NR_SLOTS),
       freeing=st.sampled_from(["all", "mine", "mine and another"]))
def test_buffers_count_what_they_hold_within_their_share(device: Device, name, cap_slots,
                                                          cap_bytes, n, freeing) -> None:
    d = device
    cpus = d.reset(name, cap_slots, cap_bytes, freeing)
    assert backlog_in_buffers(d.arena)
    nr_bufs = int(d.arena["gc_queue"][QH_NR_BUFS])
    share, share_bytes = d.shares(DB_SHARE_SLOTS), d.shares(DB_SHARE_BYTES)
    # the shares go to the freeing CPUs' buffers only, and add up to the cap exactly
    sharing = set(range(nr_bufs)) if cpus is None else {c % nr_bufs for c in cpus}
    for shares_, cap in ((share, cap_slots), (share_bytes, cap_bytes)):
        if cap:
            assert sum(shares_) == cap
            assert all(shares_[b] == 0 for b in range(nr_bufs) if b not in sharing)
        else:
            assert set(shares_) == {NO_CAP}

    fill_slots(d.zram, d.ctx, 0, n, d.page)
    queued = int(loop_enqueue(d.zram, d.ctx, 0, n))

    held = held_bytes = 0
    per_buf: dict[int, list[int]] = {}
    for buf, count, nbytes, sizes in d.buffers():
        assert nbytes == int(sizes.sum()), "a half's byte count differs from its entries"
        per_buf.setdefault(buf, [0, 0])
        per_buf[buf][0] += count
        per_buf[buf][1] += nbytes
        held, held_bytes = held + count, held_bytes + nbytes
    for buf, (count, nbytes) in per_buf.items():
        assert count <= share[buf], (buf, count, share)
        assert nbytes <= share_bytes[buf], (buf, nbytes, share_bytes)
    assert held == queued
    assert gc_backlog_now(d.arena) == (held, held_bytes)
    # nothing of theirs in zram's own counters
    stats = d.arena["zram_stats"]
    assert int(stats[ST_GC_SLOTS]) == int(stats[ST_GC_BYTES]) == 0
    peak = int(d.arena["wstat"][0, W_PEAK_BACKLOG])
    assert peak == held, (peak, held)   # one CPU enqueued: its buffer's count is the whole

    freed = d.drain()
    assert freed == queued
    assert gc_backlog_now(d.arena) == (0, 0)
    assert all(count == nbytes == 0 for _, count, nbytes, _ in d.buffers())


@pytest.mark.parametrize("name", HANDLE_STRATEGIES)
def test_a_full_share_refuses_and_the_gc_makes_room(device: Device, name) -> None:
    """Over the share the enqueue refuses (the caller frees in place); after a GC pass the same
    buffer takes handles again."""
    d = device
    d.reset(name, 16, 0, "mine")
    share = 16   # this process is the only freeing CPU: its buffer holds the whole cap
    fill_slots(d.zram, d.ctx, 0, 256, d.page)
    first = int(loop_enqueue(d.zram, d.ctx, 0, 256))
    assert first == share
    assert gc_backlog_now(d.arena)[0] == share
    assert d.drain() == share
    again = int(loop_enqueue(d.zram, d.ctx, 0, 256))   # the refused slots, still holding content
    assert again == share
    assert np.count_nonzero(d.arena["gc_map"]) == 0     # handle queues never mark gc_map


@pytest.mark.parametrize("name", HANDLE_STRATEGIES)
def test_the_gc_counts_its_half_down_as_it_frees(device: Device, name) -> None:
    """While the GC frees a half it took, the half's count and bytes go down every HELD_UPDATE
    handles (producers' cap checks and the controller's samples read them); they only reach 0
    when the half is emptied."""
    d = device
    d.reset(name, 0, 0, "mine")
    q = d.arena["gc_queue"]
    fill_slots(d.zram, d.ctx, 0, 400, d.page)      # under a page: all in the active half
    queued = int(loop_enqueue(d.zram, d.ctx, 0, 400))
    buf = int(d.ctx.stat[W_CPU]) % int(q[QH_NR_BUFS])
    base = d.base(buf)
    start, n, half = dbuf_take(q, base, d.ctx)
    assert n == queued > 2 * HELD_UPDATE
    by_class = name == "percpu-zsfree"
    entries = q[start:start + n].copy()
    order = np.sort(entries) if by_class else entries   # the order the GC frees them in
    sizes = (order >> HE_SIZE_SHIFT) & ((1 << HE_SIZE_BITS) - 1)
    assert int(q[base + DB_BYTES + half]) == int(sizes.sum())

    freed = free_handle_entries(d.zram, d.ctx, base, half, start, n, by_class)

    assert freed == n
    left = int(q[base + DB_COUNT + half])
    if not by_class:            # one handle per run: the count-down lands on every 64th
        assert left == n - n // HELD_UPDATE * HELD_UPDATE
    else:                       # runs of one class: published at a run's end, 64 or more on
        assert 0 <= left <= n - HELD_UPDATE
    # what is still counted is exactly what was freed last (not yet published)
    assert int(q[base + DB_BYTES + half]) == int(sizes[n - left:].sum())
    assert gc_backlog_now(d.arena)[0] == left
    dbuf_emptied(q, base, half)
    assert gc_backlog_now(d.arena) == (0, 0)


def test_percpu_hands_over_whole_pages_and_the_flush_the_rest(device: Device) -> None:
    """RFC v3: the worker gets a CPU's handles a page at a time; what is left of the last page
    waits for the flush at the end (zs_free_deferred_flush)."""
    from emul.strategies.percpu_zsfree import PAGE_ENTRIES
    d = device
    d.reset("percpu-zsfree", 0, 0)
    n = PAGE_ENTRIES + 100
    fill_slots(d.zram, d.ctx, 0, n, d.page)
    queued = int(loop_enqueue(d.zram, d.ctx, 0, n))
    first = int(gc_drain(d.zram, d.mm, d.ctx))       # no flush yet: the full page only
    assert 0 < first <= PAGE_ENTRIES and gc_backlog(d.zram) == queued - first
    assert d.drain() == queued - first and gc_backlog(d.zram) == 0
