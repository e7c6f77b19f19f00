"""The invariant audit run after every repeat: a failed audit is a failed run.

Invariants (DESIGN.md): every slot is exactly one of free, stored (its swap entry is in use),
or queued for GC (marked in gc_map, content still held); the zram counters equal what the table
holds; the pool's bookkeeping equals its objects; no object was freed twice; no queued slot was
lost. Slots that zram_slot_free_notify could not lock (miss_free) keep their content, as in the
kernel, until overwritten: they are reported as stale and may not exceed miss_free.

The table checks are numpy over whole arrays; the zsmalloc walk (free lists, fullness lists) is
compiled, because it follows links.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from emul.harness.arena import Arena
from emul.kernel import layout as state
from emul.kernel.zram import (F_DOUBLE_QUEUE, F_READ_CORRUPT, ST_COMPR_DATA_SIZE, ST_GC_BYTES,
    ST_GC_SLOTS, ST_HUGE_PAGES, ST_MISS_FREE, ST_PAGES_STORED, ST_SAME_PAGES, ZRAM_ENTRY_LOCK,
    ZRAM_HUGE, ZRAM_SAME, ZP_PAGE_SHIFT, Zram)
from emul.kernel.zsmalloc import (CI_OBJS, CI_PAGES, CI_WORDS, CS_OBJS_ALLOCATED, CS_OBJS_INUSE,
    CS_WORDS, NR_FULLNESS_GROUPS, OBJ_ALLOCATED_TAG, PS_BAD_FREE, PS_PAGES_ALLOCATED, PS_ZSPAGES,
    Z_CLASS, Z_FREEOBJ, Z_FULLNESS, Z_INUSE, Z_NEXT, Z_OBJ_BASE, Z_STATE, Z_WORDS, ZONE_NEXT_ZSPAGE,
    ZSPAGE_LIVE, get_fullness_group)
from emul.strategies import backlog_in_buffers, gc_backlog_now

# results of the compiled pool walk
PA_LIVE_ZSPAGES, PA_PAGES, PA_TAGGED, PA_BAD_INUSE, PA_BAD_FREELIST, PA_BAD_FULLNESS, \
    PA_LISTED, PA_BAD_LIST, PA_BAD_CLASS_STAT, PA_SLOT_HANDLES, PA_BAD_HANDLE, PA_DUP_HANDLE = \
    range(12)
PA_WORDS = 12


@njit(cache=True)
def pool_walk(zram: Zram) -> np.ndarray:
    pool = zram.pool
    out = np.zeros(PA_WORDS, np.int64)
    nz = pool.zone[ZONE_NEXT_ZSPAGE]
    nc = pool.class_of_index.size
    inuse_by_class = np.zeros(nc, np.int64)
    alloc_by_class = np.zeros(nc, np.int64)
    for z in range(nz):
        if pool.zspage[z * Z_WORDS + Z_STATE] != ZSPAGE_LIVE:
            continue
        out[PA_LIVE_ZSPAGES] += 1
        cls = pool.zspage[z * Z_WORDS + Z_CLASS]
        objs = pool.class_info[cls * CI_WORDS + CI_OBJS]
        out[PA_PAGES] += pool.class_info[cls * CI_WORDS + CI_PAGES]
        base = pool.zspage[z * Z_WORDS + Z_OBJ_BASE]
        tagged = 0
        for i in range(objs):
            if pool.obj_head[base + i] & OBJ_ALLOCATED_TAG:
                tagged += 1
        out[PA_TAGGED] += tagged
        inuse = pool.zspage[z * Z_WORDS + Z_INUSE]
        inuse_by_class[cls] += inuse
        alloc_by_class[cls] += objs
        if inuse != tagged:
            out[PA_BAD_INUSE] += 1
        n = 0
        idx = pool.zspage[z * Z_WORDS + Z_FREEOBJ]
        while idx >= 0 and n <= objs:
            if pool.obj_head[base + idx] & OBJ_ALLOCATED_TAG:
                break
            n += 1
            idx = pool.obj_next[base + idx]
        if n != objs - inuse or idx >= 0:
            out[PA_BAD_FREELIST] += 1
        if pool.zspage[z * Z_WORDS + Z_FULLNESS] != get_fullness_group(pool, cls, inuse):
            out[PA_BAD_FULLNESS] += 1
    for cls in range(nc):
        for g in range(NR_FULLNESS_GROUPS):
            z = pool.fullness[cls * NR_FULLNESS_GROUPS + g]
            steps = 0
            while z >= 0 and steps <= nz:
                out[PA_LISTED] += 1
                if (pool.zspage[z * Z_WORDS + Z_CLASS] != cls
                        or pool.zspage[z * Z_WORDS + Z_FULLNESS] != g
                        or pool.zspage[z * Z_WORDS + Z_STATE] != ZSPAGE_LIVE):
                    out[PA_BAD_LIST] += 1
                z = pool.zspage[z * Z_WORDS + Z_NEXT]
                steps += 1
        if pool.class_of_index[cls] == cls:
            if (pool.class_stat[cls * CS_WORDS + CS_OBJS_INUSE] != inuse_by_class[cls]
                    or pool.class_stat[cls * CS_WORDS + CS_OBJS_ALLOCATED] != alloc_by_class[cls]):
                out[PA_BAD_CLASS_STAT] += 1
    # every stored slot's handle names one allocated object, and no other slot names it
    seen = np.zeros(pool.obj_head.size, np.uint8)
    shift = zram.params[ZP_PAGE_SHIFT] + 1
    same = 1 << (shift + ZRAM_SAME)
    for i in range(zram.table.size // 2):
        h = zram.table[2 * i]
        if h == 0 or zram.table[2 * i + 1] & same:
            continue
        out[PA_SLOT_HANDLES] += 1
        obj = h - 1
        if obj < 0 or obj >= pool.obj_head.size or pool.obj_head[obj] != (h | OBJ_ALLOCATED_TAG):
            out[PA_BAD_HANDLE] += 1
        elif seen[obj]:
            out[PA_DUP_HANDLE] += 1
        else:
            seen[obj] = 1
    return out


def compile_audit(zram: Zram) -> None:
    import numba
    pool_walk.compile((numba.typeof(zram),))


def audit(arena: Arena, expect_empty: bool) -> dict:
    """Check every invariant; returns {"ok": bool, "problems": [...], "counts": {...}}."""
    zram = state.zram_view(arena)
    p = zram.params
    shift = int(p[ZP_PAGE_SHIFT]) + 1
    table = zram.table.reshape(-1, 2)
    handle, flags = table[:, 0], table[:, 1]
    size = flags & ((1 << shift) - 1)
    is_same = (flags >> (shift + ZRAM_SAME)) & 1 == 1
    is_huge = (flags >> (shift + ZRAM_HUGE)) & 1 == 1
    locked = (flags >> (shift + ZRAM_ENTRY_LOCK)) & 1 == 1
    allocated = (size != 0) | is_same
    nr = handle.size
    bits = np.unpackbits(zram.gc_map.view(np.uint8), bitorder="little")[:nr].astype(bool)
    swap_map = arena["swap_map"]
    in_use = swap_map > 0
    stats = zram.stats
    problems: list[str] = []

    def check(cond, text):
        if not cond:
            problems.append(text)

    check(not locked.any(), f"{int(locked.sum())} slots left locked")
    check(not (swap_map < 0).any(), f"{int((swap_map < 0).sum())} swap slots left mid-free")
    queued = bits
    stale = allocated & ~queued & ~in_use
    check(not (queued & ~allocated).any(),
          f"{int((queued & ~allocated).sum())} queued slots hold no content")
    check(not (queued & in_use).any(),
          f"{int((queued & in_use).sum())} queued slots are still mapped by a swap entry")
    check(not (in_use & ~allocated).any(),
          f"{int((in_use & ~allocated).sum())} swap entries point at empty slots (lost data)")
    check(int(stale.sum()) <= int(stats[ST_MISS_FREE]),
          f"{int(stale.sum())} slots hold content nobody owns, more than miss_free "
          f"({int(stats[ST_MISS_FREE])}): leaked")
    if expect_empty:
        check(not queued.any(), f"{int(queued.sum())} queued slots were never freed (lost)")
    if backlog_in_buffers(arena):   # a handle queue: nothing in gc_map, its count in its buffers
        held, held_bytes = gc_backlog_now(arena)
        check(not expect_empty or (held, held_bytes) == (0, 0),
              f"{held} handles ({held_bytes} bytes) were left in the GC's buffers (never freed)")
    check(int(stats[ST_GC_SLOTS]) == int(queued.sum()),
          f"gc_slots {int(stats[ST_GC_SLOTS])} != queued slots {int(queued.sum())}")
    check(int(stats[ST_GC_BYTES]) == int(size[queued].sum()),
          f"gc_bytes {int(stats[ST_GC_BYTES])} != queued bytes {int(size[queued].sum())}")
    check(int(stats[ST_PAGES_STORED]) == int(allocated.sum()),
          f"pages_stored {int(stats[ST_PAGES_STORED])} != allocated slots {int(allocated.sum())}")
    check(int(stats[ST_SAME_PAGES]) == int(is_same.sum()),
          f"same_pages {int(stats[ST_SAME_PAGES])} != ZRAM_SAME slots {int(is_same.sum())}")
    check(int(stats[ST_HUGE_PAGES]) == int(is_huge.sum()),
          f"huge_pages {int(stats[ST_HUGE_PAGES])} != ZRAM_HUGE slots {int(is_huge.sum())}")
    compr = int(size[~is_same].sum())
    check(int(stats[ST_COMPR_DATA_SIZE]) == compr,
          f"compr_data_size {int(stats[ST_COMPR_DATA_SIZE])} != stored bytes {compr}")
    pte = arena["pte"]
    refs = np.bincount(-pte[pte < 0] - 1, minlength=nr)
    check(np.array_equal(refs, np.where(in_use, swap_map, 0)),
          "swap_map use counts differ from the swap entries in the page tables")

    walk = pool_walk(zram)
    pool_stat = arena["pool_stat"]
    check(int(pool_stat[PS_BAD_FREE]) == 0,
          f"{int(pool_stat[PS_BAD_FREE])} zs_free calls on objects not allocated (double free)")
    check(int(zram.faults[F_DOUBLE_QUEUE]) == 0,
          f"{int(zram.faults[F_DOUBLE_QUEUE])} slots queued twice")
    check(int(zram.faults[F_READ_CORRUPT]) == 0,
          f"{int(zram.faults[F_READ_CORRUPT])} reads returned other content than was written")
    check(walk[PA_PAGES] == pool_stat[PS_PAGES_ALLOCATED],
          f"pool pages_allocated {int(pool_stat[PS_PAGES_ALLOCATED])} != pages of live zspages "
          f"{int(walk[PA_PAGES])}")
    check(walk[PA_LIVE_ZSPAGES] == pool_stat[PS_ZSPAGES] == walk[PA_LISTED],
          f"zspages: counted {int(pool_stat[PS_ZSPAGES])}, live {int(walk[PA_LIVE_ZSPAGES])}, "
          f"on fullness lists {int(walk[PA_LISTED])}")
    for key, text in ((PA_BAD_INUSE, "zspages whose inuse differs from their allocated objects"),
                      (PA_BAD_FREELIST, "zspages with a broken free list"),
                      (PA_BAD_FULLNESS, "zspages in the wrong fullness group"),
                      (PA_BAD_LIST, "fullness list entries of another class or group"),
                      (PA_BAD_CLASS_STAT, "classes whose OBJS_* counters are off"),
                      (PA_BAD_HANDLE, "slots whose handle names no allocated object"),
                      (PA_DUP_HANDLE, "objects named by two slots")):
        check(walk[key] == 0, f"{int(walk[key])} {text}")
    check(walk[PA_TAGGED] == walk[PA_SLOT_HANDLES],
          f"{int(walk[PA_TAGGED])} allocated objects but {int(walk[PA_SLOT_HANDLES])} slots "
          f"hold a handle (leaked objects)")
    counts = {"allocated": int(allocated.sum()), "queued": int(queued.sum()),
              "stale": int(stale.sum()), "in_use": int(in_use.sum()),
              "pool_pages": int(pool_stat[PS_PAGES_ALLOCATED]),
              "zspages": int(pool_stat[PS_ZSPAGES])}
    return {"ok": not problems, "problems": problems, "counts": counts}
