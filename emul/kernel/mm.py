"""The mm side: emulated page tables, unmap, swap-out, swap-in and reclaim (mm/memory.c,
mm/vmscan.c). The shared arrays are described in kernel/mm_types.py; the swap device's slot
allocator is kernel/swapfile.py, and swap_entry_free (down to zram's notify) kernel/notify.py.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.atomics import atomic_fetch_add, atomic_load, atomic_store_release, read_clock
from emul.kernel.context import (
    COST_FAULT,
    COST_FREE_FOLIO,
    COST_ZAP_PTE,
    REGION_DESIGN,
    W_COLD,
    W_FALLBACK,
    W_FAULTED,
    W_LAZY,
    W_PTES,
    W_RECLAIMED,
    W_REFAULTED,
    W_RESIDENT_FREED,
    W_STORED,
    W_T_END,
    W_T_START,
    Ctx,
    model_cost,
    note_cpu,
    step_enter,
    step_exit,
)
from emul.kernel.gc_hooks import gc_defer_swap_entry
from emul.kernel.mm_types import Mm
from emul.kernel.notify import swap_entry_free
from emul.kernel.swapfile import get_swap_slot
from emul.kernel.zram import (
    F_READ_CORRUPT,
    LAZY_QUEUED,
    LAZY_REFUSED,
    Zram,
    chaos_point,
    fill_page,
    page_checksum,
    zram_read_page,
    zram_write_page,
)

CTL_RECLAIM_STOP = 16  # word of the controller's ctl array: the reclaim worker should stop
PTRS_PER_PTE = 512     # one page-table page: the unit of a compiled batch


@njit(cache=True, _nrt=False)
def zap_pte_range(zram: Zram, mm: Mm, ctx: Ctx, start: int, end: int) -> None:
    """Clear the PTEs of [start, end): free resident folios, free swap entries."""
    for p in range(start, end):
        pte = mm.pte[p]
        if pte == 0:
            continue
        step_enter(ctx, COST_ZAP_PTE)
        zap_present_pte(zram, mm, ctx, p, pte)
        step_exit(ctx)


@njit(cache=True, _nrt=False, inline="always")
def zap_present_pte(zram: Zram, mm: Mm, ctx: Ctx, p: int, pte: int) -> None:
    """One present PTE: clear it, then free its folio or its swap entry."""
    model_cost(ctx, COST_ZAP_PTE)
    mm.pte[p] = 0
    ctx.stat[W_PTES] += 1
    if pte > 0:
        model_cost(ctx, COST_FREE_FOLIO)
        ctx.stat[W_RESIDENT_FREED] += 1
        return
    # a strategy that defers in mm (mm-async) may take the entry; over its cap it refuses
    step_enter(ctx, REGION_DESIGN)
    lazy = gc_defer_swap_entry(zram, ctx, -pte - 1)
    step_exit(ctx)
    if lazy == LAZY_QUEUED:
        ctx.stat[W_LAZY] += 1
        return
    if lazy == LAZY_REFUSED:
        ctx.stat[W_FALLBACK] += 1
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
    step_enter(ctx, COST_FAULT)
    swap_in_entry(zram, mm, ctx, p, -pte - 1, page)
    step_exit(ctx)
    return True


@njit(cache=True, _nrt=False, inline="always")
def swap_in_entry(zram: Zram, mm: Mm, ctx: Ctx, p: int, slot: int, page) -> None:
    """The fault's work for page p's swap entry slot (the entry is p's: its PTE is held)."""
    model_cost(ctx, COST_FAULT)
    got = zram_read_page(zram, ctx, slot, page)
    fill_page(zram, page, p)
    if got != page_checksum(page):
        atomic_fetch_add(zram.faults, F_READ_CORRUPT, 1)
    mm.pte[p] = p + 1
    ctx.stat[W_COLD] = 1      # the fault's own work has evicted zram's metadata from cache
    swap_entry_free(zram, mm, ctx, slot)
    ctx.stat[W_COLD] = 0


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
