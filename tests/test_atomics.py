"""Atomics and the spin lock, exercised by two real processes pinned to real CPUs.

The processes are ``python -m tests.helpers.lock_hammer`` subprocesses that attach an arena this
test creates (name and layout JSON on their command line), arrive at a start gate in shared
memory (an arrive counter the test futex-waits on, and a go word they spin on) and then run each
phase together. Every count is checked exactly: a lost update anywhere shows up as a wrong total.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from emul.harness.arena import SHM_DIR, Arena
from emul.kernel.lockstat import LOCK_CLASS, LS_ACQUISITIONS, LS_CONTENTIONS, LS_ROW
from tests.helpers import lock_hammer as lh  # noqa: E402

N = 200_000
_usable = sorted(os.sched_getaffinity(0))
CPUS = (_usable[:2] * 2)[:2] if len(_usable) == 1 else _usable[:2]
ATTACH_TIMEOUT_S = 120.0      # the helpers import numba and load (or compile) the kernels
RUN_TIMEOUT_S = 60.0


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(
        os.pathsep) if p])
    return env


def _spawn(arena: Arena, index: int, cpu: int, mode: str, n: int = 0) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tests.helpers.lock_hammer", "--name", arena.name,
           "--layout", json.dumps(arena.layout.to_json()), "--index", str(index),
           "--cpu", str(cpu), "--n", str(n), "--mode", mode]
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _leftovers(name: str) -> list[str]:
    return [f for f in os.listdir(SHM_DIR) if f.startswith(name)]


def _wait_arrivals(gate: np.ndarray, word: int, count: int, procs: list[subprocess.Popen]) -> None:
    """Sleep on the arrive word (futex, value-checked) until count processes arrived."""
    deadline = time.monotonic() + ATTACH_TIMEOUT_S
    while True:
        seen = int(lh.load_word(gate, word))
        if seen >= count:
            return
        for p in procs:
            if p.poll() is not None:
                _, err = p.communicate(timeout=10)
                raise AssertionError(f"helper {p.args} exited with {p.returncode} before the "
                                     f"gate:\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"only {seen} of {count} helpers arrived at the gate")
        lh.wait_word(gate, word, seen, 200_000_000)


def _finish(procs: list[subprocess.Popen]) -> list[dict]:
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=RUN_TIMEOUT_S)
        assert p.returncode == 0, f"helper failed ({p.returncode}):\n{err}"
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


def _kill(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


@pytest.fixture(scope="module")
def hammer() -> dict:
    """Run both helpers through every phase once; the tests below check what they left."""
    arena = Arena.create(lh.build_layout(N))
    procs: list[subprocess.Popen] = []
    try:
        lh.init_arena(arena)
        lh.warm(arena)
        gate = arena["gate"]
        procs = [_spawn(arena, i, cpu, "hammer", N) for i, cpu in enumerate(CPUS)]
        _wait_arrivals(gate, lh.G_ARRIVE, lh.NPROCS, procs)
        arena.unlink()              # both attached: from here nothing can be left behind
        t0 = time.perf_counter()
        lh.store_word(gate, lh.G_GO, 1)
        outs = _finish(procs)
        elapsed = time.perf_counter() - t0
        snap = {k: v.copy() for k, v in arena.views.items()}
    finally:
        _kill(procs)
        arena.unlink()
        arena.close()
    return {"outs": outs, "arrays": snap, "elapsed": elapsed, "leftovers": _leftovers(arena.name),
            "name": arena.name}


def test_helpers_ran_pinned_on_their_cpus(hammer: dict) -> None:
    for out, cpu in zip(hammer["outs"], CPUS):
        assert out["affinity"] == [cpu]
        assert out["start_cpu"] == cpu and out["cpu"] == cpu
    res = hammer["arrays"]["result"]
    assert list(res[:, lh.R_DONE]) == [1, 1]


def test_spin_lock_protects_plain_counter(hammer: dict) -> None:
    lock = hammer["arrays"]["lock"]
    assert lock[lh.L_COUNTER] == 2 * N
    assert lock[lh.L_LOCK] == 0, "lock word left held"
    # the holder's tag: CPU + 1 in bits 0..15, worker index + 1 above (emul/kernel/locking.py)
    assert lock[lh.L_LOCK + 1] & 0xFFFF in {c + 1 for c in CPUS}, \
        "owner word is not a holder's CPU + 1"
    assert lock[lh.L_LOCK + 1] >> 16 >= 1, "owner word does not name the holding worker"
    ls = hammer["arrays"]["lockstat"]
    # lock_stat is on in the helpers: every acquisition was counted in the acquirer's own row
    assert list(ls[:, LOCK_CLASS * LS_ROW + LS_ACQUISITIONS]) == [N, N]
    assert (ls[:, LOCK_CLASS * LS_ROW + LS_CONTENTIONS] <= N).all()


def test_fetch_add_is_exact(hammer: dict) -> None:
    assert hammer["arrays"]["counters"][lh.K_FETCH_ADD] == 2 * N


def test_cas_increment_loop_is_exact(hammer: dict) -> None:
    assert hammer["arrays"]["counters"][lh.K_CAS] == 2 * N
    assert (hammer["arrays"]["result"][:, lh.R_CAS_RETRIES] >= 0).all()


def test_add_below_never_overshoots_its_limit(hammer: dict) -> None:
    """Two processes race for one unit: neither ever reads the counter above the limit, every
    unit taken was given back, and the race was real (some calls refused)."""
    a = hammer["arrays"]
    assert a["counters"][lh.K_BELOW] == 0
    assert (a["result"][:, lh.R_BELOW_PEAK] <= lh.BELOW_LIMIT).all()
    assert (a["result"][:, lh.R_BELOW_PEAK] == lh.BELOW_LIMIT).all()
    if len(set(CPUS)) > 1:          # on one CPU the two may never interleave mid-call
        assert int(a["result"][:, lh.R_BELOW_REFUSED].sum()) > 0


def test_fetch_or_and_of_disjoint_bits(hammer: dict) -> None:
    a = hammer["arrays"]
    assert (a["bits_set"] == -1).all(), "a bit set by fetch_or was lost"
    assert (a["bits_clear"] == 0).all(), "a bit cleared by fetch_and came back"
    res = a["result"]
    assert list(res[:, lh.R_OR_VIOLATIONS]) == [0, 0], "fetch_or returned an owned bit already set"
    assert list(res[:, lh.R_AND_VIOLATIONS]) == [0, 0], "fetch_and returned an owned bit clear"


def test_xchg_hands_off_every_token_exactly_once(hammer: dict) -> None:
    a = hammer["arrays"]
    got = np.concatenate([a["xchg_out"][0], a["xchg_out"][1], a["xchg_slot"][:1]])
    put = np.array([0] + [lh.token(p, i) for p in range(lh.NPROCS) for i in range(N)], np.int64)
    assert got.size == put.size
    assert np.array_equal(np.sort(got), np.sort(put))
    # each process sees its own tokens in the order it put them (the other's may interleave)
    for p in range(lh.NPROCS):
        row = a["xchg_out"][p]
        own = row[(row >> 32) == p + 1]
        assert (np.diff(own) > 0).all()
    foreign = int(sum(int(((a["xchg_out"][p] >> 32) == 2 - p).sum()) for p in range(2)))
    assert foreign == int(a["result"][:, lh.R_XCHG_FOREIGN].sum())


def test_processes_actually_overlapped(hammer: dict) -> None:
    """Some phase really ran concurrently (else the exact totals would prove nothing)."""
    a = hammer["arrays"]
    contended = int(a["lockstat"][:, LOCK_CLASS * LS_ROW + LS_CONTENTIONS].sum())
    retries = int(a["result"][:, lh.R_CAS_RETRIES].sum())
    foreign = int(a["result"][:, lh.R_XCHG_FOREIGN].sum())
    assert contended + retries + foreign > 0, (contended, retries, foreign)


def test_run_is_fast_and_leaves_nothing_in_dev_shm(hammer: dict) -> None:
    assert hammer["leftovers"] == []
    assert _leftovers(hammer["name"]) == []
    assert hammer["elapsed"] < 20.0


# --------------------------------------------------------------------------- single process

def test_read_clock_is_monotonic() -> None:
    back, first, last = lh.clock_monotonic_violations(1_000_000)
    assert back == 0
    assert last > first


@pytest.mark.parametrize("value,expected", [
    (1, 0), (2, 1), (8, 3), (0b1010000, 4), (3 << 10, 10), (1 << 40, 40), (1 << 62, 62),
    (-(1 << 63), 63), (-1, 0), (-2, 1)])
def test_count_trailing_zeros(value: int, expected: int) -> None:
    assert lh.ctz(value) == expected


def test_futex_wait_on_changed_value_returns_at_once() -> None:
    words = np.zeros(64, np.int32)
    t0 = time.perf_counter()
    assert lh.wait_word(words, 0, 1, 5_000_000_000) == -1       # EAGAIN: value is not 1
    assert time.perf_counter() - t0 < 2.5                        # not the 5 s timeout


def test_futex_wait_times_out() -> None:
    words = np.zeros(64, np.int32)
    t0 = time.perf_counter()
    assert lh.wait_word(words, 0, 0, 30_000_000) == -1          # ETIMEDOUT after 30 ms
    assert time.perf_counter() - t0 >= 0.029
    assert lh.wait_word(words, 0, 0, 0) == -1                    # a zero timeout does not block


def test_futex_wake_without_waiter_returns_zero() -> None:
    words = np.zeros(64, np.int32)
    assert lh.set_and_wake(words, 3, 7, 1 << 20) == 0
    assert words[3] == 7


def test_futex_wait_wake_between_processes() -> None:
    """A helper sleeps in futex_wait (5 s timeout); this process sets the word and wakes it."""
    arena = Arena.create(lh.build_layout(1))
    procs: list[subprocess.Popen] = []
    try:
        lh.init_arena(arena)
        lh.warm(arena)
        gate = arena["gate"]
        procs = [_spawn(arena, 0, CPUS[-1], "futex_waiter")]
        _wait_arrivals(gate, lh.G_FUTEX_ARRIVE, 1, procs)
        arena.unlink()
        # it announced itself right before futex_wait; once it is asleep it is in the futex
        waiter = psutil.Process(procs[0].pid)
        deadline = time.monotonic() + 30.0
        while waiter.status() != psutil.STATUS_SLEEPING:
            assert time.monotonic() < deadline, "the waiter never went to sleep"
        woken = lh.set_and_wake(gate, lh.G_FUTEX, 1, 1)
        (out,) = _finish(procs)
    finally:
        _kill(procs)
        arena.unlink()
        arena.close()
    assert woken == 1, "futex_wake found no waiter"
    assert out["ret"] == 0, f"futex_wait returned {out['ret']} (-1: timed out or never slept)"
    assert out["word"] == 1
    assert out["affinity"] == [CPUS[-1]]
    assert _leftovers(arena.name) == []
