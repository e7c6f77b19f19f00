"""Compiled pieces every lazy-free strategy shares: the cap, gc_map, the queues, the GC's pass.

A strategy's ``enqueue`` runs under the slot lock from zram_slot_free_notify and returns
LAZY_QUEUED, LAZY_NO or LAZY_REFUSED (kernel/zram.py); its ``drain(zram, mm, ctx)`` runs in the
GC worker as one work item and returns how many slots it freed; the work item itself
(queue_work, cond_resched) is kernel/workqueue.py. Whatever a slot queue looks like, a queued
slot is marked in ``gc_map`` and counted in ``gc_slots``; slot_free() takes it off both, so a
slot that a write reuses while queued is never freed twice, and a drain frees a slot only if it
is still marked (checked under the slot lock).

The handle queues (deferred-zsfree, percpu-zsfree) free the slot at once and queue only its
object's handle, so nothing of theirs is in gc_map. They count their backlog where the kernel's
designs do, in each buffer under its lock (v2's array index, v3's per-CPU page count), not in
zram-wide atomics: ``handles_held`` sums the buffers, and gc_hooks' ``gc_backlog`` picks
the right count for the strategy.
"""
from __future__ import annotations

import os
from collections.abc import Callable

from numba import njit

from emul.kernel.atomics import (atomic_add_below, atomic_load, atomic_store,
    atomic_store_release, cpu_relax)
from emul.kernel.context import W_BATCH_SAVED, W_CPU, W_PEAK_BACKLOG, W_PEAK_BYTES, Ctx
from emul.kernel.locking import note_update, spin_lock, spin_trylock, spin_unlock, stat_add
from emul.kernel.lockstat import LOCK_GC_QUEUE
from emul.kernel.workqueue import cond_resched, queue_work
from emul.kernel.zram import (LAZY_NO, LAZY_QUEUED, LAZY_REFUSED, ST_GC_BYTES, ST_GC_SLOTS,
    ZP_CAP_BYTES, ZP_CAP_SLOTS, ZRAM_SAME, Zram, gc_mark, gc_test, get_slot_handle, get_slot_size,
    slot_free, slot_free_extract, slot_lock, slot_trylock, slot_unlock, test_slot_flag)
from emul.kernel.zsmalloc import zs_free, zs_free_run, zs_lookup_class_index


@njit(cache=True, _nrt=False, inline="always")
def note_peak_backlog(ctx: Ctx, slots: int, nbytes: int) -> None:
    if slots > ctx.stat[W_PEAK_BACKLOG]:
        ctx.stat[W_PEAK_BACKLOG] = slots
    if nbytes > ctx.stat[W_PEAK_BYTES]:
        ctx.stat[W_PEAK_BYTES] = nbytes


@njit(cache=True, _nrt=False, inline="always")
def gc_reserve(zram: Zram, ctx: Ctx, index: int) -> bool:
    """Count a slot into gc_slots / gc_bytes unless that goes over the cap (then undo, refuse).
    The slot queues' cap; the handle queues count theirs per buffer (handle_room)."""
    size = get_slot_size(zram, index)
    cap_slots = zram.params[ZP_CAP_SLOTS]
    cap_bytes = zram.params[ZP_CAP_BYTES]
    # gc_slots never passes its cap, even for a moment (the backlog sampler reads it); gc_bytes
    # can pass its byte cap for the moment a refused reservation takes to undo
    if cap_slots > 0:
        n = atomic_add_below(zram.stats, ST_GC_SLOTS, 1, cap_slots)
        if n < 0:
            return False
        note_update(ctx, ST_GC_SLOTS, n - 1, n)
    else:
        n = stat_add(zram.stats, ctx, ST_GC_SLOTS, 1) + 1
    b = stat_add(zram.stats, ctx, ST_GC_BYTES, size) + size
    if cap_bytes > 0 and b > cap_bytes:
        stat_add(zram.stats, ctx, ST_GC_SLOTS, -1)
        stat_add(zram.stats, ctx, ST_GC_BYTES, -size)
        return False
    note_peak_backlog(ctx, n, b)
    return True


@njit(cache=True, _nrt=False, inline="always")
def lazy_queue_slot(zram: Zram, ctx: Ctx, index: int) -> int:
    """Reserve room and mark the slot queued in gc_map; the strategy then records it its way."""
    if not gc_reserve(zram, ctx, index):
        return LAZY_REFUSED
    gc_mark(zram, index)
    return LAZY_QUEUED


# --- double-buffered arrays: the queue storage of array, percpu and the handle strategies -------
#
# gc_queue[0..7] is the strategy header: [0] the drain lock (one GC drains at a time), [2] the
# number of buffers (CPUs, or 1), [3] each buffer's capacity. A double buffer at ``base``:
#   [base+0] its lock (spin_lock; the kernel's spinlock or, per CPU, local_lock), [base+1] owner
#   [base+2] the active half producers push to, [base+3], [base+4] the halves' counts
#   [base+5], [base+6] the halves' compressed bytes (handle queues)
#   [base+8], [base+9] (handle queues, set once) this buffer's share of the cap in entries and
#   in bytes (NO_CAP: none); a line of its own, away from the lock's
#   [base+16 ...] half 0, then half 1, each ``cap`` words
# The GC flips the active half under the lock and then empties the other one without it:
# producers only ever write the active half.
QH_DRAIN_LOCK = 0
QH_NR_BUFS = 2
QH_BUF_CAP = 3
QH_WORDS = 8
NO_CAP = 1 << 62
DB_LOCK = 0
DB_ACTIVE = 2
DB_COUNT = 3
DB_BYTES = 5
DB_SHARE_SLOTS = 8
DB_SHARE_BYTES = 9
DB_HEADER = 16


def dbuf_words(cap: int) -> int:
    return DB_HEADER + 2 * cap


def dbufs_words(nr_bufs: int, cap: int) -> int:
    """gc_queue words for a header and nr_bufs double buffers of cap entries each."""
    return QH_WORDS + nr_bufs * dbuf_words(cap)


@njit(cache=True, _nrt=False, inline="always")
def dbuf_base(q, buf: int) -> int:
    return QH_WORDS + buf * (DB_HEADER + 2 * q[QH_BUF_CAP])


@njit(cache=True, _nrt=False, inline="always")
def dbuf_room(q, base: int) -> bool:
    """Room in the active half (buffer lock held)."""
    return q[base + DB_COUNT + q[base + DB_ACTIVE]] < q[QH_BUF_CAP]


@njit(cache=True, _nrt=False, inline="always")
def dbuf_push(q, base: int, value: int) -> None:
    """Append to the active half (buffer lock held, room checked)."""
    half = q[base + DB_ACTIVE]
    n = q[base + DB_COUNT + half]
    q[base + DB_HEADER + half * q[QH_BUF_CAP] + n] = value
    atomic_store_release(q, base + DB_COUNT + half, n + 1)   # the GC may read it lock-free


@njit(cache=True, _nrt=False, inline="always")
def dbuf_flip(q, base: int) -> int:
    """Make the other half active (buffer lock held); returns the half to empty."""
    half = q[base + DB_ACTIVE]
    q[base + DB_ACTIVE] = 1 - half
    return half


@njit(cache=True, _nrt=False, inline="always")
def dbuf_half_start(q, base: int, half: int) -> int:
    return base + DB_HEADER + half * q[QH_BUF_CAP]


@njit(cache=True, _nrt=False, inline="always")
def dbuf_pending(q, base: int) -> int:
    return atomic_load(q, base + DB_COUNT) + atomic_load(q, base + DB_COUNT + 1)


@njit(cache=True, _nrt=False, inline="always")
def this_cpu_buf(q, ctx: Ctx) -> int:
    """The buffer of the CPU this worker runs on (per-CPU strategies)."""
    return ctx.stat[W_CPU] % q[QH_NR_BUFS]


def cpu_buffers() -> int:
    """How many per-CPU buffers a per-CPU strategy keeps: one per CPU of the machine."""
    return max(1, os.cpu_count() or 1)


def init_queue(q, nr_bufs: int, cap: int) -> None:
    """Header values (controller side, after the arena is zeroed)."""
    q[QH_NR_BUFS] = nr_bufs
    q[QH_BUF_CAP] = cap


def cap_or_device(nr_slots: int, cap_slots: int) -> int:
    """A buffer that holds the cap (the whole device when there is none)."""
    return min(nr_slots, cap_slots) if cap_slots else nr_slots


def cap_and_stale(nr_slots: int, cap_slots: int) -> int:
    """... plus room for stale entries of slots reused while queued (slot queues)."""
    return min(nr_slots, cap_slots) + 256 if cap_slots else nr_slots


def cap_shares(cap: int, bufs: list[int], nr_bufs: int) -> list[int]:
    """Each buffer's share of a cap (0: none), split evenly over ``bufs`` (the first ones get
    the remainder, so the shares add up to the cap exactly); the other buffers get none."""
    if cap <= 0:
        return [NO_CAP] * nr_bufs
    each, extra = divmod(cap, len(bufs))
    shares = [0] * nr_bufs
    for k, buf in enumerate(bufs):
        shares[buf] = each + (1 if k < extra else 0)
    return shares


def dbuf_queue(buffer_cap: Callable[[int, int], int], per_cpu: bool = False,
               handles: bool = False) -> tuple[Callable, Callable]:
    """A strategy's ``queue_words`` and ``setup_queue`` for double buffers of
    ``buffer_cap(nr_slots, cap)`` entries: one, or one per CPU.

    A handle queue also gives each buffer its share of the cap, in entries and in bytes. Per
    CPU the cap is split over the buffers of ``cpus``, the CPUs the scenario's freeing workers
    run on (None: every CPU), so the share does not shrink with the host's CPU count; a CPU
    whose share is used up frees synchronously, as RFC v3 does when its CPU has no spare page.
    """
    def nr_bufs() -> int:
        return cpu_buffers() if per_cpu else 1

    def queue_words(nr_slots: int, cap_slots: int) -> int:
        return dbufs_words(nr_bufs(), buffer_cap(nr_slots, cap_slots))

    def setup_queue(q, nr_slots: int, cap_slots: int, cap_bytes: int = 0,
                    cpus: list[int] | None = None) -> None:
        n = nr_bufs()
        init_queue(q, n, buffer_cap(nr_slots, cap_slots))
        if not handles:
            return
        bufs = sorted({c % n for c in cpus}) if cpus else list(range(n))
        for buf, (slots, nbytes) in enumerate(zip(cap_shares(cap_slots, bufs, n),
                                                  cap_shares(cap_bytes, bufs, n))):
            base = QH_WORDS + buf * dbuf_words(int(q[QH_BUF_CAP]))
            q[base + DB_SHARE_SLOTS] = slots
            q[base + DB_SHARE_BYTES] = nbytes

    return queue_words, setup_queue


@njit(cache=True, _nrt=False, inline="always")
def dbuf_take(q, base: int, ctx: Ctx) -> tuple:
    """Flip buffer ``base`` under its lock: returns (first word, entries, half) of the half the
    GC now empties without the lock."""
    spin_lock(q, base + DB_LOCK, ctx, LOCK_GC_QUEUE)
    half = dbuf_flip(q, base)
    n = q[base + DB_COUNT + half]
    spin_unlock(q, base + DB_LOCK, ctx, LOCK_GC_QUEUE)
    return dbuf_half_start(q, base, half), n, half


@njit(cache=True, _nrt=False, inline="always")
def dbuf_emptied(q, base: int, half: int) -> None:
    """The GC is done with this half: producers may fill it after the next flip."""
    atomic_store(q, base + DB_BYTES + half, 0)
    atomic_store(q, base + DB_COUNT + half, 0)


@njit(cache=True, _nrt=False)
def gc_drain_begin(zram: Zram, ctx: Ctx) -> bool:
    """Take the queue's drain lock (one GC worker drains at a time). If another holds it,
    re-queue the work item, so someone looks again after it, and skip this pass."""
    if spin_trylock(zram.gc_queue, QH_DRAIN_LOCK, ctx, LOCK_GC_QUEUE):
        return True
    queue_work(zram, ctx)
    cpu_relax()
    return False


@njit(cache=True, _nrt=False, inline="always")   # per slot: a call would cost ~23 ns
def gc_free_queued(zram: Zram, ctx: Ctx, index: int, wait: bool) -> int:
    """Free a slot the GC found queued, if it still is (checked under its lock): 1 freed, 0 no
    longer queued, -1 locked (only without ``wait``: the caller keeps it for later)."""
    if wait:
        slot_lock(zram, ctx, index)
    elif not slot_trylock(zram, ctx, index):
        return -1
    freed = 0
    if gc_test(zram, index):
        slot_free(zram, ctx, index)
        freed = 1
    slot_unlock(zram, ctx, index)
    return freed


# --- slot queues in double buffers (array, percpu) ----------------------------------------------

# inline: per slot. As a call it passes the Zram tuple flattened (~25 ns); LLVM inlined it by
# itself until the counters' bounce notes made it larger, and array / percpu's enqueue went
# from 72 to 100-147 ns (emul bench)
@njit(cache=True, _nrt=False, inline="always")
def queue_slot_in_buf(zram: Zram, ctx: Ctx, index: int, buf: int) -> int:
    """Queue a slot in buffer buf: reserve room under the cap, mark gc_map, record the index.

    A full buffer (stale entries of slots reused while queued take room until drained) refuses,
    like the cap. Lock order: slot lock -> gc queue lock.
    """
    q = zram.gc_queue
    base = dbuf_base(q, buf)
    spin_lock(q, base + DB_LOCK, ctx, LOCK_GC_QUEUE)
    lazy = LAZY_REFUSED
    if dbuf_room(q, base):
        lazy = lazy_queue_slot(zram, ctx, index)
        if lazy > 0:
            dbuf_push(q, base, index)
    spin_unlock(q, base + DB_LOCK, ctx, LOCK_GC_QUEUE)
    if lazy > 0:
        queue_work(zram, ctx)
    return lazy


@njit(cache=True, _nrt=False)
def drain_bufs(zram: Zram, ctx: Ctx, handles: bool, batch_by_class: bool,
               one_sweep: bool) -> int:
    """One GC pass over double buffers: flip each buffer with entries and empty the half it
    took, until every buffer is empty, or (``one_sweep``, RFC v3's bound on one invocation)
    once over the buffers, queueing the work again if entries are left. Returns the slots (or
    handles) freed."""
    q = zram.gc_queue
    if not gc_drain_begin(zram, ctx):
        return 0
    if handles:   # per CPU, the enqueue sees only its own buffer: the GC sees the sum
        n, b = handles_held(q)
        note_peak_backlog(ctx, n, b)
    freed = 0
    again = True
    while again:
        again = False
        for buf in range(q[QH_NR_BUFS]):
            base = dbuf_base(q, buf)
            if dbuf_pending(q, base) == 0:
                continue
            start, n, half = dbuf_take(q, base, ctx)
            if handles:
                freed += free_handle_entries(zram, ctx, base, half, start, n, batch_by_class)
            else:
                freed += free_slot_entries(zram, ctx, start, n)
            dbuf_emptied(q, base, half)
            again = not one_sweep
    spin_unlock(q, QH_DRAIN_LOCK, ctx, LOCK_GC_QUEUE)
    if one_sweep and handles_held(q)[0] > 0:
        queue_work(zram, ctx)
    return freed


@njit(cache=True, _nrt=False)
def free_slot_entries(zram: Zram, ctx: Ctx, start: int, n: int) -> int:
    """Free each recorded slot that is still queued. An entry whose slot was reused (and so
    taken off gc_map) is stale and skipped. A locked slot is waited for (the kworker may sleep
    on the bit lock): the entry is the only record of it."""
    q = zram.gc_queue
    freed = 0
    for k in range(n):
        index = q[start + k]
        if gc_test(zram, index):
            freed += gc_free_queued(zram, ctx, index, True) > 0
            cond_resched(ctx)
    return freed


@njit(cache=True, _nrt=False)
def drain_slot_bufs(zram: Zram, ctx: Ctx) -> int:
    """The GC pass of the slot queues (array, percpu)."""
    return drain_bufs(zram, ctx, False, False, False)


# --- handle queues (deferred-zsfree, percpu-zsfree) -----------------------------------------------
# An entry packs what zs_free needs later: the handle, the object's size (for gc_bytes), and
# (percpu-zsfree) its size class, highest, so sorting entries groups them by class.
HE_HANDLE_BITS = 32
HE_SIZE_SHIFT = 32
HE_SIZE_BITS = 18
HE_CLASS_SHIFT = 50
HELD_UPDATE = 64


@njit(cache=True, _nrt=False, inline="always")
def handle_entry(handle: int, size: int, cls: int) -> int:
    return (cls << HE_CLASS_SHIFT) | (size << HE_SIZE_SHIFT) | handle


@njit(cache=True, _nrt=False, inline="always")
def entry_handle(e: int) -> int:
    return e & ((1 << HE_HANDLE_BITS) - 1)


@njit(cache=True, _nrt=False, inline="always")
def entry_size(e: int) -> int:
    return (e >> HE_SIZE_SHIFT) & ((1 << HE_SIZE_BITS) - 1)


@njit(cache=True, _nrt=False, inline="always")
def dbuf_held(q, base: int) -> tuple:
    """Entries and bytes a handle buffer holds: the active half, and what the GC has not yet
    freed of the half it took (it counts that down as it goes)."""
    return (atomic_load(q, base + DB_COUNT) + atomic_load(q, base + DB_COUNT + 1),
            atomic_load(q, base + DB_BYTES) + atomic_load(q, base + DB_BYTES + 1))


@njit(cache=True, _nrt=False, inline="always")
def handle_room(q, base: int, size: int) -> bool:
    """Room for one more handle of size bytes (buffer lock held): in the active half, and
    within this buffer's share of the cap."""
    if not dbuf_room(q, base):
        return False
    n, b = dbuf_held(q, base)
    return n < q[base + DB_SHARE_SLOTS] and b + size <= q[base + DB_SHARE_BYTES]


@njit(cache=True, _nrt=False, inline="always")
def defer_handle(zram: Zram, ctx: Ctx, index: int, buf: int, cls_key: bool, wait: bool,
                 page: int) -> int:
    """Free the slot's metadata now and park its object's handle in buffer buf for the GC.

    Caller holds the slot lock. ``wait`` false: the buffer lock is only tried (RFC v2: a
    contended buffer means free synchronously). Same-filled slots have no object: LAZY_NO.
    The cap is this buffer's count and bytes, kept under its lock: no zram-wide atomic.
    ``page``: queue the worker only when that many entries have filled (RFC v3: per full page;
    0: on every push).
    """
    if test_slot_flag(zram, index, ZRAM_SAME) or get_slot_handle(zram, index) == 0:
        return LAZY_NO
    q = zram.gc_queue
    base = dbuf_base(q, buf)
    if wait:
        spin_lock(q, base + DB_LOCK, ctx, LOCK_GC_QUEUE)
    elif not spin_trylock(q, base + DB_LOCK, ctx, LOCK_GC_QUEUE):
        return LAZY_REFUSED
    lazy = LAZY_REFUSED
    wake = False
    size = get_slot_size(zram, index)
    if handle_room(q, base, size):
        handle = slot_free_extract(zram, ctx, index)
        cls = zs_lookup_class_index(zram.pool, size) if cls_key else 0
        dbuf_push(q, base, handle_entry(handle, size, cls))
        half = q[base + DB_ACTIVE]
        atomic_store_release(q, base + DB_BYTES + half, q[base + DB_BYTES + half] + size)
        n, b = dbuf_held(q, base)
        note_peak_backlog(ctx, n, b)
        lazy = LAZY_QUEUED
        wake = page == 0 or q[base + DB_COUNT + half] % page == 0
    spin_unlock(q, base + DB_LOCK, ctx, LOCK_GC_QUEUE)
    if wake:
        queue_work(zram, ctx)
    return lazy


@njit(cache=True, _nrt=False, inline="always")
def handles_held(q) -> tuple:
    """Handles queued in every buffer and not yet freed, and their bytes (lock-free reads: a
    snapshot). Also called from Python (the controller's samples, the audit)."""
    n = b = 0
    for buf in range(q[QH_NR_BUFS]):
        bn, bb = dbuf_held(q, dbuf_base(q, buf))
        n += bn
        b += bb
    return n, b


@njit(cache=True, _nrt=False)
def sort_entries(a, lo: int, hi: int) -> None:
    """Heapsort a[lo:hi] in place (no allocation: compiled code here runs without NRT)."""
    n = hi - lo
    for start in range(n // 2 - 1, -1, -1):
        _sift_down(a, lo, start, n)
    for end in range(n - 1, 0, -1):
        a[lo], a[lo + end] = a[lo + end], a[lo]
        _sift_down(a, lo, 0, end)


@njit(cache=True, _nrt=False, inline="always")
def _sift_down(a, lo: int, root: int, n: int) -> None:
    while True:
        child = 2 * root + 1
        if child >= n:
            return
        if child + 1 < n and a[lo + child + 1] > a[lo + child]:
            child += 1
        if a[lo + root] >= a[lo + child]:
            return
        a[lo + root], a[lo + child] = a[lo + child], a[lo + root]
        root = child


@njit(cache=True, _nrt=False)
def free_handle_entries(zram: Zram, ctx: Ctx, base: int, half: int, start: int, n: int,
                        batch_by_class: bool) -> int:
    """zs_free a taken half's handles, one by one or (RFC v3) in runs of one size class under
    one class-lock hold, counting the half's entries and bytes down as they are freed (every
    HELD_UPDATE handles: the counts share the buffer lock's line). Returns the handles freed."""
    q = zram.gc_queue
    if batch_by_class:
        sort_entries(q, start, start + n)
    left_bytes = atomic_load(q, base + DB_BYTES + half)
    published = 0
    k = start
    while k < start + n:
        run_end = k + 1
        if batch_by_class:
            cls = q[k] >> HE_CLASS_SHIFT
            while run_end < start + n and (q[run_end] >> HE_CLASS_SHIFT) == cls:
                run_end += 1
        nbytes = 0
        for j in range(k, run_end):
            nbytes += entry_size(q[j])
            q[j] = entry_handle(q[j])
        if run_end - k == 1:
            zs_free(zram.pool, ctx, q[k])
        else:
            ctx.stat[W_BATCH_SAVED] += zs_free_run(zram.pool, ctx, q, k, run_end)
        left_bytes -= nbytes
        k = run_end
        # never 0 before dbuf_emptied: a lock-free producer (percpu-zsfree) takes a half
        # whose count is 0 as free, and emptied would then wipe what it wrote
        if k < start + n and k - start - published >= HELD_UPDATE:
            published = k - start
            atomic_store(q, base + DB_BYTES + half, left_bytes)
            atomic_store(q, base + DB_COUNT + half, n - published)
        cond_resched(ctx)
    return n


@njit(cache=True, _nrt=False)
def drain_handle_bufs(zram: Zram, ctx: Ctx, batch_by_class: bool, one_sweep: bool) -> int:
    """The GC pass of the handle queues (deferred-zsfree, percpu-zsfree)."""
    return drain_bufs(zram, ctx, True, batch_by_class, one_sweep)

