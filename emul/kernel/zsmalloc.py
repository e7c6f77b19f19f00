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
held. Zspages are given back (pages_allocated drops) only when they become empty. A ``__``
function expects its caller to hold the class lock (the debug switch assert_locked checks).
"""
from __future__ import annotations

from collections import namedtuple

from numba import njit

from emul.kernel.atomics import atomic_fetch_add, atomic_load
from emul.kernel.context import (
    COST_ALLOC_ZSPAGE_PAGE,
    COST_FREE_ZSPAGE_PAGE,
    COST_POOL_READ_LOCK,
    COST_ZS_FREE,
    COST_ZS_MALLOC,
    W_HOLD_WORK,
    Ctx,
    model_cost,
    model_cost_scaled,
    step_enter,
    step_exit,
)
from emul.kernel.clock import delay_ticks
from emul.kernel.debug import DEBUG_ASSERT_LOCKED
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
PC_DEBUG = 6             # the run's debug switches (ZP_DEBUG), for assert_locked
PC_WORDS = 8

# zsmalloc variants (scenario variants[].zsmalloc), orthogonal to the GC strategy, one bit each in
# PC_FLAGS. From "mm/zsmalloc: reduce lock contention in zs_free()" v6 (docs/kernel-model.md,
# "History of proposals"):
ZS_FLAGS = (
    "class_in_handle",    # the class index travels in the object value: zs_free skips pool->lock
    "free_unlocked",      # an emptied zspage's pages go back after the class lock is dropped
)
ZS_FLAG_NAMES = {name: 1 << bit for bit, name in enumerate(ZS_FLAGS)}
ZS_CLASS_IN_HANDLE = ZS_FLAG_NAMES["class_in_handle"]
ZS_FREE_UNLOCKED = ZS_FLAG_NAMES["free_unlocked"]

# pool.stat
PS_PAGES_ALLOCATED = 0   # pages held by the pool: "compressed memory held"
PS_ZSPAGES = 1
PS_ALLOC_FAILED = 2      # zs_malloc found no room in the emulated memory
PS_BAD_FREE = 3          # zs_free of an object that was not allocated (a double free)
PS_LOCK_NOT_HELD = 4     # debug assert_locked: a `__` function ran without the class lock
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


# --- accessors of the packed records (zspage, class_info, class_stat, fullness heads) -----------

@njit(cache=True, _nrt=False, inline="always")
def zspage_class(pool: Pool, z: int) -> int:
    return pool.zspage[z * Z_WORDS + Z_CLASS]


@njit(cache=True, _nrt=False, inline="always")
def set_zspage_class(pool: Pool, z: int, cls: int) -> None:
    pool.zspage[z * Z_WORDS + Z_CLASS] = cls


@njit(cache=True, _nrt=False, inline="always")
def get_zspage_inuse(pool: Pool, z: int) -> int:
    return pool.zspage[z * Z_WORDS + Z_INUSE]


@njit(cache=True, _nrt=False, inline="always")
def set_zspage_inuse(pool: Pool, z: int, val: int) -> None:
    pool.zspage[z * Z_WORDS + Z_INUSE] = val


@njit(cache=True, _nrt=False, inline="always")
def mod_zspage_inuse(pool: Pool, z: int, val: int) -> None:
    pool.zspage[z * Z_WORDS + Z_INUSE] += val


@njit(cache=True, _nrt=False, inline="always")
def get_freeobj(pool: Pool, z: int) -> int:
    """Index (within its zspage) of the first free object, -1: none."""
    return pool.zspage[z * Z_WORDS + Z_FREEOBJ]


@njit(cache=True, _nrt=False, inline="always")
def set_freeobj(pool: Pool, z: int, idx: int) -> None:
    pool.zspage[z * Z_WORDS + Z_FREEOBJ] = idx


@njit(cache=True, _nrt=False, inline="always")
def zspage_fullness(pool: Pool, z: int) -> int:
    """The fullness group whose list z is on (-1: none)."""
    return pool.zspage[z * Z_WORDS + Z_FULLNESS]


@njit(cache=True, _nrt=False, inline="always")
def set_zspage_fullness(pool: Pool, z: int, group: int) -> None:
    pool.zspage[z * Z_WORDS + Z_FULLNESS] = group


@njit(cache=True, _nrt=False, inline="always")
def zspage_prev(pool: Pool, z: int) -> int:
    return pool.zspage[z * Z_WORDS + Z_PREV]


@njit(cache=True, _nrt=False, inline="always")
def zspage_next(pool: Pool, z: int) -> int:
    return pool.zspage[z * Z_WORDS + Z_NEXT]


@njit(cache=True, _nrt=False, inline="always")
def set_zspage_prev(pool: Pool, z: int, prev: int) -> None:
    pool.zspage[z * Z_WORDS + Z_PREV] = prev


@njit(cache=True, _nrt=False, inline="always")
def set_zspage_next(pool: Pool, z: int, nxt: int) -> None:
    pool.zspage[z * Z_WORDS + Z_NEXT] = nxt


@njit(cache=True, _nrt=False, inline="always")
def zspage_obj_base(pool: Pool, z: int) -> int:
    """The global index of z's first object (emul: objects are numbered, not addressed)."""
    return pool.zspage[z * Z_WORDS + Z_OBJ_BASE]


@njit(cache=True, _nrt=False, inline="always")
def set_zspage_obj_base(pool: Pool, z: int, base: int) -> None:
    pool.zspage[z * Z_WORDS + Z_OBJ_BASE] = base


@njit(cache=True, _nrt=False, inline="always")
def zspage_state(pool: Pool, z: int) -> int:
    return pool.zspage[z * Z_WORDS + Z_STATE]


@njit(cache=True, _nrt=False, inline="always")
def set_zspage_state(pool: Pool, z: int, state: int) -> None:
    pool.zspage[z * Z_WORDS + Z_STATE] = state


@njit(cache=True, _nrt=False, inline="always")
def class_size(pool: Pool, cls: int) -> int:
    """The class's object size (handle included: zs_malloc adds it to the request)."""
    return pool.class_info[cls * CI_WORDS + CI_SIZE]


@njit(cache=True, _nrt=False, inline="always")
def class_objs_per_zspage(pool: Pool, cls: int) -> int:
    return pool.class_info[cls * CI_WORDS + CI_OBJS]


@njit(cache=True, _nrt=False, inline="always")
def class_pages_per_zspage(pool: Pool, cls: int) -> int:
    return pool.class_info[cls * CI_WORDS + CI_PAGES]


@njit(cache=True, _nrt=False, inline="always")
def zs_stat_get(pool: Pool, cls: int, field: int) -> int:
    """A class_stat counter (CS_*; CS_FULLNESS + group for a fullness group)."""
    return pool.class_stat[cls * CS_WORDS + field]


@njit(cache=True, _nrt=False, inline="always")
def class_stat_add(pool: Pool, cls: int, field: int, cnt: int) -> None:
    pool.class_stat[cls * CS_WORDS + field] += cnt


@njit(cache=True, _nrt=False, inline="always")
def fullness_head(pool: Pool, cls: int, group: int) -> int:
    """The first zspage on the class's list for group (-1: empty)."""
    return pool.fullness[cls * NR_FULLNESS_GROUPS + group]


@njit(cache=True, _nrt=False, inline="always")
def set_fullness_head(pool: Pool, cls: int, group: int, z: int) -> None:
    pool.fullness[cls * NR_FULLNESS_GROUPS + group] = z


@njit(cache=True, _nrt=False, inline="always")
def lockdep_assert_class_held(pool: Pool, cls: int) -> None:
    """Debug assert_locked: count a fault (PS_LOCK_NOT_HELD) unless the class lock is held. Called
    first thing by every ``__`` function here."""
    if not pool.consts[PC_DEBUG] & DEBUG_ASSERT_LOCKED:
        return
    if atomic_load(pool.class_lock, cls * CLASS_LOCK_STRIDE) == 0:
        atomic_fetch_add(pool.stat, PS_LOCK_NOT_HELD, 1)


# --- size classes and fullness groups ---------------------------------------------------------

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
    objs = class_objs_per_zspage(pool, cls)
    if inuse == 0:
        return ZS_INUSE_RATIO_0
    if inuse == objs:
        return ZS_INUSE_RATIO_100
    return (100 * inuse // objs) // 10 + 1


# --- under the class lock -------------------------------------------------------------------------

@njit(cache=True, _nrt=False)
def __insert_zspage(pool: Pool, cls: int, z: int, group: int) -> None:
    """Push z on its class's fullness list for group. Caller holds the class lock."""
    lockdep_assert_class_held(pool, cls)
    head = fullness_head(pool, cls, group)
    set_zspage_prev(pool, z, -1)
    set_zspage_next(pool, z, head)
    if head >= 0:
        set_zspage_prev(pool, head, z)
    set_fullness_head(pool, cls, group, z)
    set_zspage_fullness(pool, z, group)
    class_stat_add(pool, cls, CS_FULLNESS + group, 1)


@njit(cache=True, _nrt=False)
def __remove_zspage(pool: Pool, cls: int, z: int) -> None:
    """Unlink z from its fullness list. Caller holds the class lock."""
    lockdep_assert_class_held(pool, cls)
    group = zspage_fullness(pool, z)
    prev = zspage_prev(pool, z)
    nxt = zspage_next(pool, z)
    if prev >= 0:
        set_zspage_next(pool, prev, nxt)
    else:
        set_fullness_head(pool, cls, group, nxt)
    if nxt >= 0:
        set_zspage_prev(pool, nxt, prev)
    set_zspage_prev(pool, z, -1)
    set_zspage_next(pool, z, -1)
    class_stat_add(pool, cls, CS_FULLNESS + group, -1)


@njit(cache=True, _nrt=False)
def __fix_fullness_group(pool: Pool, cls: int, z: int) -> int:
    """Move z to the list its in-use count now belongs to; returns the group. Class lock held."""
    lockdep_assert_class_held(pool, cls)
    group = get_fullness_group(pool, cls, get_zspage_inuse(pool, z))
    if group != zspage_fullness(pool, z):
        __remove_zspage(pool, cls, z)
        __insert_zspage(pool, cls, z, group)
    return group


@njit(cache=True, _nrt=False)
def __find_get_zspage(pool: Pool, cls: int) -> int:
    """The fullest zspage of the class that still has a free object (-1: none). Class lock held."""
    lockdep_assert_class_held(pool, cls)
    for group in range(ZS_INUSE_RATIO_99, ZS_INUSE_RATIO_0 - 1, -1):
        z = fullness_head(pool, cls, group)
        if z >= 0:
            return z
    return -1


@njit(cache=True, _nrt=False)
def __obj_malloc(pool: Pool, z: int, csum: int) -> int:
    """Pop the zspage's first free object, write its head and content; returns the obj index.
    Caller holds z's class lock."""
    lockdep_assert_class_held(pool, zspage_class(pool, z))
    obj = zspage_obj_base(pool, z) + get_freeobj(pool, z)
    set_freeobj(pool, z, pool.obj_next[obj])
    mod_zspage_inuse(pool, z, 1)
    pool.obj_head[obj] = (obj + 1) | OBJ_ALLOCATED_TAG
    pool.obj_csum[obj] = csum
    return obj


@njit(cache=True, _nrt=False)
def __obj_free(pool: Pool, z: int, obj: int) -> bool:
    """Push obj back on its zspage's free list. False (and counted) if it was not allocated.
    Caller holds z's class lock."""
    lockdep_assert_class_held(pool, zspage_class(pool, z))
    if (pool.obj_head[obj] & OBJ_ALLOCATED_TAG) == 0:
        atomic_fetch_add(pool.stat, PS_BAD_FREE, 1)
        return False
    pool.obj_head[obj] = 0
    pool.obj_next[obj] = get_freeobj(pool, z)
    set_freeobj(pool, z, obj - zspage_obj_base(pool, z))
    mod_zspage_inuse(pool, z, -1)
    return True


# --- zspages from and back to the page allocator --------------------------------------------------

@njit(cache=True, _nrt=False)
def init_zspage(pool: Pool, cls: int, z: int) -> None:
    """Link every object of a fresh zspage on its free list: 0 -> 1 -> ... -> -1."""
    objs = class_objs_per_zspage(pool, cls)
    base = zspage_obj_base(pool, z)
    for i in range(objs):
        pool.obj_next[base + i] = i + 1 if i + 1 < objs else -1
        pool.obj_head[base + i] = 0
        pool.obj_zspage[base + i] = z
    set_zspage_class(pool, z, cls)
    set_zspage_inuse(pool, z, 0)
    set_freeobj(pool, z, 0)
    set_zspage_fullness(pool, z, -1)
    set_zspage_prev(pool, z, -1)
    set_zspage_next(pool, z, -1)


@njit(cache=True, _nrt=False)
def alloc_zspage(pool: Pool, ctx: Ctx, cls: int) -> int:
    """Get pages for a new zspage of class cls from the page allocator (-1: out of memory).

    Called without the class lock, as the kernel does. Descriptors given back earlier for the
    same class are reused (their object range fits); otherwise the zone's cursors hand out new
    ones, up to what the arena holds.
    """
    step_enter(ctx, COST_ALLOC_ZSPAGE_PAGE)
    z = get_zspage_pages(pool, ctx, cls)
    step_exit(ctx)
    return z


@njit(cache=True, _nrt=False, inline="always")
def get_zspage_pages(pool: Pool, ctx: Ctx, cls: int) -> int:
    objs = class_objs_per_zspage(pool, cls)
    zone = pool.zone
    spin_lock(zone, ZONE_LOCK, ctx, LOCK_ZONE)
    z = pool.zone_free[cls]
    if z >= 0:
        pool.zone_free[cls] = zspage_next(pool, z)
    elif (zone[ZONE_NEXT_ZSPAGE] < pool.consts[PC_MAX_ZSPAGES]
          and zone[ZONE_NEXT_OBJ] + objs <= pool.consts[PC_MAX_OBJS]):
        z = zone[ZONE_NEXT_ZSPAGE]
        zone[ZONE_NEXT_ZSPAGE] += 1
        set_zspage_obj_base(pool, z, zone[ZONE_NEXT_OBJ])
        zone[ZONE_NEXT_OBJ] += objs
    if z >= 0:
        set_zspage_state(pool, z, ZSPAGE_LIVE)
    spin_unlock(zone, ZONE_LOCK, ctx, LOCK_ZONE)
    if z < 0:
        atomic_fetch_add(pool.stat, PS_ALLOC_FAILED, 1)
        return -1
    model_cost_scaled(ctx, COST_ALLOC_ZSPAGE_PAGE, class_pages_per_zspage(pool, cls) << 10)
    init_zspage(pool, cls, z)
    return z


@njit(cache=True, _nrt=False)
def __detach_zspage(pool: Pool, cls: int, z: int) -> None:
    """Take an empty zspage off its class (class lock held): it no longer counts as the class's."""
    lockdep_assert_class_held(pool, cls)
    __remove_zspage(pool, cls, z)
    class_stat_add(pool, cls, CS_OBJS_ALLOCATED, -class_objs_per_zspage(pool, cls))


@njit(cache=True, _nrt=False)
def release_zspage_pages(pool: Pool, ctx: Ctx, cls: int, z: int) -> None:
    """Give a detached zspage's pages back to the page allocator (under its zone lock; the class
    lock may be held or not: ZS_FREE_UNLOCKED releases after dropping it)."""
    step_enter(ctx, COST_FREE_ZSPAGE_PAGE)
    pages = class_pages_per_zspage(pool, cls)
    model_cost_scaled(ctx, COST_FREE_ZSPAGE_PAGE, pages << 10)
    atomic_fetch_add(pool.stat, PS_PAGES_ALLOCATED, -pages)
    atomic_fetch_add(pool.stat, PS_ZSPAGES, -1)
    zone = pool.zone
    spin_lock(zone, ZONE_LOCK, ctx, LOCK_ZONE)
    set_zspage_state(pool, z, ZSPAGE_CACHED)
    set_zspage_next(pool, z, pool.zone_free[cls])
    pool.zone_free[cls] = z
    spin_unlock(zone, ZONE_LOCK, ctx, LOCK_ZONE)
    step_exit(ctx)


@njit(cache=True, _nrt=False)
def __free_zspage(pool: Pool, ctx: Ctx, cls: int, z: int) -> None:
    """Give an empty zspage's pages back. Caller holds the class lock (pages go back under it)."""
    lockdep_assert_class_held(pool, cls)
    __detach_zspage(pool, cls, z)
    release_zspage_pages(pool, ctx, cls, z)


# --- zs_malloc and zs_free ------------------------------------------------------------------------

@njit(cache=True, _nrt=False, inline="always")
def obj_class(pool: Pool, ctx: Ctx, obj: int) -> int:
    """The object's size class: under pool->lock (read), or straight from the object value with
    ZS_CLASS_IN_HANDLE (emul never migrates objects, so the read itself is the same)."""
    z = pool.obj_zspage[obj]
    if pool.consts[PC_FLAGS] & ZS_CLASS_IN_HANDLE:
        return zspage_class(pool, z)
    step_enter(ctx, COST_POOL_READ_LOCK)
    read_lock(pool.lock, 0, ctx, LOCK_POOL)
    cls = zspage_class(pool, z)
    read_unlock(pool.lock, 0, ctx, LOCK_POOL)
    model_cost(ctx, COST_POOL_READ_LOCK)
    step_exit(ctx)
    return cls


@njit(cache=True, _nrt=False, inline="always")
def __free_obj_locked(pool: Pool, ctx: Ctx, cls: int, obj: int) -> int:
    """obj_free under the class lock; returns the zspage to release after the unlock (-1: none,
    or it was released under the lock already)."""
    lockdep_assert_class_held(pool, cls)
    z = pool.obj_zspage[obj]
    if not __obj_free(pool, z, obj):
        return -1
    class_stat_add(pool, cls, CS_OBJS_INUSE, -1)
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
    step_enter(ctx, COST_ZS_MALLOC)
    handle = malloc_handle(pool, ctx, size, csum)
    step_exit(ctx)
    return handle


@njit(cache=True, _nrt=False, inline="always")
def malloc_handle(pool: Pool, ctx: Ctx, size: int, csum: int) -> int:
    """zs_malloc's work once the size is known to be valid."""
    model_cost(ctx, COST_ZS_MALLOC)
    cls = class_for_size(pool, size)
    clock = pool.class_lock
    ci = cls * CLASS_LOCK_STRIDE
    spin_lock(clock, ci, ctx, LOCK_CLASS)
    z = __find_get_zspage(pool, cls)
    if z >= 0:
        obj = __obj_malloc(pool, z, csum)
        __fix_fullness_group(pool, cls, z)
        class_stat_add(pool, cls, CS_OBJS_INUSE, 1)
        spin_unlock(clock, ci, ctx, LOCK_CLASS)
        return obj + 1
    spin_unlock(clock, ci, ctx, LOCK_CLASS)

    z = alloc_zspage(pool, ctx, cls)
    if z < 0:
        return 0
    spin_lock(clock, ci, ctx, LOCK_CLASS)
    obj = __obj_malloc(pool, z, csum)
    __insert_zspage(pool, cls, z, get_fullness_group(pool, cls, 1))
    atomic_fetch_add(pool.stat, PS_PAGES_ALLOCATED, class_pages_per_zspage(pool, cls))
    atomic_fetch_add(pool.stat, PS_ZSPAGES, 1)
    class_stat_add(pool, cls, CS_OBJS_ALLOCATED, class_objs_per_zspage(pool, cls))
    class_stat_add(pool, cls, CS_OBJS_INUSE, 1)
    spin_unlock(clock, ci, ctx, LOCK_CLASS)
    return obj + 1


@njit(cache=True, _nrt=False)
def zs_free(pool: Pool, ctx: Ctx, handle: int) -> None:
    """Free the object behind handle; an emptied zspage goes back to the page allocator.

    Lock order: pool->lock (read, only to find the class) -> size_class->lock -> zone lock.
    """
    if handle == 0:
        return
    step_enter(ctx, COST_ZS_FREE)
    free_handle(pool, ctx, handle - 1)
    step_exit(ctx)


@njit(cache=True, _nrt=False, inline="always")
def free_handle(pool: Pool, ctx: Ctx, obj: int) -> None:
    """zs_free's work for one object (its handle's index)."""
    if pool.consts[PC_FLAGS] & ZS_CLASS_IN_HANDLE:
        cls = obj_class(pool, ctx, obj)
        ci = cls * CLASS_LOCK_STRIDE
        spin_lock(pool.class_lock, ci, ctx, LOCK_CLASS)
    else:
        # the class lock is taken before pool->lock is dropped, as the kernel does; the
        # read lock pair is a step of its own (class_in_handle is what saves it)
        step_enter(ctx, COST_POOL_READ_LOCK)
        read_lock(pool.lock, 0, ctx, LOCK_POOL)
        cls = zspage_class(pool, pool.obj_zspage[obj])
        ci = cls * CLASS_LOCK_STRIDE
        spin_lock(pool.class_lock, ci, ctx, LOCK_CLASS)
        read_unlock(pool.lock, 0, ctx, LOCK_POOL)
        model_cost(ctx, COST_POOL_READ_LOCK)
        step_exit(ctx)
    z = __free_obj_locked(pool, ctx, cls, obj)
    if ctx.stat[W_HOLD_WORK] != 0:      # debug gc_hold_ns: a GC that holds the lock longer
        delay_ticks(ctx.stat[W_HOLD_WORK])
    spin_unlock(pool.class_lock, ci, ctx, LOCK_CLASS)
    if z >= 0:
        release_zspage_pages(pool, ctx, cls, z)
    model_cost(ctx, COST_ZS_FREE)


@njit(cache=True, _nrt=False)
def zs_free_run(pool: Pool, ctx: Ctx, handles, lo: int, hi: int) -> int:
    """Free handles[lo:hi], all of one size class, under one class-lock hold (RFC v3's batch).

    Returns how many class-lock acquisitions the run saved. An emptied zspage is released
    under the lock, or (ZS_FREE_UNLOCKED) with the lock dropped around it.
    """
    if hi <= lo:
        return 0
    cls = obj_class(pool, ctx, handles[lo] - 1)
    ci = cls * CLASS_LOCK_STRIDE
    spin_lock(pool.class_lock, ci, ctx, LOCK_CLASS)
    saved = hi - lo - 1
    for k in range(lo, hi):
        step_enter(ctx, COST_ZS_FREE)
        z = __free_obj_locked(pool, ctx, cls, handles[k] - 1)
        if z >= 0:
            spin_unlock(pool.class_lock, ci, ctx, LOCK_CLASS)
            release_zspage_pages(pool, ctx, cls, z)
            spin_lock(pool.class_lock, ci, ctx, LOCK_CLASS)
            saved -= 1
        model_cost(ctx, COST_ZS_FREE)
        step_exit(ctx)
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
