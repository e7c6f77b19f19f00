"""The invariant audit run after every repeat: a failed audit is a failed run.

Invariants: every slot is exactly one of free, stored (its swap entry is in use), or queued for
GC (marked in gc_map, content still held); the zram counters equal what the table holds; the
pool's bookkeeping equals its objects; no object was freed twice; no queued slot was lost; no
``__`` function ran without its lock (debug assert_locked). Slots that zram_slot_free_notify
could not lock (miss_free) keep their content, as in the kernel, until overwritten: they are
reported as stale and may not exceed miss_free.

The table checks are numpy over whole arrays (zram's table_* twins of its accessors); the
zsmalloc walk (free lists, fullness lists) is compiled, because it follows links.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

from emul.kernel import layout as state
from emul.kernel.gc_hooks import gc_backlog_bytes, gc_backlog_in_buffers
from emul.kernel.zram import (F_DOUBLE_QUEUE, F_LOCK_NOT_HELD, F_READ_CORRUPT, ST_COMPR_DATA_SIZE,
    ST_GC_BYTES, ST_GC_SLOTS, ST_HUGE_PAGES, ST_MISS_FREE, ST_PAGES_STORED, ST_SAME_PAGES,
    ZRAM_ENTRY_LOCK, ZRAM_HUGE, ZRAM_SAME, Zram, get_slot_handle, table_flags, table_handles,
    table_sizes, test_slot_flag)
from emul.kernel.zsmalloc import (CS_OBJS_ALLOCATED, CS_OBJS_INUSE, NR_FULLNESS_GROUPS,
    OBJ_ALLOCATED_TAG, PS_BAD_FREE, PS_LOCK_NOT_HELD, PS_PAGES_ALLOCATED, PS_ZSPAGES,
    ZONE_NEXT_ZSPAGE, ZSPAGE_LIVE, Pool, class_objs_per_zspage, class_pages_per_zspage,
    fullness_head, get_freeobj, get_fullness_group, get_zspage_inuse, zs_stat_get, zspage_class,
    zspage_fullness, zspage_next, zspage_obj_base, zspage_state)

# results of the compiled pool walk
PA_LIVE_ZSPAGES, PA_PAGES, PA_TAGGED, PA_BAD_INUSE, PA_BAD_FREELIST, PA_BAD_FULLNESS, \
    PA_LISTED, PA_BAD_LIST, PA_BAD_CLASS_STAT, PA_SLOT_HANDLES, PA_BAD_HANDLE, PA_DUP_HANDLE = \
    range(12)
PA_WORDS = 12

from emul.kernel.layout import Arena  # what the audit reads of an arena: its arrays by name


@njit(cache=True)
def pool_walk(zram: Zram) -> np.ndarray:
    """Walk the pool's zspages, fullness lists and the slots' handles (the PA_* counts)."""
    pool = zram.pool
    out = np.zeros(PA_WORDS, np.int64)
    nc = pool.class_of_index.size
    inuse_by_class = np.zeros(nc, np.int64)
    alloc_by_class = np.zeros(nc, np.int64)
    for z in range(pool.zone[ZONE_NEXT_ZSPAGE]):
        if zspage_state(pool, z) == ZSPAGE_LIVE:
            walk_zspage(pool, z, out, inuse_by_class, alloc_by_class)
    for cls in range(nc):
        walk_fullness_lists(pool, cls, out)
        if pool.class_of_index[cls] == cls:
            if (zs_stat_get(pool, cls, CS_OBJS_INUSE) != inuse_by_class[cls]
                    or zs_stat_get(pool, cls, CS_OBJS_ALLOCATED) != alloc_by_class[cls]):
                out[PA_BAD_CLASS_STAT] += 1
    walk_slot_handles(zram, out)
    return out


@njit(cache=True)
def walk_zspage(pool: Pool, z: int, out, inuse_by_class, alloc_by_class) -> None:
    """One live zspage: its tagged objects, in-use count, free list and fullness group."""
    out[PA_LIVE_ZSPAGES] += 1
    cls = zspage_class(pool, z)
    objs = class_objs_per_zspage(pool, cls)
    out[PA_PAGES] += class_pages_per_zspage(pool, cls)
    base = zspage_obj_base(pool, z)
    tagged = 0
    for i in range(objs):
        if pool.obj_head[base + i] & OBJ_ALLOCATED_TAG:
            tagged += 1
    out[PA_TAGGED] += tagged
    inuse = get_zspage_inuse(pool, z)
    inuse_by_class[cls] += inuse
    alloc_by_class[cls] += objs
    if inuse != tagged:
        out[PA_BAD_INUSE] += 1
    n = 0
    idx = get_freeobj(pool, z)
    while idx >= 0 and n <= objs:
        if pool.obj_head[base + idx] & OBJ_ALLOCATED_TAG:
            break
        n += 1
        idx = pool.obj_next[base + idx]
    if n != objs - inuse or idx >= 0:
        out[PA_BAD_FREELIST] += 1
    if zspage_fullness(pool, z) != get_fullness_group(pool, cls, inuse):
        out[PA_BAD_FULLNESS] += 1


@njit(cache=True)
def walk_fullness_lists(pool: Pool, cls: int, out) -> None:
    """Every zspage on the class's fullness lists is live, of the class, in the list's group."""
    nz = pool.zone[ZONE_NEXT_ZSPAGE]
    for g in range(NR_FULLNESS_GROUPS):
        z = fullness_head(pool, cls, g)
        steps = 0
        while z >= 0 and steps <= nz:
            out[PA_LISTED] += 1
            if (zspage_class(pool, z) != cls or zspage_fullness(pool, z) != g
                    or zspage_state(pool, z) != ZSPAGE_LIVE):
                out[PA_BAD_LIST] += 1
            z = zspage_next(pool, z)
            steps += 1


@njit(cache=True)
def walk_slot_handles(zram: Zram, out) -> None:
    """Every stored slot's handle names one allocated object, and no other slot names it."""
    pool = zram.pool
    seen = np.zeros(pool.obj_head.size, np.uint8)
    for i in range(zram.table.size // 2):
        h = get_slot_handle(zram, i)
        if h == 0 or test_slot_flag(zram, i, ZRAM_SAME):
            continue
        out[PA_SLOT_HANDLES] += 1
        obj = h - 1
        if obj < 0 or obj >= pool.obj_head.size or pool.obj_head[obj] != (h | OBJ_ALLOCATED_TAG):
            out[PA_BAD_HANDLE] += 1
        elif seen[obj]:
            out[PA_DUP_HANDLE] += 1
        else:
            seen[obj] = 1


def compile_audit(zram: Zram) -> None:
    """Compile the audit's compiled parts ahead (a worker does it before the phases)."""
    import numba
    pool_walk.compile((numba.typeof(zram),))
    gc_backlog_bytes.compile((numba.typeof(zram),))
    gc_backlog_in_buffers.compile((numba.typeof(zram),))


def audit(arena: Arena, expect_empty: bool) -> dict:
    """Check every invariant; returns {"ok": bool, "problems": [...], "counts": {...}}."""
    zram = state.zram_view(arena)
    problems: list[str] = []

    def check(cond: bool, text: str) -> None:
        if not cond:
            problems.append(text)

    counts = check_slots(zram, arena, expect_empty, check)
    check_queues(zram, expect_empty, check)
    check_pool(zram, arena["pool_stat"], check)
    return {"ok": not problems, "problems": problems, "counts": counts}


Check = Callable[[bool, str], None]


def check_slots(zram: Zram, arena: Arena, expect_empty: bool, check: Check) -> dict:
    """The table against the swap map, zram's counters and the page tables; returns the counts."""
    size = table_sizes(zram)
    is_same = table_flags(zram, ZRAM_SAME)
    is_huge = table_flags(zram, ZRAM_HUGE)
    locked = table_flags(zram, ZRAM_ENTRY_LOCK)
    allocated = (size != 0) | is_same
    nr = table_handles(zram).size
    queued = np.unpackbits(zram.gc_map.view(np.uint8), bitorder="little")[:nr].astype(bool)
    swap_map = arena["swap_map"]
    in_use = swap_map > 0
    stats = zram.stats
    stale = allocated & ~queued & ~in_use
    check(not locked.any(), f"{int(locked.sum())} slots left locked")
    check(not (swap_map < 0).any(), f"{int((swap_map < 0).sum())} swap slots left mid-free")
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
    return {"allocated": int(allocated.sum()), "queued": int(queued.sum()),
            "stale": int(stale.sum()), "in_use": int(in_use.sum()),
            "pool_pages": int(arena["pool_stat"][PS_PAGES_ALLOCATED]),
            "zspages": int(arena["pool_stat"][PS_ZSPAGES])}


def check_queues(zram: Zram, expect_empty: bool, check: Check) -> None:
    """A handle queue has nothing in gc_map: its backlog is the count in its own buffers."""
    if not gc_backlog_in_buffers(zram):
        return
    held, held_bytes = gc_backlog_bytes(zram)
    check(not expect_empty or (held, held_bytes) == (0, 0),
          f"{held} handles ({held_bytes} bytes) were left in the GC's buffers (never freed)")


POOL_WALK_PROBLEMS = (
    (PA_BAD_INUSE, "zspages whose inuse differs from their allocated objects"),
    (PA_BAD_FREELIST, "zspages with a broken free list"),
    (PA_BAD_FULLNESS, "zspages in the wrong fullness group"),
    (PA_BAD_LIST, "fullness list entries of another class or group"),
    (PA_BAD_CLASS_STAT, "classes whose OBJS_* counters are off"),
    (PA_BAD_HANDLE, "slots whose handle names no allocated object"),
    (PA_DUP_HANDLE, "objects named by two slots"),
)


def check_pool(zram: Zram, pool_stat: np.ndarray, check: Check) -> None:
    """The pool's counters against a walk of its zspages; emul's fault counters."""
    walk = pool_walk(zram)
    faults = zram.faults
    check(int(pool_stat[PS_BAD_FREE]) == 0,
          f"{int(pool_stat[PS_BAD_FREE])} zs_free calls on objects not allocated (double free)")
    check(int(faults[F_DOUBLE_QUEUE]) == 0, f"{int(faults[F_DOUBLE_QUEUE])} slots queued twice")
    check(int(faults[F_READ_CORRUPT]) == 0,
          f"{int(faults[F_READ_CORRUPT])} reads returned other content than was written")
    unlocked = int(faults[F_LOCK_NOT_HELD]) + int(pool_stat[PS_LOCK_NOT_HELD])
    check(unlocked == 0, f"{unlocked} calls of `__` functions without the lock they need "
                         f"({int(faults[F_LOCK_NOT_HELD])} slot lock, "
                         f"{int(pool_stat[PS_LOCK_NOT_HELD])} class lock)")
    check(walk[PA_PAGES] == pool_stat[PS_PAGES_ALLOCATED],
          f"pool pages_allocated {int(pool_stat[PS_PAGES_ALLOCATED])} != pages of live zspages "
          f"{int(walk[PA_PAGES])}")
    check(walk[PA_LIVE_ZSPAGES] == pool_stat[PS_ZSPAGES] == walk[PA_LISTED],
          f"zspages: counted {int(pool_stat[PS_ZSPAGES])}, live {int(walk[PA_LIVE_ZSPAGES])}, "
          f"on fullness lists {int(walk[PA_LISTED])}")
    for key, text in POOL_WALK_PROBLEMS:
        check(walk[key] == 0, f"{int(walk[key])} {text}")
    check(walk[PA_TAGGED] == walk[PA_SLOT_HANDLES],
          f"{int(walk[PA_TAGGED])} allocated objects but {int(walk[PA_SLOT_HANDLES])} slots "
          f"hold a handle (leaked objects)")
