"""Spin locks and reader-writer locks on words of shared memory, with lock_stat accounting.

Lock word layout: ``words[i]`` is the lock (0 free, 1 held), ``words[i + 1]`` the holder's tag:
bits 0..15 the CPU of the last holder plus one, so an acquisition knows whether the lock's cache
line came from another CPU (a bounce), bits 16..23 its worker index plus one, so a waiter knows
whom it waits on (emul/kernel/lockstat.py, "who waited on whom"). Each lock word sits at the start of its own 64-byte line, as ____cacheline_aligned
puts the kernel's size_class locks.

Spinning is test-and-test-and-set with the CPU's relax hint: read until the word looks free, then
one atomic exchange. A waiter that has spun for SPINS_BEFORE_YIELD reads yields its CPU: the
kernel's spinlock holders cannot be preempted, emul's can, and a holder preempted by a waiter on
its own CPU would otherwise be stuck for a whole time slice (milliseconds of phantom wait). Where the kernel sleeps (the bit-wait slot lock), emul spins: the waiters it
models are short and a futex round trip would dominate them.
"""
from __future__ import annotations

from numba import njit

from emul.kernel.atomics import (atomic_cas, atomic_fetch_add, atomic_load, atomic_store_release,
    atomic_xchg, cpu_relax, read_clock, sched_yield)
from emul.kernel.context import W_CPU, W_INDEX, Ctx, lockstat_on
from emul.kernel.lockstat import (HOLDER_UNKNOWN, LS_ACQ_BOUNCES, LS_ACQUISITIONS,
    LS_CON_BOUNCES, LS_CONTENTIONS, LS_HOLD_MAX, LS_HOLD_MIN, LS_HOLD_START, LS_HOLD_TOTAL,
    LS_ROW, LS_WAIT_MAX, LS_WAIT_MIN, LS_WAIT_TOTAL, LS_WHO, MAX_HOLDERS, NR_WAIT_BUCKETS,
    WHO_BUCKETS, WHO_ROW, WHO_WAIT_TOTAL, WHO_WAITS, AT_BOUNCE, AT_COUNT, AT_LAST, AT_ROW,
    LOCK_POOL, LS_ATOMICS, SC_POOL_LOCK)

RW_WRITER = 1 << 62
SPINS_BEFORE_YIELD = 2048    # ~10-50 us of cpu_relax: far beyond any modelled hold time


@njit(cache=True, _nrt=False, inline="always")
def spin_wait_step(spins: int) -> int:
    """One step of a busy wait: relax, and every SPINS_BEFORE_YIELD steps let others run."""
    cpu_relax()
    spins += 1
    if spins >= SPINS_BEFORE_YIELD:
        sched_yield()
        spins = 0
    return spins


@njit(cache=True, _nrt=False, inline="always")
def note_update(ctx: Ctx, counter: int, old: int, new: int) -> None:
    """A writer's update of a shared counter, in its private row: a bounce when the counter is
    no longer what this writer left it at (another CPU wrote the line since). Branch-free, one
    packed word: it sits beside every stats atomic on the per-slot path (emul bench)."""
    at = LS_ATOMICS + counter * AT_ROW
    ls = ctx.lockstat
    ls[at + AT_COUNT] += 1 + (AT_BOUNCE if ls[at + AT_LAST] != old else 0)
    ls[at + AT_LAST] = new


@njit(cache=True, _nrt=False, inline="always")
def stat_add(stats, ctx: Ctx, i: int, delta: int) -> int:
    """atomic64_add(delta, &zram->stats.<i>), its bounce noted in the writer's row (the
    counters are SHARED_COUNTERS' first, in STAT_NAMES' order); the old value."""
    old = atomic_fetch_add(stats, i, delta)
    note_update(ctx, i, old, old + delta)
    return old


@njit(cache=True, _nrt=False, inline="always")
def holder_tag(ctx: Ctx) -> int:
    """What a holder writes beside the lock: its CPU + 1 (bits 0..15), worker index + 1
    (bits 16..23)."""
    return (ctx.stat[W_CPU] + 1) | (((ctx.stat[W_INDEX] + 1) & 0xFF) << 16)


@njit(cache=True, _nrt=False, inline="always")
def holder_of(worker1: int) -> int:
    """The holder's worker index from its tag's worker + 1 (HOLDER_UNKNOWN: none written)."""
    if worker1 <= 0 or worker1 >= MAX_HOLDERS:
        return HOLDER_UNKNOWN
    return worker1 - 1


@njit(cache=True, _nrt=False, inline="always")
def wait_bucket(waited: int) -> int:
    """log2 of a wait in ticks, as perf lock contention -b buckets it."""
    k = 0
    while waited > 1 and k < NR_WAIT_BUCKETS - 1:
        waited >>= 1
        k += 1
    return k


@njit(cache=True, _nrt=False, inline="always")
def lock_contended(ctx: Ctx, lclass: int, waited: int, bounced: bool, holder: int) -> None:
    """Account a contention (the slow path only): lock_stat's columns, and the waiter ->
    holder record with its histogram, all in the waiter's private row."""
    row = lclass * LS_ROW
    ls = ctx.lockstat
    ls[row + LS_CONTENTIONS] += 1
    if bounced:
        ls[row + LS_CON_BOUNCES] += 1
    ls[row + LS_WAIT_TOTAL] += waited
    if waited < ls[row + LS_WAIT_MIN]:
        ls[row + LS_WAIT_MIN] = waited
    if waited > ls[row + LS_WAIT_MAX]:
        ls[row + LS_WAIT_MAX] = waited
    who = LS_WHO + (lclass * MAX_HOLDERS + holder) * WHO_ROW
    ls[who + WHO_WAITS] += 1
    ls[who + WHO_WAIT_TOTAL] += waited
    ls[who + WHO_BUCKETS + wait_bucket(waited)] += 1


@njit(cache=True, _nrt=False, inline="always")
def lock_acquired(ctx: Ctx, lclass: int, prev_cpu1: int) -> None:
    """Account an acquisition; prev_cpu1 is the last holder's CPU + 1 (0: never held; higher
    bits of a holder tag are ignored)."""
    if not lockstat_on(ctx):
        return
    prev_cpu1 = prev_cpu1 & 0xFFFF
    row = lclass * LS_ROW
    ls = ctx.lockstat
    ls[row + LS_ACQUISITIONS] += 1
    if prev_cpu1 != 0 and prev_cpu1 != ctx.stat[W_CPU] + 1:
        ls[row + LS_ACQ_BOUNCES] += 1
    ls[row + LS_HOLD_START] = read_clock()


@njit(cache=True, _nrt=False, inline="always")
def lock_released(ctx: Ctx, lclass: int) -> None:
    if not lockstat_on(ctx):
        return
    row = lclass * LS_ROW
    ls = ctx.lockstat
    held = read_clock() - ls[row + LS_HOLD_START]
    ls[row + LS_HOLD_TOTAL] += held
    if held < ls[row + LS_HOLD_MIN]:
        ls[row + LS_HOLD_MIN] = held
    if held > ls[row + LS_HOLD_MAX]:
        ls[row + LS_HOLD_MAX] = held


@njit(cache=True, _nrt=False)
def spin_lock_slowpath(words, i: int, ctx: Ctx, lclass: int) -> None:
    """The contended case, out of line (the kernel's queued_spin_lock_slowpath): spin until
    the holder lets go, and account the wait."""
    t0 = read_clock()
    me = ctx.stat[W_INDEX]
    # whom we wait on: the tag beside the lock, on the line we spin on anyway; a holder writes
    # it just after its exchange, so a tag naming ourselves is the previous hold's: read again
    holder = holder_of((atomic_load(words, i + 1) >> 16) & 0xFF)
    spins = 0
    while True:
        while atomic_load(words, i) != 0:
            if holder == me:
                holder = holder_of((atomic_load(words, i + 1) >> 16) & 0xFF)
            spins = spin_wait_step(spins)
        if atomic_xchg(words, i, 1) == 0:
            break
    if holder == me:
        holder = HOLDER_UNKNOWN
    prev = atomic_load(words, i + 1) & 0xFFFF
    lock_contended(ctx, lclass, read_clock() - t0, prev != 0 and prev != ctx.stat[W_CPU] + 1,
                   holder)


# inline: the uncontended lock is one exchange; a call would cost more (numba passes every
# array of the arguments as scalars)
@njit(cache=True, _nrt=False, inline="always")
def spin_lock(words, i: int, ctx: Ctx, lclass: int) -> None:
    if atomic_xchg(words, i, 1) != 0:
        spin_lock_slowpath(words, i, ctx, lclass)
    prev = atomic_load(words, i + 1)
    atomic_store_release(words, i + 1, holder_tag(ctx))   # ours at once: waiters read it
    lock_acquired(ctx, lclass, prev)


@njit(cache=True, _nrt=False, inline="always")
def spin_trylock(words, i: int, ctx: Ctx, lclass: int) -> bool:
    if atomic_load(words, i) != 0 or atomic_xchg(words, i, 1) != 0:
        return False
    prev = atomic_load(words, i + 1)
    atomic_store_release(words, i + 1, holder_tag(ctx))
    lock_acquired(ctx, lclass, prev)
    return True


@njit(cache=True, _nrt=False, inline="always")
def spin_unlock(words, i: int, ctx: Ctx, lclass: int) -> None:
    lock_released(ctx, lclass)
    atomic_store_release(words, i, 0)


@njit(cache=True, _nrt=False)
def read_lock(words, i: int, ctx: Ctx, lclass: int) -> None:
    """Reader side of an rwlock: a reader count in the word, RW_WRITER set while a writer holds it.

    Readers never wait for each other, but every read_lock/read_unlock is an atomic on one shared
    cache line: that line bouncing between CPUs is the cost zs_free's pool->lock adds.
    """
    old = atomic_fetch_add(words, i, 1)
    if lclass == LOCK_POOL:       # the reader count is a shared counter of its own
        note_update(ctx, SC_POOL_LOCK, old, old + 1)
    if old & RW_WRITER:
        atomic_fetch_add(words, i, -1)
        t0 = read_clock()
        spins = 0
        while True:
            while atomic_load(words, i) & RW_WRITER:
                spins = spin_wait_step(spins)
            old = atomic_fetch_add(words, i, 1)
            if not old & RW_WRITER:
                break
            atomic_fetch_add(words, i, -1)
        lock_contended(ctx, lclass, read_clock() - t0, False, HOLDER_UNKNOWN)
    lock_acquired(ctx, lclass, 0)


@njit(cache=True, _nrt=False)
def read_unlock(words, i: int, ctx: Ctx, lclass: int) -> None:
    lock_released(ctx, lclass)
    old = atomic_fetch_add(words, i, -1)
    if lclass == LOCK_POOL:
        note_update(ctx, SC_POOL_LOCK, old, old - 1)


@njit(cache=True, _nrt=False)
def write_lock(words, i: int, ctx: Ctx, lclass: int) -> None:
    t0 = read_clock()
    contended = False
    spins = 0
    while atomic_cas(words, i, 0, RW_WRITER) != 0:
        contended = True
        spins = spin_wait_step(spins)
    if contended:      # its holders are readers (a count): unknown
        lock_contended(ctx, lclass, read_clock() - t0, False, HOLDER_UNKNOWN)
    lock_acquired(ctx, lclass, 0)


@njit(cache=True, _nrt=False)
def write_unlock(words, i: int, ctx: Ctx, lclass: int) -> None:
    lock_released(ctx, lclass)
    atomic_fetch_add(words, i, -RW_WRITER)
