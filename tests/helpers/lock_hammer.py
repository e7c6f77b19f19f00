"""A helper process for tests/test_atomics.py: hammers shared words of an arena from one CPU.

Started by the test as ``python -m tests.helpers.lock_hammer --name <arena> --layout <json>
--index <i> --cpu <c> --n <N> --mode hammer|futex_waiter``. It pins itself to ``--cpu``, attaches
the arena the test created, arrives at a start gate in shared memory and then runs every phase
(spin-lock protected plain counter, fetch_add, cas loop, add_below under a limit,
fetch_or/fetch_and of its own bits, xchg hand-off), with an in-memory barrier between phases so both processes run each phase
together. Results go to stdout as one JSON line; every value the test checks is also in the arena.

Nothing is pickled between processes: the test passes the layout as JSON and reads the arena.
The compiled kernels live in this module (not ``__main__``) so the test process can warm numba's
disk cache with the same functions the helpers then load.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import time

import numpy as np
from numba import njit

from emul.harness.arena import Arena, Layout
from emul.kernel.atomics import (atomic_add_below, atomic_cas, atomic_fetch_add, atomic_fetch_and, atomic_fetch_or,
    atomic_load, atomic_store, atomic_xchg, count_trailing_zeros, cpu_relax, futex_wait, futex_wake,
    read_clock, sched_getcpu)
from emul.kernel.context import NR_COSTS, STAT_WORDS, W_LOCKSTAT, Ctx, note_cpu
from emul.kernel.locking import spin_lock, spin_unlock
from emul.kernel.lockstat import LOCK_CLASS, LOCKSTAT_WORDS, reset_rows

NPROCS = 2
BIT_WORDS = 64          # words of the fetch_or / fetch_and arrays
BIT_ROUNDS = 200        # set-then-clear rounds over every owned bit

# gate (int32, futex-capable): arrive counter and go word on separate cache lines
G_ARRIVE = 0
G_GO = 16
G_FUTEX = 32            # the futex hand-off word
G_FUTEX_ARRIVE = 48     # the futex waiter's "I am about to sleep" word
GATE_WORDS = 64

# ctl (int64)
C_BARRIER = 0
CTL_WORDS = 16

# lock array: lock word at 0, owner (cpu + 1) at 1, the plain counter on its own line at 8
L_LOCK = 0
L_COUNTER = 8
LOCK_WORDS = 16

# counters (int64): fetch_add at 0, cas at 8, add_below at 16, each on its own line
K_FETCH_ADD = 0
K_CAS = 8
K_BELOW = 16
COUNTER_WORDS = 24
BELOW_LIMIT = 1         # one holder at a time: the other's add_below must refuse, not overshoot

# per-process result words
R_CAS_RETRIES = 0
R_OR_VIOLATIONS = 1     # fetch_or found one of my bits already set
R_AND_VIOLATIONS = 2    # fetch_and found one of my bits already clear
R_XCHG_FOREIGN = 3      # tokens I got back that the other process put in
R_START_CPU = 4
R_END_CPU = 5
R_DONE = 6
R_BELOW_REFUSED = 7     # add_below calls that refused
R_BELOW_PEAK = 8        # the largest value this process read back after its own add_below
R_WORDS = 16

SPIN_CHUNK = 1 << 22    # spins per compiled wait before Python checks its deadline


def build_layout(n: int) -> Layout:
    lay = Layout()
    lay.add("gate", np.int32, GATE_WORDS)
    lay.add("ctl", np.int64, CTL_WORDS)
    lay.add("lock", np.int64, LOCK_WORDS)
    lay.add("counters", np.int64, COUNTER_WORDS)
    lay.add("bits_set", np.int64, BIT_WORDS)
    lay.add("bits_clear", np.int64, BIT_WORDS)
    lay.add("xchg_slot", np.int64, 8)
    lay.add("xchg_out", np.int64, (NPROCS, max(1, n)))
    lay.add("result", np.int64, (NPROCS, R_WORDS))
    lay.add("wstat", np.int64, (NPROCS, STAT_WORDS))
    lay.add("lockstat", np.int64, (NPROCS, LOCKSTAT_WORDS))
    lay.add("costs", np.int64, (NPROCS, NR_COSTS))
    return lay


def init_arena(arena: Arena) -> None:
    for v in arena.views.values():
        v[...] = 0
    arena["bits_clear"][:] = -1     # every bit set: the processes clear their own
    reset_rows(arena["lockstat"])


def ctx_of(arena: Arena, index: int) -> Ctx:
    return Ctx(arena["wstat"][index], arena["lockstat"][index], arena["costs"][index])


def token(index: int, i: int) -> int:
    """The i-th value process ``index`` puts into the xchg slot (never 0)."""
    return ((index + 1) << 32) | (i + 1)


# --------------------------------------------------------------------------- compiled kernels

@njit(cache=True, _nrt=False)
def gate_arrive(gate, word) -> None:
    atomic_fetch_add(gate, word, 1)
    futex_wake(gate, word, 1 << 30)


@njit(cache=True, _nrt=False)
def spin_until_at_least(arr, i, value, spins) -> bool:
    """Spin (bounded) until arr[i] >= value; False if the bound ran out."""
    for _ in range(spins):
        if atomic_load(arr, i) >= value:
            return True
        cpu_relax()
    return atomic_load(arr, i) >= value


@njit(cache=True, _nrt=False)
def barrier_arrive(ctl, i) -> None:
    atomic_fetch_add(ctl, i, 1)


@njit(cache=True, _nrt=False)
def run_lock(lock, ctx, n) -> None:
    for _ in range(n):
        spin_lock(lock, L_LOCK, ctx, LOCK_CLASS)
        lock[L_COUNTER] += 1               # plain, non-atomic read-modify-write
        spin_unlock(lock, L_LOCK, ctx, LOCK_CLASS)


@njit(cache=True, _nrt=False)
def run_fetch_add(counters, n) -> None:
    for _ in range(n):
        atomic_fetch_add(counters, K_FETCH_ADD, 1)


@njit(cache=True, _nrt=False)
def run_cas(counters, n) -> int:
    retries = 0
    for _ in range(n):
        while True:
            old = atomic_load(counters, K_CAS)
            if atomic_cas(counters, K_CAS, old, old + 1) == old:
                break
            retries += 1
    return retries


@njit(cache=True, _nrt=False)
def run_below(counters, n) -> tuple:
    """Take a unit under BELOW_LIMIT, read the counter back, give the unit back; (refusals,
    largest value read). The read-back is where an add-then-undo counter would show overshoot."""
    refused = 0
    peak = 0
    for _ in range(n):
        if atomic_add_below(counters, K_BELOW, 1, BELOW_LIMIT) < 0:
            refused += 1
            continue
        seen = atomic_load(counters, K_BELOW)
        if seen > peak:
            peak = seen
        atomic_fetch_add(counters, K_BELOW, -1)
    return refused, peak


@njit(cache=True, _nrt=False)
def run_bits(bits_set, bits_clear, index, rounds) -> tuple:
    """Process ``index`` owns the bits b with b % 2 == index of every word.

    Rounds of set-then-clear on bits_set (the word's other bits change under it all the time),
    then a final set of every owned bit of bits_set and a clear of every owned bit of bits_clear.
    The returned old values must always show the owned bit in the state this process left it.
    """
    or_bad = 0
    and_bad = 0
    nwords = bits_set.size
    for _ in range(rounds):
        for w in range(nwords):
            for b in range(index, 64, 2):
                m = np.int64(1) << b
                if atomic_fetch_or(bits_set, w, m) & m:
                    or_bad += 1
                if (atomic_fetch_and(bits_set, w, ~m) & m) == 0:
                    and_bad += 1
    for w in range(nwords):
        for b in range(index, 64, 2):
            m = np.int64(1) << b
            if atomic_fetch_or(bits_set, w, m) & m:
                or_bad += 1
            if (atomic_fetch_and(bits_clear, w, ~m) & m) == 0:
                and_bad += 1
    return or_bad, and_bad


@njit(cache=True, _nrt=False)
def run_xchg(slot, out, index, n) -> int:
    """Swap my tokens into the slot, keeping what comes back; count the other process's ones."""
    foreign = 0
    mine = np.int64(index + 1) << 32
    for i in range(n):
        got = atomic_xchg(slot, 0, mine | (i + 1))
        out[i] = got
        if got != 0 and (got >> 32) != index + 1:
            foreign += 1
    return foreign


@njit(cache=True, _nrt=False)
def futex_sleep(gate, timeout_ns) -> int:
    """The waiter: announce, then sleep on G_FUTEX while it is 0. Returns futex_wait's result."""
    atomic_fetch_add(gate, G_FUTEX_ARRIVE, 1)
    futex_wake(gate, G_FUTEX_ARRIVE, 1)
    return futex_wait(gate, G_FUTEX, 0, timeout_ns)


@njit(cache=True, _nrt=False)
def set_and_wake(gate, word, value, count) -> int:
    atomic_store(gate, word, value)
    return futex_wake(gate, word, count)


@njit(cache=True, _nrt=False)
def wait_word(gate, word, expected, timeout_ns) -> int:
    return futex_wait(gate, word, expected, timeout_ns)


@njit(cache=True, _nrt=False)
def load_word(arr, i) -> int:
    return atomic_load(arr, i)


@njit(cache=True, _nrt=False)
def store_word(arr, i, value) -> None:
    atomic_store(arr, i, value)


@njit(cache=True, _nrt=False)
def clock_monotonic_violations(n) -> tuple:
    """Read the clock n times; (times it went backwards, first reading, last reading)."""
    first = read_clock()
    prev = first
    back = 0
    for _ in range(n):
        t = read_clock()
        if t < prev:
            back += 1
        prev = t
    return back, first, prev


@njit(cache=True, _nrt=False)
def ctz(word) -> int:
    return count_trailing_zeros(word)


@njit(cache=True, _nrt=False)
def current_cpu() -> int:
    return sched_getcpu()


def warm(arena: Arena) -> None:
    """Compile every kernel against the arena's array types (fills numba's disk cache)."""
    scratch = {k: np.zeros_like(v) for k, v in arena.views.items()}
    ctx = Ctx(scratch["wstat"][0], scratch["lockstat"][0], scratch["costs"][0])
    gate, ctl = scratch["gate"], scratch["ctl"]
    gate_arrive(gate, G_ARRIVE)
    spin_until_at_least(gate, G_ARRIVE, 1, 1)
    spin_until_at_least(ctl, C_BARRIER, 0, 1)
    barrier_arrive(ctl, C_BARRIER)
    run_lock(scratch["lock"], ctx, 1)
    run_fetch_add(scratch["counters"], 1)
    run_cas(scratch["counters"], 1)
    run_below(scratch["counters"], 1)
    run_bits(scratch["bits_set"], scratch["bits_clear"], 0, 0)
    run_xchg(scratch["xchg_slot"], scratch["xchg_out"][0], 0, 1)
    note_cpu(ctx)
    current_cpu()
    load_word(gate, G_GO)
    load_word(ctl, C_BARRIER)
    store_word(gate, G_GO, 0)
    wait_word(gate, G_FUTEX, 1, 0)     # value differs: returns at once
    set_and_wake(gate, G_FUTEX, 0, 1)
    futex_sleep.compile("int64(Array(int32, 1, 'C'), int64)")


# --------------------------------------------------------------------------- process side

def die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG
    except OSError:
        pass
    if os.getppid() == 1:
        os._exit(1)


def wait_spin(arr, i, value, deadline: float) -> None:
    while not spin_until_at_least(arr, i, value, SPIN_CHUNK):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited too long for word {i} to reach {value}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tests.helpers.lock_hammer")
    ap.add_argument("--name", required=True)
    ap.add_argument("--layout", required=True, help="the arena layout as JSON")
    ap.add_argument("--index", type=int, required=True)
    ap.add_argument("--cpu", type=int, required=True)
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--mode", choices=("hammer", "futex_waiter"), default="hammer")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--futex-timeout-ns", type=int, default=5_000_000_000)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import psutil

    args = parse_args(argv)
    die_with_parent()
    deadline = time.monotonic() + args.timeout

    proc = psutil.Process()
    proc.cpu_affinity([args.cpu])
    arena = Arena.attach(args.name, Layout.from_json(json.loads(args.layout)))
    try:
        out: dict = {"index": args.index, "pid": os.getpid(), "affinity": proc.cpu_affinity()}
        if args.mode == "futex_waiter":
            gate = arena["gate"]
            ret = futex_sleep(gate, args.futex_timeout_ns)
            out.update(ret=int(ret), word=int(load_word(gate, G_FUTEX)), cpu=int(current_cpu()))
        else:
            hammer(arena, args.index, args.n, deadline, out)
        print(json.dumps(out), flush=True)
        return 0
    finally:
        arena.close()


def hammer(arena: Arena, i: int, n: int, deadline: float, out: dict) -> None:
    """Every phase of the hammer, each ended by a barrier of all NPROCS processes."""
    gate, ctl = arena["gate"], arena["ctl"]
    ctx = ctx_of(arena, i)
    res = arena["result"][i]
    note_cpu(ctx)
    ctx.stat[W_LOCKSTAT] = 1
    res[R_START_CPU] = current_cpu()

    gate_arrive(gate, G_ARRIVE)
    wait_spin(gate, G_GO, 1, deadline)          # the test opens the gate

    phase = 0

    def barrier() -> None:
        nonlocal phase
        phase += 1
        barrier_arrive(ctl, C_BARRIER)
        wait_spin(ctl, C_BARRIER, NPROCS * phase, deadline)

    run_lock(arena["lock"], ctx, n)
    barrier()
    run_fetch_add(arena["counters"], n)
    barrier()
    res[R_CAS_RETRIES] = run_cas(arena["counters"], n)
    barrier()
    res[R_BELOW_REFUSED], res[R_BELOW_PEAK] = run_below(arena["counters"], n)
    barrier()
    or_bad, and_bad = run_bits(arena["bits_set"], arena["bits_clear"], i, BIT_ROUNDS)
    res[R_OR_VIOLATIONS], res[R_AND_VIOLATIONS] = or_bad, and_bad
    barrier()
    res[R_XCHG_FOREIGN] = run_xchg(arena["xchg_slot"], arena["xchg_out"][i], i, n)
    res[R_END_CPU] = current_cpu()
    res[R_DONE] = 1
    out.update(cpu=int(res[R_END_CPU]), start_cpu=int(res[R_START_CPU]))


if __name__ == "__main__":
    # Run the copy imported under its package name, so the kernels are the ones the test warmed.
    from tests.helpers.lock_hammer import main as _main
    sys.exit(_main())
