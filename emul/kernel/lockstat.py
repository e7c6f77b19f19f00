"""Lock statistics in the columns of /proc/lock_stat, kept per worker so measuring adds no contention.

Each worker owns a private int64 row per lock class (its own rows of one shared array, padded),
and the controller sums them after the phase, as lock_stat keeps per-CPU data. A *bounce* is an
acquisition (or a contention) whose previous holder ran on another CPU; the lock words carry the
last holder's CPU so the emulator knows it exactly.

Collection is switched by the scenario's ``lockstat:`` (like CONFIG_LOCK_STAT it costs a clock
read per acquisition and release); contentions and wait times are always counted, because only
the slow path pays for them.

**Who waited on whom.** Each contention is also counted by the holder the waiter found when it
first failed to take the lock, with its wait in a log2 histogram (``perf lock contention -b``,
bcc's klockstat), in the waiter's own row: ``[class][holder]`` records of WHO_ROW words after
the per-class rows. The holder is read from the lock word's own cache line, which the waiter is
spinning on anyway (spin locks: ``words[i + 1]`` carries the holder's worker index beside its
CPU; the slot lock: bits 48..55 of ``flags`` beside the CPU in 40..47), so attribution adds no
shared-memory traffic. An rwlock's waiter cannot know its holders (readers hold it by count):
its waits go to HOLDER_UNKNOWN, as do waits on a lock word no worker has written yet.
"""
from __future__ import annotations

import numpy as np

# lock classes, in row order: the name lock_stat prints for each
LOCK_CLASS_NAMES = (
    "zram_slot_lock",   # zram table entry lock (ZRAM_ENTRY_LOCK bit)
    "zs_class_lock",    # zsmalloc size_class->lock
    "zs_pool_lock",     # zsmalloc pool->lock (rwlock; zs_free takes it for read)
    "zone_lock",        # page allocator (zone->lock), taken to get or give back zspage pages
    "swap_lock",        # swap slot allocator (si->lock)
    "gc_queue_lock",    # a strategy's queue lock (array / per-CPU buffer / handle buffer)
)
LOCK_SLOT = LOCK_CLASS_NAMES.index("zram_slot_lock")
LOCK_CLASS = LOCK_CLASS_NAMES.index("zs_class_lock")
LOCK_POOL = LOCK_CLASS_NAMES.index("zs_pool_lock")
LOCK_ZONE = LOCK_CLASS_NAMES.index("zone_lock")
LOCK_SWAP = LOCK_CLASS_NAMES.index("swap_lock")
LOCK_GC_QUEUE = LOCK_CLASS_NAMES.index("gc_queue_lock")
NR_LOCK_CLASSES = len(LOCK_CLASS_NAMES)

# fields of a lock class row
LS_CON_BOUNCES = 0
LS_CONTENTIONS = 1
LS_WAIT_MIN = 2
LS_WAIT_MAX = 3
LS_WAIT_TOTAL = 4
LS_ACQ_BOUNCES = 5
LS_ACQUISITIONS = 6
LS_HOLD_MIN = 7
LS_HOLD_MAX = 8
LS_HOLD_TOTAL = 9
LS_HOLD_START = 10   # scratch: when the current hold began
LS_ROW = 16

# waiter -> holder: after the class rows, one record per (class, holder) in the waiter's row
MAX_HOLDERS = 32                   # worker indices 0..30, then:
HOLDER_UNKNOWN = MAX_HOLDERS - 1   # an rwlock's readers, or a lock word not yet written
NR_WAIT_BUCKETS = 32               # bucket k: waits of [2^k, 2^(k+1)) ticks (k = 0: < 2)
WHO_WAITS = 0
WHO_WAIT_TOTAL = 1
WHO_BUCKETS = 2
WHO_ROW = WHO_BUCKETS + NR_WAIT_BUCKETS
LS_WHO = NR_LOCK_CLASSES * LS_ROW

# the shared counters that stand for kernel atomics: per counter, in each writer's private row,
# its updates (low 32 bits of AT_COUNT), how many found that another writer had changed the
# counter since this writer's previous update or the phase's start (the line came from another
# CPU: a bounce; high 32 bits), and the value it last left (AT_LAST, seeded at the phase's
# start). One packed word, so a note is one load-add-store beside the value's store
SHARED_COUNTERS = ("compr_data_size", "failed_reads", "failed_writes", "notify_free",
                   "same_pages", "huge_pages", "huge_pages_since", "pages_stored",
                   "max_used_pages", "miss_free", "gc_slots", "gc_bytes",   # struct zram_stats
                   "zs_pool_lock count")   # pool->lock's reader count (zs_free's read_lock)
NR_SHARED = len(SHARED_COUNTERS)
SC_POOL_LOCK = SHARED_COUNTERS.index("zs_pool_lock count")
AT_COUNT = 0
AT_LAST = 1
AT_ROW = 2
AT_BOUNCE = 1 << 32                # one bounce in AT_COUNT
AT_UPDATES_MASK = AT_BOUNCE - 1
LS_ATOMICS = LS_WHO + NR_LOCK_CLASSES * MAX_HOLDERS * WHO_ROW
LOCKSTAT_WORDS = LS_ATOMICS + NR_SHARED * AT_ROW

COLUMNS = ("class name", "con-bounces", "contentions", "waittime-min", "waittime-max",
           "waittime-total", "waittime-avg", "acq-bounces", "acquisitions", "holdtime-min",
           "holdtime-max", "holdtime-total", "holdtime-avg")

_BIG = np.iinfo(np.int64).max


def new_rows(n_workers: int) -> np.ndarray:
    rows = np.zeros((n_workers, LOCKSTAT_WORDS), dtype=np.int64)
    reset_rows(rows)
    return rows


def reset_rows(rows: np.ndarray, counters_now: np.ndarray | None = None) -> None:
    """Fresh rows; counters_now (the SHARED_COUNTERS' values at the phase's start, default 0)
    seeds every writer's last-seen value, so a first update finds a change made before it."""
    rows[:] = 0
    r = rows[:, :LS_WHO].reshape(rows.shape[0], NR_LOCK_CLASSES, LS_ROW)
    r[:, :, LS_WAIT_MIN] = _BIG
    r[:, :, LS_HOLD_MIN] = _BIG
    if counters_now is not None:
        at = rows[:, LS_ATOMICS:].reshape(rows.shape[0], NR_SHARED, AT_ROW)
        at[:, :, AT_LAST] = counters_now


def merge(rows: np.ndarray, ns_per_tick: float) -> list[dict]:
    """Sum per-worker rows into one lock_stat row per class; times in microseconds like lock_stat."""
    r = rows[:, :LS_WHO].reshape(-1, NR_LOCK_CLASSES, LS_ROW)
    out = []
    us = ns_per_tick / 1000.0
    for k, name in enumerate(LOCK_CLASS_NAMES):
        c = r[:, k, :]
        cont = int(c[:, LS_CONTENTIONS].sum())
        acq = int(c[:, LS_ACQUISITIONS].sum())
        wmin = int(c[:, LS_WAIT_MIN].min())
        hmin = int(c[:, LS_HOLD_MIN].min())
        wtot = float(c[:, LS_WAIT_TOTAL].sum()) * us
        htot = float(c[:, LS_HOLD_TOTAL].sum()) * us
        out.append({
            "class name": name,
            "con-bounces": int(c[:, LS_CON_BOUNCES].sum()),
            "contentions": cont,
            "waittime-min": 0.0 if wmin == _BIG else wmin * us,
            "waittime-max": float(c[:, LS_WAIT_MAX].max()) * us,
            "waittime-total": wtot,
            "waittime-avg": wtot / cont if cont else 0.0,
            "acq-bounces": int(c[:, LS_ACQ_BOUNCES].sum()),
            "acquisitions": acq,
            "holdtime-min": 0.0 if hmin == _BIG else hmin * us,
            "holdtime-max": float(c[:, LS_HOLD_MAX].max()) * us,
            "holdtime-total": htot,
            "holdtime-avg": htot / acq if acq and htot else 0.0,
        })
    return out


def merge_who(rows: np.ndarray, names: dict[int, str], ns_per_tick: float) -> list[dict]:
    """Every (class, waiter, holder) with a contention: waits, wait time (µs, as lock_stat) and
    the log2 histogram, ``buckets``: [lower bound in ns, count] per non-empty bucket (bucket k
    holds waits of 2^k to 2^(k+1) ticks of this run's clock). ``names`` maps worker indices to
    names; the holder HOLDER_UNKNOWN is "?"."""
    who = rows[:, LS_WHO:LS_ATOMICS].reshape(rows.shape[0], NR_LOCK_CLASSES, MAX_HOLDERS,
                                             WHO_ROW)
    out = []
    for waiter in range(rows.shape[0]):
        for k, cls in enumerate(LOCK_CLASS_NAMES):
            for h in np.flatnonzero(who[waiter, k, :, WHO_WAITS]):
                rec = who[waiter, k, h]
                hist = rec[WHO_BUCKETS:]
                out.append({"class name": cls, "waiter": names.get(waiter, f"#{waiter}"),
                            "holder": "?" if h == HOLDER_UNKNOWN else names.get(int(h), f"#{h}"),
                            "waits": int(rec[WHO_WAITS]),
                            "waittime-total": float(rec[WHO_WAIT_TOTAL]) * ns_per_tick / 1000.0,
                            "buckets": [[bucket_ns(int(b), ns_per_tick), int(hist[b])]
                                        for b in np.flatnonzero(hist)]})
    return out


def bucket_ns(bucket: int, ns_per_tick: float) -> float:
    """The lower bound of a wait bucket in ns (bucket 0 starts at 0)."""
    return 0.0 if bucket == 0 else float(2 ** bucket) * ns_per_tick


def merge_counters(rows: np.ndarray) -> dict[str, dict[str, int]]:
    """Per shared counter: updates and bounces summed over the writers (counters nobody
    updated are left out). A bounce is counted when a writer finds the counter changed since
    its own previous update (or since the phase's start, for its first): exact for writers
    pinned to CPUs of their own, a lower bound otherwise (a change undone before the writer
    looks again, +1 then -1, is not seen)."""
    at = rows[:, LS_ATOMICS:].reshape(rows.shape[0], NR_SHARED, AT_ROW)
    out = {}
    for k, name in enumerate(SHARED_COUNTERS):
        count = at[:, k, AT_COUNT]
        updates = int((count & AT_UPDATES_MASK).sum())
        if updates:
            out[name] = {"updates": updates, "bounces": int((count >> 32).sum())}
    return out
