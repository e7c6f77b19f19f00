"""The zram slot table: slot locks, slot_free, and the write and read paths.

Shared arrays (one ``Zram`` of views into the arena):

  table[2*i]      table[i].handle: zsmalloc handle, or the fill word of a ZRAM_SAME slot
  table[2*i + 1]  table[i].flags, aliased with the lock word as in zram_drv.h:
                    bits 0 .. ZRAM_FLAG_SHIFT-1   object size (get_slot_size / set_slot_size)
                    bits ZRAM_FLAG_SHIFT + n      enum zram_pageflags (SAME, ENTRY_LOCK, ...)
                    bits 40..47                   emul only: last lock holder's CPU + 1
                    bits 48..55                   emul only: its worker index + 1 (who waits on
                                                  whom: emul/kernel/lockstat.py)
  stats[]         struct zram_stats, shared atomics side by side as the kernel keeps them
  gc_map[]        one bit per slot: queued for lazy freeing (the RFC's zram->gc_map)
  gc_ctl[]        int32 futex words of the GC work item (pending, idle)
  gc_queue[]      strategy-private storage (rings, stacks, handle buffers)
  params[]        read-only run parameters (page shift, nr_slots, strategy, cap, data profile)
  faults[]        emul's own fault counters, read by the audit (never by the kernel paths)
  patterns[]      data profile "patterns": one page image per text pattern (page k holds
                  pattern k % n), and pattern_len[] its compressed length
  owner[]         emul only, replays: the kill whose victim's content a slot holds (-1: none)
  kills[]         emul only, replays: KILL_WORDS per kill (see emul/kernel/replay.py)

Locking: the entry lock (ZRAM_ENTRY_LOCK) is taken by slot_lock (waits) or slot_trylock (only
zram_slot_free_notify and the GC drain). Everything in an entry other than the lock bit changes
only under it; a ``__`` function expects its caller to hold the slot's lock (the debug switch
assert_locked checks). Lock order: slot lock -> pool->lock -> size_class->lock.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from emul.kernel.atomics import (
    atomic_cas,
    atomic_fetch_add,
    atomic_fetch_and,
    atomic_fetch_or,
    atomic_load,
    read_clock,
)
from emul.kernel.context import (
    COST_COMPRESS_KIB,
    COST_DECOMPRESS_KIB,
    COST_SLOT_FREE,
    COST_SLOT_FREE_COLD,
    W_COLD,
    W_CPU,
    W_IN_PLACE,
    W_INDEX,
    W_MISS_FREE,
    W_REUSED_QUEUED,
    Ctx,
    model_cost,
    model_cost_scaled,
    step_enter,
    step_exit,
)
from emul.kernel.debug import (
    DEBUG_ASSERT_LOCKED,
    DEBUG_REUSE_FREES_TWICE,
    DEBUG_REUSE_KEEPS_QUEUED,
    DEBUG_REUSE_LEAKS_OLD,
)
from emul.kernel.locking import (holder_of, lock_acquired, lock_contended, lock_released,
    spin_wait_step, stat_add)
from emul.kernel.lockstat import LOCK_SLOT
from emul.kernel.zsmalloc import zs_free, zs_malloc, zs_obj_read

Zram = namedtuple("Zram", ["table", "stats", "gc_map", "gc_ctl", "gc_queue", "params", "faults",
                           "patterns", "pattern_len", "owner", "kills", "pool"])

# enum zram_pageflags, as offsets from ZRAM_FLAG_SHIFT (PAGE_SHIFT + 1)
ZRAM_SAME = 0
ZRAM_ENTRY_LOCK = 1
ZRAM_WB = 2
ZRAM_PP_SLOT = 3
ZRAM_HUGE = 4
ZRAM_IDLE = 5
ZRAM_INCOMPRESSIBLE = 6
ZRAM_COMP_PRIORITY_BIT1 = 7
ZRAM_COMP_PRIORITY_BIT2 = 8
OWNER_SHIFT = 40
HOLDER_SHIFT = 48
OWNER_MASK = 0xFFFF << OWNER_SHIFT      # both: the CPU and the worker

# struct zram_stats, in word order (the names results.json uses)
STAT_NAMES = (
    "compr_data_size", "failed_reads", "failed_writes", "notify_free", "same_pages",
    "huge_pages", "huge_pages_since", "pages_stored", "max_used_pages", "miss_free",
    "gc_slots",           # RFC: slots queued for lazy freeing
    "gc_bytes",           # compressed bytes queued (caps in bytes)
)
ST_COMPR_DATA_SIZE = STAT_NAMES.index("compr_data_size")
ST_FAILED_READS = STAT_NAMES.index("failed_reads")
ST_FAILED_WRITES = STAT_NAMES.index("failed_writes")
ST_NOTIFY_FREE = STAT_NAMES.index("notify_free")
ST_SAME_PAGES = STAT_NAMES.index("same_pages")
ST_HUGE_PAGES = STAT_NAMES.index("huge_pages")
ST_HUGE_PAGES_SINCE = STAT_NAMES.index("huge_pages_since")
ST_PAGES_STORED = STAT_NAMES.index("pages_stored")
ST_MAX_USED_PAGES = STAT_NAMES.index("max_used_pages")
ST_MISS_FREE = STAT_NAMES.index("miss_free")
ST_GC_SLOTS = STAT_NAMES.index("gc_slots")
ST_GC_BYTES = STAT_NAMES.index("gc_bytes")
STATS_WORDS = 16

# params
ZP_PAGE_SHIFT = 0
ZP_NR_SLOTS = 1
ZP_HUGE_CLASS_SIZE = 2
ZP_STRATEGY = 3
ZP_CAP_SLOTS = 4          # strategy cap in slots (0: none)
ZP_CAP_BYTES = 5          # strategy cap in compressed bytes (0: none)
ZP_SEED = 6
ZP_MEAN_COMP_LEN = 7      # data profile: mean compressed length in bytes
ZP_SPREAD_PERMILLE = 8    # ... relative spread of lengths, per mille
ZP_SAME_PPM = 9           # ... same-filled pages, parts per million
ZP_HUGE_PPM = 10          # ... incompressible pages, parts per million
ZP_DEBUG = 11             # debug switches (kernel/debug.py), 0 in real runs
ZP_GC_QUEUE_LEN = 12
ZP_NR_PATTERNS = 13       # data profile: text patterns in use (0: random page content)
ZP_TRACK_OWNERS = 14      # replay: slot_free_extract counts each victim's slots down (owner[])

PARAMS_WORDS = 16

# faults (emul's audit counters)
F_DOUBLE_QUEUE = 0        # a slot queued for GC while already queued
F_READ_CORRUPT = 1        # a read returned other content than was written
F_LOCK_NOT_HELD = 2       # debug assert_locked: a `__` function ran without the slot lock
F_CHAOS = 7               # emul run --chaos: the worker index + 1 that must raise (0: none)
FAULTS_WORDS = 8


@njit(cache=True, _nrt=False, inline="always")
def flag_shift(zram: Zram) -> int:
    return zram.params[ZP_PAGE_SHIFT] + 1


@njit(cache=True, _nrt=False, inline="always")
def flag_bit(zram: Zram, flag: int) -> int:
    return 1 << (zram.params[ZP_PAGE_SHIFT] + 1 + flag)


@njit(cache=True, _nrt=False, inline="always")
def get_slot_handle(zram: Zram, index: int) -> int:
    return zram.table[2 * index]


@njit(cache=True, _nrt=False, inline="always")
def set_slot_handle(zram: Zram, index: int, handle: int) -> None:
    zram.table[2 * index] = handle


@njit(cache=True, _nrt=False, inline="always")
def get_slot_size(zram: Zram, index: int) -> int:
    return zram.table[2 * index + 1] & ((1 << flag_shift(zram)) - 1)


@njit(cache=True, _nrt=False, inline="always")
def set_slot_size(zram: Zram, index: int, size: int) -> None:
    w = 2 * index + 1
    zram.table[w] = (zram.table[w] & ~((1 << flag_shift(zram)) - 1)) | size


@njit(cache=True, _nrt=False, inline="always")
def test_slot_flag(zram: Zram, index: int, flag: int) -> bool:
    return (zram.table[2 * index + 1] & flag_bit(zram, flag)) != 0


@njit(cache=True, _nrt=False, inline="always")
def set_slot_flag(zram: Zram, index: int, flag: int) -> None:
    zram.table[2 * index + 1] |= flag_bit(zram, flag)


@njit(cache=True, _nrt=False, inline="always")
def clear_slot_flag(zram: Zram, index: int, flag: int) -> None:
    zram.table[2 * index + 1] &= ~flag_bit(zram, flag)


@njit(cache=True, _nrt=False, inline="always")
def slot_allocated(zram: Zram, index: int) -> bool:
    return (get_slot_size(zram, index) != 0 or test_slot_flag(zram, index, ZRAM_SAME)
            or test_slot_flag(zram, index, ZRAM_WB))


# --- the whole table at once: numpy twins of the accessors above, for the audit ---------------

def table_handles(zram: Zram) -> np.ndarray:
    """get_slot_handle of every slot."""
    return zram.table[0::2]


def table_sizes(zram: Zram) -> np.ndarray:
    """get_slot_size of every slot."""
    return zram.table[1::2] & ((1 << (int(zram.params[ZP_PAGE_SHIFT]) + 1)) - 1)


def table_flags(zram: Zram, flag: int) -> np.ndarray:
    """test_slot_flag(flag) of every slot, as booleans."""
    return (zram.table[1::2] >> (int(zram.params[ZP_PAGE_SHIFT]) + 1 + flag)) & 1 == 1


# --- the entry lock: every taker goes through these three -------------------------------------

@njit(cache=True, _nrt=False)
def slot_trylock(zram: Zram, ctx: Ctx, index: int) -> bool:
    """One attempt: set ENTRY_LOCK (and emul's owner CPU) if it is clear."""
    w = 2 * index + 1
    lock = flag_bit(zram, ZRAM_ENTRY_LOCK)
    old = atomic_load(zram.table, w)
    if old & lock:
        return False
    new = ((old | lock) & ~OWNER_MASK | (((ctx.stat[W_CPU] + 1) & 0xFF) << OWNER_SHIFT)
           | (((ctx.stat[W_INDEX] + 1) & 0xFF) << HOLDER_SHIFT))
    if atomic_cas(zram.table, w, old, new) != old:
        return False
    lock_acquired(ctx, LOCK_SLOT, (old >> OWNER_SHIFT) & 0xFF)
    return True


@njit(cache=True, _nrt=False)
def slot_lock(zram: Zram, ctx: Ctx, index: int) -> None:
    """Take the entry lock, waiting for it (the kernel sleeps in wait_on_bit_lock; emul spins)."""
    if slot_trylock(zram, ctx, index):
        return
    t0 = read_clock()
    w = 2 * index + 1
    lock = flag_bit(zram, ZRAM_ENTRY_LOCK)
    held = atomic_load(zram.table, w)
    prev = (held >> OWNER_SHIFT) & 0xFF
    holder = holder_of((held >> HOLDER_SHIFT) & 0xFF)       # whom we wait on
    spins = 0
    while True:
        while atomic_load(zram.table, w) & lock:
            spins = spin_wait_step(spins)
        if slot_trylock(zram, ctx, index):
            break
    lock_contended(ctx, LOCK_SLOT, read_clock() - t0, prev != 0 and prev != ctx.stat[W_CPU] + 1,
                   holder)


@njit(cache=True, _nrt=False)
def slot_unlock(zram: Zram, ctx: Ctx, index: int) -> None:
    lock_released(ctx, LOCK_SLOT)
    atomic_fetch_and(zram.table, 2 * index + 1, ~flag_bit(zram, ZRAM_ENTRY_LOCK))


@njit(cache=True, _nrt=False, inline="always")
def lockdep_assert_slot_held(zram: Zram, index: int) -> None:
    """Debug assert_locked: count a fault unless slot index's entry lock is held (by someone:
    the lock word does not say by whom). Called first thing by every ``__`` function here."""
    if not zram.params[ZP_DEBUG] & DEBUG_ASSERT_LOCKED:
        return
    if not test_slot_flag(zram, index, ZRAM_ENTRY_LOCK):
        atomic_fetch_add(zram.faults, F_LOCK_NOT_HELD, 1)


@njit(cache=True, _nrt=False)
def chaos_point(zram: Zram, ctx: Ctx) -> None:
    """Where `emul run --chaos` can make this worker fail inside compiled code (once a batch)."""
    if zram.faults[F_CHAOS] == ctx.stat[W_INDEX] + 1:
        raise RuntimeError("chaos: a fault raised inside compiled code")


# --- gc_map: shared by every lazy-free strategy ------------------------------------------------

# what a strategy's enqueue (gc_hooks.gc_try_lazy_free) tells zram_slot_free_notify
LAZY_QUEUED = 1      # the strategy took the slot
LAZY_NO = 0          # the strategy never defers here (sync; mm-async defers earlier, in mm)
LAZY_REFUSED = -1    # over the cap: the caller frees in place (a counted fallback)

@njit(cache=True, _nrt=False, inline="always")
def gc_test(zram: Zram, index: int) -> bool:
    return (atomic_load(zram.gc_map, index >> 6) >> (index & 63)) & 1 != 0


@njit(cache=True, _nrt=False)
def gc_mark(zram: Zram, index: int) -> None:
    """Mark a slot queued (caller holds its lock and has reserved room in gc_slots)."""
    bit = 1 << (index & 63)
    old = atomic_fetch_or(zram.gc_map, index >> 6, bit)
    if old & bit:
        atomic_fetch_add(zram.faults, F_DOUBLE_QUEUE, 1)


@njit(cache=True, _nrt=False)
def gc_forget(zram: Zram, ctx: Ctx, index: int) -> bool:
    """Take a slot off gc_map if it is queued (its content is being freed now). Lock held."""
    if not gc_test(zram, index):
        return False
    bit = 1 << (index & 63)
    old = atomic_fetch_and(zram.gc_map, index >> 6, ~bit)
    if old & bit:
        stat_add(zram.stats, ctx, ST_GC_SLOTS, -1)
        stat_add(zram.stats, ctx, ST_GC_BYTES, -get_slot_size(zram, index))
        return True
    return False


# --- slot_free ---------------------------------------------------------------------------------

# replays: per-kill words in zram.kills (KILL_WORDS each); emul/kernel/replay.py fills the rest
KILL_WORDS = 8
K_SLOTS_LEFT = 5          # the victim's slots still holding content
K_SWAP_DONE = 3           # read_clock() when the last of them was freed


@njit(cache=True, _nrt=False)
def __note_victim_slot_freed(zram: Zram, index: int) -> None:
    """A slot of a replayed victim lost its content: count it, stamp the victim's last one."""
    lockdep_assert_slot_held(zram, index)
    owner = zram.owner[index]
    if owner < 0:
        return
    zram.owner[index] = -1
    if atomic_fetch_add(zram.kills, owner * KILL_WORDS + K_SLOTS_LEFT, -1) == 1:
        zram.kills[owner * KILL_WORDS + K_SWAP_DONE] = read_clock()


@njit(cache=True, _nrt=False, inline="always")   # a call would cost more than its work
def slot_free_extract(zram: Zram, ctx: Ctx, index: int) -> int:
    """slot_free's zram half: reset the entry's flags, size and handle, fix the stats. Caller
    holds the slot lock. Returns the handle whose object still needs zs_free (0: none).

    A slot still queued for lazy freeing is taken off gc_map first: whoever frees the content
    (the GC, or a write reusing the slot) owns the free, so it happens exactly once.
    """
    step_enter(ctx, COST_SLOT_FREE)
    handle = __slot_free_extract(zram, ctx, index)
    step_exit(ctx)
    return handle


@njit(cache=True, _nrt=False, inline="always")
def __slot_free_extract(zram: Zram, ctx: Ctx, index: int) -> int:
    lockdep_assert_slot_held(zram, index)
    gc_forget(zram, ctx, index)
    if not slot_allocated(zram, index) and get_slot_handle(zram, index) == 0:
        return 0   # an empty slot (a fresh write's target): nothing to free, nothing to pay
    if zram.params[ZP_TRACK_OWNERS]:
        __note_victim_slot_freed(zram, index)
    model_cost(ctx, COST_SLOT_FREE)
    w = 2 * index + 1
    zram.table[w] &= ~(flag_bit(zram, ZRAM_IDLE) | flag_bit(zram, ZRAM_INCOMPRESSIBLE)
                       | flag_bit(zram, ZRAM_PP_SLOT) | flag_bit(zram, ZRAM_COMP_PRIORITY_BIT1)
                       | flag_bit(zram, ZRAM_COMP_PRIORITY_BIT2))
    if test_slot_flag(zram, index, ZRAM_HUGE):
        clear_slot_flag(zram, index, ZRAM_HUGE)
        stat_add(zram.stats, ctx, ST_HUGE_PAGES, -1)
    handle = 0
    if test_slot_flag(zram, index, ZRAM_SAME):
        clear_slot_flag(zram, index, ZRAM_SAME)
        stat_add(zram.stats, ctx, ST_SAME_PAGES, -1)
    else:
        handle = get_slot_handle(zram, index)
        if handle == 0:
            return 0
        stat_add(zram.stats, ctx, ST_COMPR_DATA_SIZE, -get_slot_size(zram, index))
    stat_add(zram.stats, ctx, ST_PAGES_STORED, -1)
    set_slot_handle(zram, index, 0)
    set_slot_size(zram, index, 0)
    return handle


@njit(cache=True, _nrt=False)
def slot_free(zram: Zram, ctx: Ctx, index: int) -> None:
    """Free a slot's content and reset it (zram's slot_free). Caller holds the slot lock.

    In the fault path (ctx W_COLD) the object's zsmalloc metadata is cache-cold: the profile's
    slot_free_cold is paid with the zs_free.
    """
    handle = slot_free_extract(zram, ctx, index)
    if handle != 0:
        if ctx.stat[W_COLD]:
            model_cost(ctx, COST_SLOT_FREE_COLD)
        zs_free(zram.pool, ctx, handle)


@njit(cache=True, _nrt=False, inline="always")
def zram_slot_free_trylock(zram: Zram, ctx: Ctx, index: int) -> bool:
    """The notify's first step: count it, take the slot lock without waiting (it runs under the
    swap locks and must not sleep); a slot found locked is a miss and keeps its content."""
    stat_add(zram.stats, ctx, ST_NOTIFY_FREE, 1)
    if slot_trylock(zram, ctx, index):
        return True
    stat_add(zram.stats, ctx, ST_MISS_FREE, 1)
    ctx.stat[W_MISS_FREE] += 1
    return False


@njit(cache=True, _nrt=False)
def zram_slot_free_sync(zram: Zram, ctx: Ctx, index: int) -> None:
    """zram_slot_free_notify as today's kernel has it: free in place, no strategy asked. (The
    RFC's version, which offers the slot to the strategy first, is kernel/notify.py's.)"""
    if zram_slot_free_trylock(zram, ctx, index):
        slot_free(zram, ctx, index)
        ctx.stat[W_IN_PLACE] += 1
        slot_unlock(zram, ctx, index)


# --- page content: what emul writes into and reads out of zram ---------------------------------

@njit(cache=True, _nrt=False, inline="always")
def splitmix64(x: int) -> int:
    """A 63-bit hash of x (splitmix64's finaliser), non-negative so callers can use % freely."""
    z = np.uint64(x) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.int64((z ^ (z >> np.uint64(31))) >> np.uint64(1))


@njit(cache=True, _nrt=False)
def page_kind(zram: Zram, key: int) -> int:
    """0: ordinary page, 1: same-filled, 2: incompressible; decided by the data profile."""
    r = splitmix64(zram.params[ZP_SEED] * 1_000_003 + key) % 1_000_000
    if r < zram.params[ZP_SAME_PPM]:
        return 1
    if r < zram.params[ZP_SAME_PPM] + zram.params[ZP_HUGE_PPM]:
        return 2
    return 0


@njit(cache=True, _nrt=False)
def fill_page(zram: Zram, page, key: int) -> None:
    """Write page number key's synthetic content into the buffer page (int64 words)."""
    kind = page_kind(zram, key)
    x = splitmix64(key ^ (zram.params[ZP_SEED] << 32))
    npat = zram.params[ZP_NR_PATTERNS]
    if kind == 0 and npat > 0:
        base = (key % npat) * page.size
        for i in range(page.size):
            page[i] = zram.patterns[base + i]
    elif kind == 1:
        fill = x & 0xFF  # same-filled pages are mostly zero or a byte pattern
        fill = fill * 0x0101010101010101 if fill & 1 else 0
        for i in range(page.size):
            page[i] = fill
    else:
        for i in range(page.size):
            x = splitmix64(x)
            page[i] = x


@njit(cache=True, _nrt=False)
def page_same_filled(page) -> tuple:
    """(True, element) if every word equals the first, as zram's page_same_filled()."""
    val = page[0]
    if page[page.size - 1] != val:
        return False, 0
    for i in range(1, page.size - 1):
        if page[i] != val:
            return False, 0
    return True, val


@njit(cache=True, _nrt=False)
def page_checksum(page) -> int:
    """FNV-1a over the page's words (63 bits kept)."""
    h = np.uint64(0xCBF29CE484222325)
    for i in range(page.size):
        h = (h ^ np.uint64(page[i])) * np.uint64(0x100000001B3)
    return np.int64(h >> np.uint64(1))


@njit(cache=True, _nrt=False)
def fill_checksum(page, element: int) -> int:
    """Checksum of a page read back from a ZRAM_SAME slot (zram_fill_page, then checksum)."""
    for i in range(page.size):
        page[i] = element
    return page_checksum(page)


@njit(cache=True, _nrt=False)
def compressed_length(zram: Zram, key: int) -> int:
    """What the compressor would make of page key: the data profile's modelled length."""
    if page_kind(zram, key) == 2:
        return 1 << zram.params[ZP_PAGE_SHIFT]
    npat = zram.params[ZP_NR_PATTERNS]
    if npat > 0:
        return zram.pattern_len[key % npat]
    mean = zram.params[ZP_MEAN_COMP_LEN]
    u = (splitmix64(key * 31 + 7 + zram.params[ZP_SEED]) % 2001) - 1000  # -1000 .. 1000
    n = mean + mean * zram.params[ZP_SPREAD_PERMILLE] * u // 1_000_000
    return max(32, min(n, (1 << zram.params[ZP_PAGE_SHIFT]) - 1))


# --- write and read -----------------------------------------------------------------------------

@njit(cache=True, _nrt=False)
def __slot_reuse(zram: Zram, ctx: Ctx, index: int) -> bool:
    """A write is about to replace the slot's content (lock held): was it queued for GC?

    slot_free() then takes it off gc_map, so the GC never frees the new content; the old
    content is freed here, once.
    """
    lockdep_assert_slot_held(zram, index)
    if not gc_test(zram, index):
        return False
    ctx.stat[W_REUSED_QUEUED] += 1
    debug = zram.params[ZP_DEBUG]
    if debug & DEBUG_REUSE_LEAKS_OLD and not test_slot_flag(zram, index, ZRAM_SAME):
        set_slot_handle(zram, index, 0)          # forget the object instead of freeing it
    if debug & DEBUG_REUSE_FREES_TWICE and not test_slot_flag(zram, index, ZRAM_SAME):
        zs_free(zram.pool, ctx, get_slot_handle(zram, index))   # slot_free frees it again
    return True


@njit(cache=True, _nrt=False)
def __debug_requeue(zram: Zram, index: int, was_queued: bool) -> None:
    """DEBUG_REUSE_KEEPS_QUEUED: the bug the write order prevents, for the audit test."""
    lockdep_assert_slot_held(zram, index)
    if was_queued and zram.params[ZP_DEBUG] & DEBUG_REUSE_KEEPS_QUEUED:
        gc_mark(zram, index)
        atomic_fetch_add(zram.stats, ST_GC_SLOTS, 1)
        atomic_fetch_add(zram.stats, ST_GC_BYTES, get_slot_size(zram, index))


@njit(cache=True, _nrt=False)
def write_same_filled_page(zram: Zram, ctx: Ctx, index: int, element: int) -> None:
    slot_lock(zram, ctx, index)
    queued = __slot_reuse(zram, ctx, index)
    slot_free(zram, ctx, index)
    set_slot_flag(zram, index, ZRAM_SAME)
    set_slot_handle(zram, index, element)
    __debug_requeue(zram, index, queued)
    slot_unlock(zram, ctx, index)
    stat_add(zram.stats, ctx, ST_SAME_PAGES, 1)
    stat_add(zram.stats, ctx, ST_PAGES_STORED, 1)


@njit(cache=True, _nrt=False)
def write_incompressible_page(zram: Zram, ctx: Ctx, index: int, csum: int) -> bool:
    page_size = 1 << zram.params[ZP_PAGE_SHIFT]
    handle = zs_malloc(zram.pool, ctx, page_size, csum)
    if handle == 0:
        stat_add(zram.stats, ctx, ST_FAILED_WRITES, 1)
        return False
    slot_lock(zram, ctx, index)
    queued = __slot_reuse(zram, ctx, index)
    slot_free(zram, ctx, index)
    set_slot_flag(zram, index, ZRAM_HUGE)
    set_slot_handle(zram, index, handle)
    set_slot_size(zram, index, page_size)
    __debug_requeue(zram, index, queued)
    slot_unlock(zram, ctx, index)
    stat_add(zram.stats, ctx, ST_COMPR_DATA_SIZE, page_size)
    stat_add(zram.stats, ctx, ST_HUGE_PAGES, 1)
    stat_add(zram.stats, ctx, ST_HUGE_PAGES_SINCE, 1)
    stat_add(zram.stats, ctx, ST_PAGES_STORED, 1)
    return True


@njit(cache=True, _nrt=False)
def zram_write_page(zram: Zram, ctx: Ctx, index: int, key: int, page) -> bool:
    """Store page number key's content in slot index, freeing what the slot held before.

    As zram_write_page: detect a same-filled page, compress (modelled), zs_malloc and copy
    without the slot lock, then lock, free the old content, install the new, unlock.
    """
    step_enter(ctx, COST_COMPRESS_KIB)
    ok = write_page(zram, ctx, index, key, page)
    step_exit(ctx)
    return ok


@njit(cache=True, _nrt=False, inline="always")
def write_page(zram: Zram, ctx: Ctx, index: int, key: int, page) -> bool:
    fill_page(zram, page, key)
    same, element = page_same_filled(page)
    if same:
        write_same_filled_page(zram, ctx, index, element)
        return True
    page_size = 1 << zram.params[ZP_PAGE_SHIFT]
    model_cost_scaled(ctx, COST_COMPRESS_KIB, page_size)
    comp_len = compressed_length(zram, key)
    csum = page_checksum(page)
    if comp_len >= zram.params[ZP_HUGE_CLASS_SIZE]:
        return write_incompressible_page(zram, ctx, index, csum)
    handle = zs_malloc(zram.pool, ctx, comp_len, csum)
    if handle == 0:
        stat_add(zram.stats, ctx, ST_FAILED_WRITES, 1)
        return False
    slot_lock(zram, ctx, index)
    queued = __slot_reuse(zram, ctx, index)
    slot_free(zram, ctx, index)
    set_slot_handle(zram, index, handle)
    set_slot_size(zram, index, comp_len)
    __debug_requeue(zram, index, queued)
    slot_unlock(zram, ctx, index)
    stat_add(zram.stats, ctx, ST_PAGES_STORED, 1)
    stat_add(zram.stats, ctx, ST_COMPR_DATA_SIZE, comp_len)
    return True


@njit(cache=True, _nrt=False)
def zram_read_page(zram: Zram, ctx: Ctx, index: int, page) -> int:
    """Read slot index under its lock; returns the checksum of the page content read."""
    slot_lock(zram, ctx, index)
    handle = get_slot_handle(zram, index)
    if test_slot_flag(zram, index, ZRAM_SAME) or handle == 0:
        csum = fill_checksum(page, handle)
    else:
        if not test_slot_flag(zram, index, ZRAM_HUGE):
            model_cost_scaled(ctx, COST_DECOMPRESS_KIB, get_slot_size(zram, index))
        csum = zs_obj_read(zram.pool, handle)
    slot_unlock(zram, ctx, index)
    return csum
