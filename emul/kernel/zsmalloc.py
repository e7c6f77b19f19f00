"""The zsmalloc pool: size classes, zspages, fullness groups, zs_malloc and zs_free.

Shared arrays (one ``Pool`` of views into the arena; C = canonical classes, Z = zspage slots):

  lock[0..7]        pool->lock, an rwlock word (zs_free reads; nothing in emul writes it yet)
  stat[..]          pool counters: pages_allocated (zs_get_total_pages), zspages, faults
  class_lock[C*8]   size_class->lock, one 64-byte line per class: [c*8] lock, [c*8+1] last CPU
  class_stat[C*16]  per class, under its lock: OBJS_ALLOCATED, OBJS_INUSE, zspages per fullness
  class_info[C*4]   read-only: object size, pages_per_zspage, objs_per_zspage, huge
  class_of_index[]  raw class index -> canonical class (merged classes alias the larger one)
  fullness[C*12]    head zspage of each fullness list (-1: empty), under the class lock
  zspage[Z*8]       class, inuse, freeobj, fullness, prev, next, obj_base, state
  zone[..]          the page allocator: lock word, and bump cursors for new zspages / objects
  zone_free[C]      zspage descriptors already given back, kept per class for reuse
  obj_next[]        link_free.next of a free object (index within its zspage, -1: end)
  obj_head[]        the object's head word: handle | OBJ_ALLOCATED_TAG while allocated, else 0
  obj_zspage[]      the zspage an object belongs to (zpdesc->zspage)
  obj_csum[]        what was written into the object (a checksum of the page's content)

A handle is ``obj + 1``, the object's global index: emul has no compaction or migration, so an
object never moves and the extra indirection the kernel's handle cache provides is not needed
(its cost is part of COST_ZS_MALLOC / COST_ZS_FREE).

Lock ordering (as mm/zsmalloc.c's header, with emul's page allocator below it):
  pool->lock (read) -> size_class->lock -> zone lock

zs_free takes pool->lock for read only to find the class, then drops it once the class lock is
held. Zspages are given back (pages_allocated drops) only when they become empty.
"""
from __future__ import annotations

from collections import namedtuple

from numba import njit

from emul.kernel.atomics import atomic_fetch_add
from emul.kernel.context import (COST_ALLOC_ZSPAGE_PAGE, COST_FREE_ZSPAGE_PAGE, COST_ZS_FREE,
    COST_ZS_MALLOC, Ctx, model_cost, model_cost_scaled)
from emul.kernel.locking import read_lock, read_unlock, spin_lock, spin_unlock
from emul.kernel.lockstat import LOCK_CLASS, LOCK_POOL, LOCK_ZONE
from emul.kernel.zs_classes import ZS_HANDLE_SIZE, ZS_MIN_ALLOC_SIZE

Pool = namedtuple("Pool", ["lock", "stat", "class_lock", "class_stat", "class_info",
                           "class_of_index", "fullness", "zspage", "zone", "zone_free",
                           "obj_next", "obj_head", "obj_zspage", "obj_csum", "consts"])

OBJ_ALLOCATED_TAG = 1 << 62

# pool.consts
PC_PAGE_SIZE = 0
PC_NR_RAW_CLASSES = 1
PC_CLASS_DELTA = 2
PC_MAX_ZSPAGES = 3
PC_MAX_OBJS = 4
PC_FLAGS = 5             # ZS_* variant flags below
PC_WORDS = 8

# zsmalloc variants (scenario variants[].zsmalloc), orthogonal to the GC strategy. From
# "mm/zsmalloc: reduce lock contention in zs_free()" v6 (KERNEL-MODEL.md):
ZS_CLASS_IN_HANDLE = 1   # the class index travels in the object value: zs_free skips pool->lock
ZS_FREE_UNLOCKED = 2     # an emptied zspage's pages go back after the class lock is dropped
ZS_FLAG_NAMES = {"class_in_handle": ZS_CLASS_IN_HANDLE, "free_unlocked": ZS_FREE_UNLOCKED}

# pool.stat
PS_PAGES_ALLOCATED = 0   # pages held by the pool: "compressed memory held"
PS_ZSPAGES = 1
PS_ALLOC_FAILED = 2      # zs_malloc found no room in the emulated memory
PS_BAD_FREE = 3          # zs_free of an object that was not allocated (a double free)
PS_WORDS = 8

# class_info fields
CI_SIZE = 0
CI_PAGES = 1
CI_OBJS = 2
CI_HUGE = 3
CI_WORDS = 4

# class_stat fields
CS_OBJS_ALLOCATED = 0
CS_OBJS_INUSE = 1
CS_FULLNESS = 2          # + group: zspages in each fullness group
CS_WORDS = 16

# fullness groups, as ZS_INUSE_RATIO_*
ZS_INUSE_RATIO_0 = 0
ZS_INUSE_RATIO_99 = 10
ZS_INUSE_RATIO_100 = 11
NR_FULLNESS_GROUPS = 12

# zspage fields
Z_CLASS = 0
Z_INUSE = 1
Z_FREEOBJ = 2
Z_FULLNESS = 3
Z_PREV = 4
Z_NEXT = 5
Z_OBJ_BASE = 6
Z_STATE = 7
Z_WORDS = 8
ZSPAGE_UNUSED, ZSPAGE_LIVE, ZSPAGE_CACHED = 0, 1, 2

# zone words
ZONE_LOCK = 0            # lock word + owner at 1
ZONE_NEXT_ZSPAGE = 8
ZONE_NEXT_OBJ = 9
ZONE_WORDS = 16

CLASS_LOCK_STRIDE = 8


@njit(cache=True, _nrt=False, inline="always")
def get_size_class_index(pool: Pool, size: int) -> int:
    """Compiled twin of zs_classes.get_size_class_index, reading the pool's own constants."""
    idx = 0
    if size > ZS_MIN_ALLOC_SIZE:
        delta = pool.consts[PC_CLASS_DELTA]
        idx = (size - ZS_MIN_ALLOC_SIZE + delta - 1) // delta
    last = pool.consts[PC_NR_RAW_CLASSES] - 1
    return min(idx, last)


@njit(cache=True, _nrt=False, inline="always")
def class_for_size(pool: Pool, size: int) -> int:
    """The canonical size class zs_malloc(size) allocates from (handle size included)."""
    return pool.class_of_index[get_size_class_index(pool, size + ZS_HANDLE_SIZE)]


@njit(cache=True, _nrt=False, inline="always")
def get_fullness_group(pool: Pool, cls: int, inuse: int) -> int:
    objs = pool.class_info[cls * CI_WORDS + CI_OBJS]
    if inuse == 0:
        return ZS_INUSE_RATIO_0
    if inuse == objs:
        return ZS_INUSE_RATIO_100
    return (100 * inuse // objs) // 10 + 1


@njit(cache=True, _nrt=False)
def __insert_zspage(pool: Pool, cls: int, z: int, group: int) -> None:
    """Push z on its class's fullness list for group. Caller holds the class lock."""
    zs = pool.zspage
    head = pool.fullness[cls * NR_FULLNESS_GROUPS + group]
    zs[z * Z_WORDS + Z_PREV] = -1
    zs[z * Z_WORDS + Z_NEXT] = head
    if head >= 0:
        zs[head * Z_WORDS + Z_PREV] = z
    pool.fullness[cls * NR_FULLNESS_GROUPS + group] = z
    zs[z * Z_WORDS + Z_FULLNESS] = group
    pool.class_stat[cls * CS_WORDS + CS_FULLNESS + group] += 1


@njit(cache=True, _nrt=False)
def __remove_zspage(pool: Pool, cls: int, z: int) -> None:
    """Unlink z from its fullness list. Caller holds the class lock."""
    zs = pool.zspage
    group = zs[z * Z_WORDS + Z_FULLNESS]
    prev = zs[z * Z_WORDS + Z_PREV]
    nxt = zs[z * Z_WORDS + Z_NEXT]
    if prev >= 0:
        zs[prev * Z_WORDS + Z_NEXT] = nxt
    else:
        pool.fullness[cls * NR_FULLNESS_GROUPS + group] = nxt
    if nxt >= 0:
        zs[nxt * Z_WORDS + Z_PREV] = prev
    zs[z * Z_WORDS + Z_PREV] = -1
    zs[z * Z_WORDS + Z_NEXT] = -1
    pool.class_stat[cls * CS_WORDS + CS_FULLNESS + group] -= 1


@njit(cache=True, _nrt=False)
def __fix_fullness_group(pool: Pool, cls: int, z: int) -> int:
    """Move z to the list its in-use count now belongs to; returns the group."""
    group = get_fullness_group(pool, cls, pool.zspage[z * Z_WORDS + Z_INUSE])
    if group != pool.zspage[z * Z_WORDS + Z_FULLNESS]:
        __remove_zspage(pool, cls, z)
        __insert_zspage(pool, cls, z, group)
    return group


@njit(cache=True, _nrt=False)
def __find_get_zspage(pool: Pool, cls: int) -> int:
    """The fullest zspage of the class that still has a free object (-1: none)."""
    base = cls * NR_FULLNESS_GROUPS
    for group in range(ZS_INUSE_RATIO_99, ZS_INUSE_RATIO_0 - 1, -1):
        z = pool.fullness[base + group]
        if z >= 0:
            return z
    return -1


@njit(cache=True, _nrt=False)
def __obj_malloc(pool: Pool, z: int, csum: int) -> int:
    """Pop the zspage's first free object, write its head and content; returns the obj index."""
    zs = pool.zspage
    base = zs[z * Z_WORDS + Z_OBJ_BASE]
    idx = zs[z * Z_WORDS + Z_FREEOBJ]
    obj = base + idx
    zs[z * Z_WORDS + Z_FREEOBJ] = pool.obj_next[obj]
    zs[z * Z_WORDS + Z_INUSE] += 1
    pool.obj_head[obj] = (obj + 1) | OBJ_ALLOCATED_TAG
    pool.obj_csum[obj] = csum
    return obj


@njit(cache=True, _nrt=False)
def __obj_free(pool: Pool, z: int, obj: int) -> bool:
    """Push obj back on its zspage's free list. False (and counted) if it was not allocated."""
    if (pool.obj_head[obj] & OBJ_ALLOCATED_TAG) == 0:
        atomic_fetch_add(pool.stat, PS_BAD_FREE, 1)
        return False
    zs = pool.zspage
    pool.obj_head[obj] = 0
    pool.obj_next[obj] = zs[z * Z_WORDS + Z_FREEOBJ]
    zs[z * Z_WORDS + Z_FREEOBJ] = obj - zs[z * Z_WORDS + Z_OBJ_BASE]
    zs[z * Z_WORDS + Z_INUSE] -= 1
    return True


@njit(cache=True, _nrt=False)
def init_zspage(pool: Pool, cls: int, z: int) -> None:
    """Link every object of a fresh zspage on its free list: 0 -> 1 -> ... -> -1."""
    zs = pool.zspage
    objs = pool.class_info[cls * CI_WORDS + CI_OBJS]
    base = zs[z * Z_WORDS + Z_OBJ_BASE]
    for i in range(objs):
        pool.obj_next[base + i] = i + 1 if i + 1 < objs else -1
        pool.obj_head[base + i] = 0
        pool.obj_zspage[base + i] = z
    zs[z * Z_WORDS + Z_CLASS] = cls
    zs[z * Z_WORDS + Z_INUSE] = 0
    zs[z * Z_WORDS + Z_FREEOBJ] = 0
    zs[z * Z_WORDS + Z_FULLNESS] = -1
    zs[z * Z_WORDS + Z_PREV] = -1
    zs[z * Z_WORDS + Z_NEXT] = -1


@njit(cache=True, _nrt=False)
def alloc_zspage(pool: Pool, ctx: Ctx, cls: int) -> int:
    """Get pages for a new zspage of class cls from the page allocator (-1: out of memory).

    Called without the class lock, as the kernel does. Descriptors given back earlier for the
    same class are reused (their object range fits); otherwise the zone's cursors hand out new
    ones, up to what the arena holds.
    """
    objs = pool.class_info[cls * CI_WORDS + CI_OBJS]
    pages = pool.class_info[cls * CI_WORDS + CI_PAGES]
    zone = pool.zone
    spin_lock(zone, ZONE_LOCK, ctx, LOCK_ZONE)
    z = pool.zone_free[cls]
    if z >= 0:
        pool.zone_free[cls] = pool.zspage[z * Z_WORDS + Z_NEXT]
    elif (zone[ZONE_NEXT_ZSPAGE] < pool.consts[PC_MAX_ZSPAGES]
          and zone[ZONE_NEXT_OBJ] + objs <= pool.consts[PC_MAX_OBJS]):
        z = zone[ZONE_NEXT_ZSPAGE]
        zone[ZONE_NEXT_ZSPAGE] += 1
        pool.zspage[z * Z_WORDS + Z_OBJ_BASE] = zone[ZONE_NEXT_OBJ]
        zone[ZONE_NEXT_OBJ] += objs
    if z >= 0:
        pool.zspage[z * Z_WORDS + Z_STATE] = ZSPAGE_LIVE
    spin_unlock(zone, ZONE_LOCK, ctx, LOCK_ZONE)
    if z < 0:
        atomic_fetch_add(pool.stat, PS_ALLOC_FAILED, 1)
        return -1
    model_cost_scaled(ctx, COST_ALLOC_ZSPAGE_PAGE, pages << 10)
    init_zspage(pool, cls, z)
    return z


@njit(cache=True, _nrt=False)
def __detach_zspage(pool: Pool, cls: int, z: int) -> None:
    """Take an empty zspage off its class (class lock held): it no longer counts as the class's."""
    objs = pool.class_info[cls * CI_WORDS + CI_OBJS]
    __remove_zspage(pool, cls, z)
    pool.class_stat[cls * CS_WORDS + CS_OBJS_ALLOCATED] -= objs


@njit(cache=True, _nrt=False)
def __release_zspage_pages(pool: Pool, ctx: Ctx, cls: int, z: int) -> None:
    """Give a detached zspage's pages back to the page allocator."""
    pages = pool.class_info[cls * CI_WORDS + CI_PAGES]
    model_cost_scaled(ctx, COST_FREE_ZSPAGE_PAGE, pages << 10)
    atomic_fetch_add(pool.stat, PS_PAGES_ALLOCATED, -pages)
    atomic_fetch_add(pool.stat, PS_ZSPAGES, -1)
    zone = pool.zone
    spin_lock(zone, ZONE_LOCK, ctx, LOCK_ZONE)
    pool.zspage[z * Z_WORDS + Z_STATE] = ZSPAGE_CACHED
    pool.zspage[z * Z_WORDS + Z_NEXT] = pool.zone_free[cls]
    pool.zone_free[cls] = z
    spin_unlock(zone, ZONE_LOCK, ctx, LOCK_ZONE)


@njit(cache=True, _nrt=False)
def __free_zspage(pool: Pool, ctx: Ctx, cls: int, z: int) -> None:
    """Give an empty zspage's pages back. Caller holds the class lock (pages go back under it)."""
    __detach_zspage(pool, cls, z)
    __release_zspage_pages(pool, ctx, cls, z)


@njit(cache=True, _nrt=False, inline="always")
def __obj_class(pool: Pool, ctx: Ctx, obj: int) -> int:
    """The object's size class: under pool->lock (read), or straight from the object value with
    ZS_CLASS_IN_HANDLE (emul never migrates objects, so the read itself is the same)."""
    z = pool.obj_zspage[obj]
    if pool.consts[PC_FLAGS] & ZS_CLASS_IN_HANDLE:
        return pool.zspage[z * Z_WORDS + Z_CLASS]
    read_lock(pool.lock, 0, ctx, LOCK_POOL)
    cls = pool.zspage[z * Z_WORDS + Z_CLASS]
    read_unlock(pool.lock, 0, ctx, LOCK_POOL)
    return cls


@njit(cache=True, _nrt=False, inline="always")
def __free_obj_locked(pool: Pool, ctx: Ctx, cls: int, obj: int) -> int:
    """obj_free under the class lock; returns the zspage to release after the unlock (-1: none,
    or it was released under the lock already)."""
    z = pool.obj_zspage[obj]
    if not __obj_free(pool, z, obj):
        return -1
    pool.class_stat[cls * CS_WORDS + CS_OBJS_INUSE] -= 1
    if __fix_fullness_group(pool, cls, z) != ZS_INUSE_RATIO_0:
        return -1
    if pool.consts[PC_FLAGS] & ZS_FREE_UNLOCKED:
        __detach_zspage(pool, cls, z)
        return z
    __free_zspage(pool, ctx, cls, z)
    return -1


@njit(cache=True, _nrt=False)
def zs_malloc(pool: Pool, ctx: Ctx, size: int, csum: int) -> int:
    """Allocate an object of size bytes holding csum; returns its handle (0: failed)."""
    if size <= 0 or size > pool.consts[PC_PAGE_SIZE]:
        return 0
    model_cost(ctx, COST_ZS_MALLOC)
    cls = class_for_size(pool, size)
    clock = pool.class_lock
    ci = cls * CLASS_LOCK_STRIDE
    spin_lock(clock, ci, ctx, LOCK_CLASS)
    z = __find_get_zspage(pool, cls)
    if z >= 0:
        obj = __obj_malloc(pool, z, csum)
        __fix_fullness_group(pool, cls, z)
        pool.class_stat[cls * CS_WORDS + CS_OBJS_INUSE] += 1
        spin_unlock(clock, ci, ctx, LOCK_CLASS)
        return obj + 1
    spin_unlock(clock, ci, ctx, LOCK_CLASS)

    z = alloc_zspage(pool, ctx, cls)
    if z < 0:
        return 0
    spin_lock(clock, ci, ctx, LOCK_CLASS)
    obj = __obj_malloc(pool, z, csum)
    __insert_zspage(pool, cls, z, get_fullness_group(pool, cls, 1))
    atomic_fetch_add(pool.stat, PS_PAGES_ALLOCATED, pool.class_info[cls * CI_WORDS + CI_PAGES])
    atomic_fetch_add(pool.stat, PS_ZSPAGES, 1)
    pool.class_stat[cls * CS_WORDS + CS_OBJS_ALLOCATED] += pool.class_info[cls * CI_WORDS + CI_OBJS]
    pool.class_stat[cls * CS_WORDS + CS_OBJS_INUSE] += 1
    spin_unlock(clock, ci, ctx, LOCK_CLASS)
    return obj + 1


@njit(cache=True, _nrt=False)
def zs_free(pool: Pool, ctx: Ctx, handle: int) -> None:
    """Free the object behind handle; an emptied zspage goes back to the page allocator.

    Lock order: pool->lock (read, only to find the class) -> size_class->lock -> zone lock.
    """
    if handle == 0:
        return
    obj = handle - 1
    if pool.consts[PC_FLAGS] & ZS_CLASS_IN_HANDLE:
        cls = __obj_class(pool, ctx, obj)
        ci = cls * CLASS_LOCK_STRIDE
        spin_lock(pool.class_lock, ci, ctx, LOCK_CLASS)
    else:
        # the class lock is taken before pool->lock is dropped, as the kernel does
        read_lock(pool.lock, 0, ctx, LOCK_POOL)
        cls = pool.zspage[pool.obj_zspage[obj] * Z_WORDS + Z_CLASS]
        ci = cls * CLASS_LOCK_STRIDE
        spin_lock(pool.class_lock, ci, ctx, LOCK_CLASS)
        read_unlock(pool.lock, 0, ctx, LOCK_POOL)
    z = __free_obj_locked(pool, ctx, cls, obj)
    spin_unlock(pool.class_lock, ci, ctx, LOCK_CLASS)
    if z >= 0:
        __release_zspage_pages(pool, ctx, cls, z)
    model_cost(ctx, COST_ZS_FREE)


@njit(cache=True, _nrt=False)
def zs_free_run(pool: Pool, ctx: Ctx, handles, lo: int, hi: int) -> int:
    """Free handles[lo:hi], all of one size class, under one class-lock hold (RFC v3's batch).

    Returns how many class-lock acquisitions the run saved. An emptied zspage is released
    under the lock, or (ZS_FREE_UNLOCKED) with the lock dropped around it.
    """
    if hi <= lo:
        return 0
    cls = __obj_class(pool, ctx, handles[lo] - 1)
    ci = cls * CLASS_LOCK_STRIDE
    spin_lock(pool.class_lock, ci, ctx, LOCK_CLASS)
    saved = hi - lo - 1
    for k in range(lo, hi):
        z = __free_obj_locked(pool, ctx, cls, handles[k] - 1)
        if z >= 0:
            spin_unlock(pool.class_lock, ci, ctx, LOCK_CLASS)
            __release_zspage_pages(pool, ctx, cls, z)
            spin_lock(pool.class_lock, ci, ctx, LOCK_CLASS)
            saved -= 1
        model_cost(ctx, COST_ZS_FREE)
    spin_unlock(pool.class_lock, ci, ctx, LOCK_CLASS)
    return saved


@njit(cache=True, _nrt=False, inline="always")
def zs_lookup_class_index(pool: Pool, size: int) -> int:
    """The size class of an object of ``size`` bytes, as the kernel's zs_lookup_class_index:
    arithmetic and one small table, no walk to the object's zspage. It makes the same lookup
    as zs_malloc(size), so it is the object's own class. RFC v3's zram side keys a deferred
    handle by it, from the size the slot already records."""
    return class_for_size(pool, size)


@njit(cache=True, _nrt=False)
def zs_obj_read(pool: Pool, handle: int) -> int:
    """What the object holds (the content checksum written by zs_malloc)."""
    return pool.obj_csum[handle - 1]
