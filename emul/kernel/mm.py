"""The mm side: emulated page tables, the swap map and slot allocator, unmap and swap-in.

Shared arrays (one ``Mm`` of views into the arena):

  pte[p]          page p of the emulated processes: 0 none, > 0 resident (content key p + 1),
                  < 0 a swap entry for slot -pte - 1
  swap_map[s]     use count of swap slot s (0: free for get_swap_slot)
  swap_lock[..]   the swap device lock (si->lock) and the allocator's next-slot cursor
  swap_recent[]   slots freed most recently, newest on top: the allocator takes these first,
                  as the kernel's allocator refills from the clusters that frees just opened

Every process owns a contiguous range of pte; page p's synthetic content is keyed by p, so a
swap-in can check that it got back what the swap-out wrote.

Freeing a swap entry ends, as in mm/swapfile.c, in swap_range_free -> swap_slot_free_notify ->
zram_slot_free_notify; the slot becomes allocatable again only after the notify returned.
"""
from __future__ import annotations

from collections import namedtuple

from numba import njit

from emul.kernel.atomics import (atomic_cas, atomic_fetch_add, atomic_load, atomic_store_release,
    read_clock)
from emul.kernel.context import (COST_FAULT, COST_FREE_FOLIO, COST_SWAP_ENTRY_FREE, COST_ZAP_PTE,
    W_COLD, W_FALLBACK, W_FAULTED, W_GC_FREED, W_IN_PLACE, W_LAZY, W_PTES, W_RECLAIMED, W_REFAULTED,
    W_RESIDENT_FREED, W_STORED, W_SWAP_FREED, W_T_END, W_T_START, Ctx, model_cost, note_cpu)
from emul.kernel.locking import spin_lock, spin_unlock
from emul.kernel.lockstat import LOCK_SWAP
from emul.strategies import mm_async
from emul.strategies.common import (QH_DRAIN_LOCK, cond_resched, dbuf_base, dbuf_emptied,
    dbuf_pending, dbuf_take, gc_drain_begin)
from emul.kernel.gc_hooks import MM_ASYNC
from emul.kernel.lockstat import LOCK_GC_QUEUE
from emul.kernel.notify import zram_slot_free_notify
from emul.kernel.zram import (F_READ_CORRUPT, ST_GC_BYTES, ST_GC_SLOTS, ZP_STRATEGY, Zram,
    chaos_point, fill_page, get_slot_size, page_checksum, zram_read_page, zram_write_page)

Mm = namedtuple("Mm", ["pte", "swap_map", "swap_lock", "swap_recent"])

SWAP_CURSOR = 8
SWAP_RECENT_TOP = 9    # entries on the swap_recent stack
CTL_RECLAIM_STOP = 16  # word of the controller's ctl array: the reclaim worker should stop
PTRS_PER_PTE = 512     # one page-table page: the unit of a compiled batch


@njit(cache=True, _nrt=False)
def get_swap_slot(mm: Mm, ctx: Ctx) -> int:
    """Allocate a free swap slot (-1: the device is full): the most recently freed one if any
    is still free, else the next free one from the cursor."""
    n = mm.swap_map.size
    spin_lock(mm.swap_lock, 0, ctx, LOCK_SWAP)
    slot = -1
    while mm.swap_lock[SWAP_RECENT_TOP] > 0:
        mm.swap_lock[SWAP_RECENT_TOP] -= 1
        s = mm.swap_recent[mm.swap_lock[SWAP_RECENT_TOP]]
        if atomic_load(mm.swap_map, s) == 0:
            atomic_store_release(mm.swap_map, s, 1)
            spin_unlock(mm.swap_lock, 0, ctx, LOCK_SWAP)
            return s
    start = mm.swap_lock[SWAP_CURSOR]
    for k in range(n):
        s = start + k
        if s >= n:
            s -= n
        if atomic_load(mm.swap_map, s) == 0:
            atomic_store_release(mm.swap_map, s, 1)
            slot = s
            mm.swap_lock[SWAP_CURSOR] = s + 1 if s + 1 < n else 0
            break
    spin_unlock(mm.swap_lock, 0, ctx, LOCK_SWAP)
    return slot


@njit(cache=True, _nrt=False)
def swap_entry_free(zram: Zram, mm: Mm, ctx: Ctx, slot: int) -> None:
    """Drop one reference to a swap slot; the last one frees it through the zram notify."""
    model_cost(ctx, COST_SWAP_ENTRY_FREE)
    # the last reference moves 1 -> -1 (freeing): not allocatable until the notify returned
    if atomic_cas(mm.swap_map, slot, 1, -1) != 1:
        atomic_fetch_add(mm.swap_map, slot, -1)
        return
    zram_slot_free_notify(zram, ctx, slot)
    ctx.stat[W_SWAP_FREED] += 1
    spin_lock(mm.swap_lock, 0, ctx, LOCK_SWAP)        # swap_range_free, under the device lock
    atomic_store_release(mm.swap_map, slot, 0)
    top = mm.swap_lock[SWAP_RECENT_TOP]
    if top < mm.swap_recent.size:
        mm.swap_recent[top] = slot
        mm.swap_lock[SWAP_RECENT_TOP] = top + 1
    spin_unlock(mm.swap_lock, 0, ctx, LOCK_SWAP)


@njit(cache=True, _nrt=False)
def mm_async_work(zram: Zram, mm: Mm, ctx: Ctx) -> int:
    """vivo's kworker: free the swap entries dying processes handed over (strategy mm-async).

    The frees it makes in zram_slot_free_notify are counted as GC frees, not in-place ones.
    """
    q = zram.gc_queue
    if not gc_drain_begin(zram, ctx):
        return 0
    in_place = ctx.stat[W_IN_PLACE]
    freed = 0
    base = dbuf_base(q, 0)
    while dbuf_pending(q, base) != 0:
        start, n, half = dbuf_take(q, base, ctx)
        for k in range(n):
            slot = q[start + k]
            size = get_slot_size(zram, slot)
            swap_entry_free(zram, mm, ctx, slot)
            atomic_fetch_add(zram.stats, ST_GC_SLOTS, -1)
            atomic_fetch_add(zram.stats, ST_GC_BYTES, -size)
            freed += 1
            cond_resched(ctx)
        dbuf_emptied(q, base, half)
    spin_unlock(q, QH_DRAIN_LOCK, ctx, LOCK_GC_QUEUE)
    ctx.stat[W_GC_FREED] += ctx.stat[W_IN_PLACE] - in_place
    ctx.stat[W_IN_PLACE] = in_place
    return 0     # counted above, as the notify frees


@njit(cache=True, _nrt=False)
def zap_pte_range(zram: Zram, mm: Mm, ctx: Ctx, start: int, end: int) -> None:
    """Clear the PTEs of [start, end): free resident folios, free swap entries."""
    for p in range(start, end):
        pte = mm.pte[p]
        if pte == 0:
            continue
        model_cost(ctx, COST_ZAP_PTE)
        mm.pte[p] = 0
        ctx.stat[W_PTES] += 1
        if pte > 0:
            model_cost(ctx, COST_FREE_FOLIO)
            ctx.stat[W_RESIDENT_FREED] += 1
        elif zram.params[ZP_STRATEGY] == MM_ASYNC:
            # vivo: hand the entry to the kworker; over the cap, free it here (a fallback)
            if mm_async.hand_off(zram, ctx, -pte - 1):
                ctx.stat[W_LAZY] += 1
            else:
                ctx.stat[W_FALLBACK] += 1
                swap_entry_free(zram, mm, ctx, -pte - 1)
        else:
            swap_entry_free(zram, mm, ctx, -pte - 1)


@njit(cache=True, _nrt=False)
def unmap_vma(zram: Zram, mm: Mm, ctx: Ctx, start: int, end: int) -> None:
    """The killer's path: zap a whole VMA, one page-table page (512 PTEs) at a time."""
    ctx.stat[W_T_START] = read_clock()
    p = start
    while p < end:
        note_cpu(ctx)
        chaos_point(zram, ctx)
        q = min(end, p + PTRS_PER_PTE)
        zap_pte_range(zram, mm, ctx, p, q)
        p = q
    ctx.stat[W_T_END] = read_clock()


@njit(cache=True, _nrt=False)
def populate_vma(mm: Mm, start: int, end: int) -> None:
    """Fault in every page of [start, end) as resident (the process touched its memory)."""
    for p in range(start, end):
        mm.pte[p] = p + 1


@njit(cache=True, _nrt=False)
def swap_out_page(zram: Zram, mm: Mm, ctx: Ctx, p: int, page) -> bool:
    """Reclaim one resident page into zram: get a slot, write it, install the swap entry."""
    if mm.pte[p] <= 0:
        return False
    slot = get_swap_slot(mm, ctx)
    if slot < 0:
        return False
    if not zram_write_page(zram, ctx, slot, p, page):
        atomic_store_release(mm.swap_map, slot, 0)
        return False
    mm.pte[p] = -(slot + 1)
    ctx.stat[W_STORED] += 1
    return True


@njit(cache=True, _nrt=False)
def swap_out_range(zram: Zram, mm: Mm, ctx: Ctx, start: int, end: int, every: int,
                   page) -> int:
    """Swap out the pages of [start, end) chosen by the fraction: every page whose number,
    scaled, crosses the next multiple (so 0.5 swaps every other page, 1.0 all)."""
    ctx.stat[W_T_START] = read_clock()
    n = 0
    acc = 0
    for p in range(start, end):
        if (p - start) % PTRS_PER_PTE == 0:
            note_cpu(ctx)
        acc += every
        if acc >= 1_000_000:
            acc -= 1_000_000
            if swap_out_page(zram, mm, ctx, p, page):
                n += 1
    ctx.stat[W_T_END] = read_clock()
    return n


@njit(cache=True, _nrt=False)
def do_swap_page(zram: Zram, mm: Mm, ctx: Ctx, p: int, page) -> bool:
    """Fault page p back in from a synchronous-I/O swap device (zram), then free the entry."""
    pte = mm.pte[p]
    if pte >= 0:
        return False
    slot = -pte - 1
    model_cost(ctx, COST_FAULT)
    got = zram_read_page(zram, ctx, slot, page)
    fill_page(zram, page, p)
    if got != page_checksum(page):
        atomic_fetch_add(zram.faults, F_READ_CORRUPT, 1)
    mm.pte[p] = p + 1
    ctx.stat[W_COLD] = 1      # the fault's own work has evicted zram's metadata from cache
    swap_entry_free(zram, mm, ctx, slot)
    ctx.stat[W_COLD] = 0
    return True


@njit(cache=True, _nrt=False)
def swap_in_range(zram: Zram, mm: Mm, ctx: Ctx, start: int, end: int, page) -> int:
    """The swap-in worker's path: fault every swapped page of [start, end) back in, in order."""
    ctx.stat[W_T_START] = read_clock()
    n = 0
    for p in range(start, end):
        if (p - start) % PTRS_PER_PTE == 0:
            note_cpu(ctx)
            chaos_point(zram, ctx)
        if do_swap_page(zram, mm, ctx, p, page):
            n += 1
            ctx.stat[W_FAULTED] += 1
    ctx.stat[W_T_END] = read_clock()
    ctx.stat[W_PTES] += n
    return n


@njit(cache=True, _nrt=False)
def reclaim_run(zram: Zram, mm: Mm, ctx: Ctx, ctl, start: int, end: int, page) -> None:
    """kswapd against a background process, until the controller sets CTL_RECLAIM_STOP.

    Walks [start, end) round and round: a resident page is reclaimed (compressed, zs_malloc,
    stored in a fresh slot), a swapped one is faulted back in (its slot freed through the
    strategy). Slot allocation wraps around the device, so slots freed moments ago — possibly
    still queued for the GC — are written again, and GC's zs_free meets reclaim's zs_malloc on
    the same class locks.
    """
    ctx.stat[W_T_START] = read_clock()
    while atomic_load(ctl, CTL_RECLAIM_STOP) == 0:
        note_cpu(ctx)
        chaos_point(zram, ctx)
        for p in range(start, end):
            if mm.pte[p] > 0:
                if swap_out_page(zram, mm, ctx, p, page):
                    ctx.stat[W_RECLAIMED] += 1
            elif do_swap_page(zram, mm, ctx, p, page):
                ctx.stat[W_REFAULTED] += 1
            if (p & 63) == 0 and atomic_load(ctl, CTL_RECLAIM_STOP) != 0:
                break
    ctx.stat[W_T_END] = read_clock()
