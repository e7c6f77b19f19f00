"""``emul bench``: microbenchmarks of emul's own machinery, each against the same run's floor.

The floor is one uncontended atomic add (``lock xadd`` on x86-64, ``ldaddal`` / an LL/SC loop on
arm64) in a compiled loop: the cheapest shared-memory operation any emulated path performs.
Every other row is reported as a multiple of it, measured minutes apart on the same machine, so
the ratios stay meaningful on a shared or throttled host where the absolute figures drift.

Rows: the floor; the real slot lock (trylock + unlock); a contended lock hand-off between two
pinned processes; each registered strategy's enqueue (zram_slot_free_notify's part under the
slot lock) and drain (the GC work item, in this process, zero cost profile); a control-plane
round trip over the ZeroMQ ROUTER/DEALER pair the controller uses; and the time ``emul run``
takes from its start to its first phase.

Every timed figure is the median of several batches; each batch is one compiled loop of many
iterations timed with ``time.perf_counter_ns`` from Python (never a single operation), except
a strategy whose queue must be drained every few hundred slots: its chunks are timed inside
compiled code with the cycle counter. A batch whose thread lost its CPU is run again.
"""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numba
import numpy as np

from emul import PACKAGE_ROOT
from emul.errors import InputError, RunAborted
from emul.harness.arena import Arena
from emul.harness.entrypoints import BENCH_ENTRY_POINTS, Views, compile_entry_points
from emul.harness.microbench import (
    OnCpu,
    fill_slots,
    loop_atomic_add,
    loop_chunks,
    loop_drain,
    loop_enqueue,
    loop_handoff,
    loop_slot_lock,
)
from emul.harness.repeat import reset_arena
from emul.harness.supervisor import Supervisor, WorkerProc
from emul.kernel import layout
from emul.kernel.clock import measure_ticks_per_ns
from emul.kernel.context import note_cpu
from emul.kernel.gc_hooks import gc_backlog
from emul.strategies import STRATEGY_MODULES, strategy_id

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

T = TypeVar("T")
ENQUEUE_LIMIT_X = 10.0          # acceptance: enqueue within 10x the atomic add
DRAIN_TARGET = 5_000_000        # acceptance: bitmap drain >= 5 M slots/s (zero profile)
PEER_START_TIMEOUT_S = 180.0    # the peer imports numba and loads the cached kernels
PEER_TIMEOUT_S = 120.0
PEER = "benchpeer"
RUN_TIMEOUT_S = 300.0
HANDOFF_SLOT = 0


# --------------------------------------------------------------------------- results

@dataclass
class Row:
    key: str                      # stable identifier (JSON)
    name: str                     # what the table shows
    value: float | None           # in unit
    unit: str
    ns: float | None              # nanoseconds per operation (per slot for throughputs)
    note: str = ""
    x_floor: float | None = None
    samples: list[float] = field(default_factory=list)   # per-batch values, in unit


@dataclass
class Settings:
    quick: bool
    batches: int
    atomic_n: int
    lock_n: int
    slots: int
    handoff_turns: int
    rtt_n: int
    runs: int

    @classmethod
    def make(cls, quick: bool) -> "Settings":
        if quick:
            return cls(True, batches=3, atomic_n=1_000_000, lock_n=500_000, slots=1 << 15,
                       handoff_turns=20_000, rtt_n=500, runs=1)
        return cls(False, batches=7, atomic_n=5_000_000, lock_n=2_000_000, slots=1 << 16,
                   handoff_turns=100_000, rtt_n=2_000, runs=3)


def run_batches(batch: Callable[[], tuple[T, bool]], batches: int,
                retry: bool = True) -> tuple[list[T], int]:
    """Results of ``batches`` calls of batch() -> (result, preempted). A preempted batch is run
    again, up to 3 × batches calls in all; returns the results and how many of them were
    still preempted (re-runs ran out: the machine is busy, the figure is inflated)."""
    kept: list[T] = []
    spare: list[T] = []
    for _ in range(3 * batches):
        result, preempted = batch()
        (spare if preempted and retry else kept).append(result)
        if len(kept) == batches:
            break
    missing = batches - len(kept)
    return kept + spare[:missing], missing


def timed_batches(fn: Callable[[], object], batches: int,
                  retry: bool = True) -> tuple[list[int], int]:
    """Wall nanoseconds of each call of fn (one compiled loop per call), after one warm-up."""
    fn()

    def one() -> tuple[int, bool]:
        on = OnCpu()
        t0 = time.perf_counter_ns()
        fn()
        dt = time.perf_counter_ns() - t0
        return dt, on.preempted()

    return run_batches(one, batches, retry)


def busy_note(preempted: int) -> str:
    """What the reader should know when some batches shared the CPU with a neighbour."""
    if not preempted:
        return ""
    return f"; {preempted} batch{'es' if preempted != 1 else ''} preempted (machine busy)"


# --------------------------------------------------------------------------- the bench

class Bench:
    def __init__(self, settings: Settings, progress: Callable[[str], None]) -> None:
        self.s = settings
        self.progress = progress
        self.rows: list[Row] = []
        self.cpus = sorted(os.sched_getaffinity(0))
        self.cpu_a = self.cpus[0]
        self.cpu_b = self.cpus[1] if len(self.cpus) > 1 else self.cpus[0]

    # --- set-up ------------------------------------------------------------------------------

    def geometry(self, strategy: str) -> layout.Geometry:
        n = self.s.slots
        qwords = 0
        for mod in STRATEGY_MODULES.values():
            try:
                qwords = max(qwords, int(mod.queue_words(n, n)))
            except Exception:   # a strategy being written right now must not sink the others
                pass
        # the cap is the whole device: every slot can be queued, none falls back
        return layout.Geometry(page_size=4096, nr_slots=n, total_pages=1, n_workers=2,
                               strategy_id=strategy_id(strategy), cap_slots=n, cap_bytes=0,
                               queue_words=qwords, seed=1, mean_comp_len=2048,
                               spread_permille=250, same_ppm=0, huge_ppm=0)

    def reset(self, strategy: str) -> None:
        """An empty device running ``strategy``, zero cost profile (as a repeat starts)."""
        geo = self.geometry(strategy)
        reset_arena(self.arena, geo, strategy)
        self.arena["costs"][:] = 0      # the zero profile: emul's machinery alone
        note_cpu(self.v.ctx)

    # --- rows --------------------------------------------------------------------------------

    def add(self, row: Row) -> Row:
        # plain floats: numpy scalars would not serialise to JSON
        row.value = None if row.value is None else float(row.value)
        row.ns = None if row.ns is None else float(row.ns)
        row.samples = [float(x) for x in row.samples]
        self.rows.append(row)
        shown = "—" if row.value is None else f"{fmt_value(row.value, row.unit)}"
        self.progress(f"{row.name}: {shown}" + (f" ({row.note})" if row.note else ""))
        return row

    def floor_batches(self) -> tuple[list[float], int]:
        n = self.s.atomic_n
        words = self.words   # a private line: the floor is an uncontended add
        ts, busy = timed_batches(lambda: loop_atomic_add(words, n), self.s.batches)
        return [t / n for t in ts], busy

    def bench_floor(self) -> None:
        per, busy = self.floor_batches()
        ns = statistics.median(per)
        self.floor_ns = ns
        self.add(Row("atomic_add", "atomic add, uncontended (floor)", ns, "ns", ns,
                     f"atomic_fetch_add in a loop of {self.s.atomic_n:,}" + busy_note(busy),
                     samples=per))

    def recheck_floor(self) -> None:
        """Measure the floor again after the other rows: on a shared machine a neighbour's time
        slice can inflate one measurement, and every ratio divides by it. The lower median is
        the floor; the note shows both when they differ."""
        row = self.rows[0]
        again, _ = self.floor_batches()
        ns = statistics.median(again)
        if abs(ns - row.value) > 0.2 * min(ns, row.value):
            row.note += f"; measured {row.value:.1f} ns first, {ns:.1f} ns last: the lower kept"
        if ns < row.value:
            row.value = row.ns = ns
            row.samples = again
        self.floor_ns = row.value
        self.progress(f"floor again: {ns:.1f} ns (floor {self.floor_ns:.1f} ns)")

    def bench_slot_lock(self) -> None:
        self.reset("sync")
        n = self.s.lock_n
        z, ctx = self.v.zram, self.v.ctx
        ts, busy = timed_batches(lambda: loop_slot_lock(z, ctx, n, 1023), self.s.batches)
        per = [t / n for t in ts]
        ns = statistics.median(per)
        self.add(Row("slot_lock", "slot lock + unlock, uncontended", ns, "ns", ns,
                     "slot_trylock + slot_unlock, 1,024 hot slots" + busy_note(busy),
                     samples=per))

    def bench_strategies(self) -> None:
        from emul.strategies import STRATEGY_MODULES
        for name in STRATEGY_MODULES:    # the registry: new strategies show up by themselves
            try:
                self.bench_strategy(name)
            except Exception as exc:   # report it in the table, keep benchmarking the rest
                for what in ("enqueue", "drain"):
                    self.add(Row(f"{what}:{name}", f"{what}: {name}", None, "", None,
                                 f"failed: {type(exc).__name__}: {exc}"))

    def bench_strategy(self, name: str) -> None:
        """Fill every slot, queue them all, drain until nothing is queued; per batch.

        A strategy whose queue holds fewer slots than the device without a GC emptying it
        (it refuses the rest, as percpu-zsfree past half its page pool) is then run in chunks
        of what it took, draining after each chunk, timed in compiled code with the cycle
        counter: timing each chunk from Python would measure Python's call overhead.
        """
        self.reset(name)
        z, mm, ctx, page, n = self.v.zram, self.v.mm, self.v.ctx, self.v.page, self.s.slots
        fill_slots(z, ctx, 0, n, page)                 # warm-up: caches, branch predictors
        queued = loop_enqueue(z, ctx, 0, n)
        loop_drain(z, mm, ctx, 1_000_000)
        chunk = n if queued in (0, n) else max(1, queued)
        split = np.zeros(4, np.int64)

        def one() -> tuple[tuple, bool]:
            fill_slots(z, ctx, 0, n, page)             # untimed: content to free
            on = OnCpu()
            if chunk == n:
                t0 = time.perf_counter_ns()
                queued = loop_enqueue(z, ctx, 0, n)
                t1 = time.perf_counter_ns()
                freed = loop_drain(z, mm, ctx, 1_000_000) if queued else 0
                t2 = time.perf_counter_ns()
                enq_ns, drain_ns = t1 - t0, t2 - t1
            else:
                split[:] = 0
                loop_chunks(z, mm, ctx, 0, n, chunk, split)
                enq_ns, drain_ns = split[0] / self.ticks_per_ns, split[1] / self.ticks_per_ns
                queued, freed = int(split[2]), int(split[3])
            rate = freed / (drain_ns / 1e9) if freed else None
            return (enq_ns / n, queued, freed, int(gc_backlog(z)), rate), on.preempted()

        results, busy = run_batches(one, self.s.batches)
        self.add_strategy_rows(name, chunk, results, busy)

    def add_strategy_rows(self, name: str, chunk: int, results: list[tuple], busy: int) -> None:
        """The enqueue row and the drain row of one strategy, from its batches' results
        (ns per slot enqueued, queued, freed, backlog left, drain rate)."""
        n = self.s.slots
        enq = [r[0] for r in results]
        freed_seen = [r[2] for r in results]
        left = [r[3] for r in results]
        drn = [r[4] for r in results if r[4] is not None]
        q = int(statistics.median(r[1] for r in results))
        if q == 0:
            note = (f"{n:,} slots, none queued (LAZY_NO): zram_slot_free_notify frees in place, "
                    f"not timed here")
        elif chunk < n:
            note = (f"{n:,} slots in chunks of {chunk:,} (its queue's room without a GC), "
                    f"drained after each; cycle counter")
        else:
            note = f"{n:,} slots, cap {n:,}, no GC waiting (queue_work only sets PENDING)"
        if 0 < q < n:
            note += f"; queued {q:,} of {n:,}"
        ns = statistics.median(enq)
        self.add(Row(f"enqueue:{name}", f"enqueue: {name}", ns, "ns/slot", ns,
                     note + busy_note(busy), samples=enq))
        if not drn:
            self.add(Row(f"drain:{name}", f"drain: {name}", None, "slots/s", None,
                         "nothing queued: no GC work"))
            return
        rate = statistics.median(drn)
        how = "one gc_drain loop until backlog 0" if chunk == n else f"{n // chunk:,} drains"
        note = f"{statistics.median(freed_seen):,.0f} freed by {how}"
        if max(left):
            note += f"; backlog left {max(left):,}"
        self.add(Row(f"drain:{name}", f"drain: {name}", rate, "slots/s", 1e9 / rate,
                     note + busy_note(busy), samples=drn))

    def bench_handoff(self, peer: Supervisor) -> None:
        self.reset("sync")
        same = self.cpu_a == self.cpu_b
        # on one CPU every hand-off waits for the scheduler to preempt the spinner: keep it short
        turns = 20 if same else self.s.handoff_turns
        z, ctx, ctl = self.v.zram, self.v.ctx, self.arena["ctl"]

        def one(k: int) -> tuple[float, bool]:
            z.table[2 * HANDOFF_SLOT] = 0
            on = OnCpu()
            t0 = 0

            def go() -> None:
                nonlocal t0, on
                on = OnCpu()
                t0 = time.perf_counter_ns()
            peer.start_phase(ctl, {PEER: ("handoff", {"turns": k, "index": HANDOFF_SLOT})},
                             PEER_TIMEOUT_S, go)
            loop_handoff(z, ctx, HANDOFF_SLOT, 0, k)
            dt = time.perf_counter_ns() - t0
            preempted = on.preempted()
            # either end losing its CPU stalls every hand-off: the peer reports its own
            result = peer.wait_done({PEER}, PEER_TIMEOUT_S)[PEER].result
            preempted = preempted or bool(result.get("preempted"))
            return dt / max(1, int(z.table[2 * HANDOFF_SLOT]) - 1), preempted

        one(min(turns, 1000))                           # warm-up
        # on one CPU a preemption is how every hand-off happens: nothing to re-run
        per, busy = run_batches(lambda: one(turns), self.s.batches, retry=not same)
        ns = statistics.median(per)
        note = (f"CPU {self.cpu_a} ↔ CPU {self.cpu_b}, {2 * turns:,} turns, real slot lock"
                if not same else f"both on CPU {self.cpu_a} (only one usable CPU): every "
                                 f"hand-off waits for a preemption")
        note += busy_note(busy)
        self.add(Row("handoff", "contended lock hand-off, 2 processes", ns, "ns", ns, note,
                     samples=per))

    def bench_control(self, peer: Supervisor) -> None:
        n = self.s.rtt_n
        # this one sleeps in poll by design: its CPU time says nothing about neighbours
        ts, _ = timed_batches(lambda: echo(peer, n), self.s.batches, retry=False)
        per = [t / n / 1000 for t in ts]
        us = statistics.median(per)
        self.add(Row("control_rtt", "control-plane round trip (ZeroMQ)", us, "µs", us * 1000,
                     f"ROUTER/DEALER over ipc, JSON, to CPU {self.cpu_b}; {n:,} per batch",
                     samples=per))

    def bench_run_start(self) -> None:
        times, notes = [], []
        cold = 0
        attempts = 0
        while len(times) < self.s.runs and attempts < self.s.runs + 2:
            attempts += 1
            got = time_run_start(self.cpu_a, self.cpu_b)
            if got.get("error"):
                notes.append(got["error"])
                break
            if got["cold"] and cold == 0:
                cold += 1          # the run compiled the kernel paths: a warm-up, not a figure
                continue
            times.append(got["ms"])
        if not times:
            self.add(Row("run_start", "emul run: start to first phase", None, "ms", None,
                         "; ".join(notes) or "no figure"))
            return
        ms = statistics.median(times)
        note = (f"wall time to 'repeat 1/…' (first phase sent), tiny scenario, "
                f"{len(times)} run{'s' if len(times) > 1 else ''}, numba cache warm")
        if cold:
            note += "; one cold run (compiling) discarded"
        self.add(Row("run_start", "emul run: start to first phase", ms, "ms", ms * 1e6, note,
                     samples=times))

    # --- the whole bench ---------------------------------------------------------------------

    def run(self) -> list[Row]:
        import psutil
        me = psutil.Process()
        affinity = me.cpu_affinity()
        self.ticks_per_ns = measure_ticks_per_ns(0.02)
        self.words = np.zeros(16, np.int64)
        self.arena = Arena.create(layout.build_layout(self.geometry("sync")))
        try:
            self.v = Views.of(self.arena, 0)
            self.reset("sync")
            # pinned, so the loops never migrate mid-batch and the hand-off has fixed ends
            me.cpu_affinity([self.cpu_a])
            self.progress("compiling the bench kernels (cached after the first run)")
            compile_entry_points(self.v, BENCH_ENTRY_POINTS)
            self.bench_floor()
            self.bench_slot_lock()
            self.bench_strategies()
            self.with_peer()
            self.recheck_floor()
            me.cpu_affinity(affinity)   # emul run pins its own workers
            self.progress("timing emul run on a tiny scenario")
            self.bench_run_start()
        finally:
            self.arena.unlink()
            self.v = None
            self.arena.close()
            me.cpu_affinity(affinity)
        for row in self.rows:
            if row.ns is not None and self.floor_ns > 0:
                row.x_floor = float(row.ns / self.floor_ns)
        return self.rows

    def with_peer(self) -> None:
        """The rows that need a second process: the lock hand-off and the control round trip."""
        self.progress(f"starting the peer process on CPU {self.cpu_b}")
        with tempfile.NamedTemporaryFile(prefix="emul-bench-peer-", suffix=".log") as log:
            peer = Supervisor([WorkerProc(PEER, "benchpeer", 1, [self.cpu_b])], log.name)
            try:
                peer.start(self.arena, self.ticks_per_ns, PEER_START_TIMEOUT_S)
                self.bench_handoff(peer)
                self.bench_control(peer)
            except Exception as exc:  # a row that says why, not a lost table
                reason = f"{type(exc).__name__}: {exc}" + log_tail(log.name)
                for key, name in (("handoff", "contended lock hand-off, 2 processes"),
                                  ("control_rtt", "control-plane round trip (ZeroMQ)")):
                    if not any(r.key == key for r in self.rows):
                        self.add(Row(key, name, None, "", None, f"failed: {reason}"))
            finally:
                peer.shutdown()


def echo(peer: Supervisor, n: int) -> None:
    """n round trips: an ungated phase message out, its done message back, read straight off
    the socket (as emul's control plane carries them, without the supervisor's polling)."""
    recv, known = peer.server.recv, {PEER}
    for _ in range(n):
        seq = peer.send_ungated(PEER, "echo")
        got = recv(10_000, known)
        if got is None or got[1].get("seq") != seq:
            raise RunAborted("the bench peer's echo went missing")


def log_tail(path: str) -> str:
    """The last lines the peer wrote (its traceback, if it died), for the failed row."""
    try:
        lines = Path(path).read_text(errors="replace").strip().splitlines()[-3:]
    except OSError:
        return ""
    return (" | " + " | ".join(lines)) if lines else ""


# --------------------------------------------------------------------------- emul run start-up

PROGRESS_LINE = re.compile(r"^\[\s*([0-9.]+)s\]\s*(.*)$")


def tiny_scenario(cpu_a: int, cpu_b: int) -> dict:
    return {
        "name": "bench-tiny", "experiment": "unmap", "page_size": "4K", "repeats": 1, "seed": 1,
        "profile": "zero", "zram": {"disksize": "16M"},
        "processes": [{"name": "victim", "vma": "8M", "swapped": 1.0}],
        "data": {"compression_ratio": 2.0, "spread": 0.25},
        "workers": {"killer": {"cpu": cpu_a}, "gc": {"cpu": cpu_b}, "swapout": {"cpu": cpu_a}},
        "variants": [{"name": "sync", "strategy": "sync"},
                     {"name": "bitmap", "strategy": "bitmap", "cap": 1000}],
    }


def time_run_start(cpu_a: int, cpu_b: int) -> dict:
    """Run ``emul run`` on a tiny scenario; wall ms from spawning it to its first line naming a
    repeat (sent right before the first phase). ``cold``: its kernel compile took over 1.5 s."""
    import yaml
    with tempfile.TemporaryDirectory(prefix="emul-bench-") as tmp:
        sc = Path(tmp) / "tiny.yaml"
        sc.write_text(yaml.safe_dump(tiny_scenario(cpu_a, cpu_b), sort_keys=False))
        cmd = [sys.executable, "-m", "emul.cli", "run", str(sc), "-o", str(Path(tmp) / "out")]
        root = PACKAGE_ROOT
        with tempfile.TemporaryFile() as err:
            t0 = time.perf_counter_ns()
            proc = subprocess.Popen(cmd, cwd=root, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=err, text=True)
            first = None
            stamps: dict[str, float] = {}
            try:
                for line in proc.stdout:
                    m = PROGRESS_LINE.match(line.strip())
                    text = m.group(2) if m else line
                    if m:
                        for key in ("compiling", "starting"):
                            if text.startswith(key) and key not in stamps:
                                stamps[key] = float(m.group(1))
                    if first is None and "repeat 1/" in text:
                        first = time.perf_counter_ns() - t0
                rc = proc.wait(timeout=RUN_TIMEOUT_S)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if rc != 0 or first is None:
                err.seek(0)
                tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
                return {"error": f"emul run exited with {rc}: {' '.join(tail)}"}
    cold = stamps.get("starting", 0.0) - stamps.get("compiling", 0.0) > 1.5
    return {"ms": first / 1e6, "cold": cold}


# --------------------------------------------------------------------------- output

def fmt_value(value: float, unit: str) -> str:
    if unit == "slots/s":
        return f"{value / 1e6:.2f} M slots/s"
    if unit in ("ns", "ns/slot"):
        if value >= 1e5:       # a hand-off that waited for the scheduler
            return f"{value / 1e6:,.2f} ms"
        return f"{value:.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    if unit == "µs":
        return f"{value:.1f} µs"
    if unit == "ms":
        return f"{value:,.0f} ms"
    return f"{value:g} {unit}"


def fmt_x(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.2f}×" if x < 10 else f"{x:,.0f}×" if x < 1e6 else f"{x:.2e}×"


def criteria(rows: list[Row]) -> list[dict]:
    """The project's acceptance figures, reported (never asserted)."""
    out = []
    for r in rows:
        if r.key.startswith("enqueue:") and r.x_floor is not None:
            out.append({"criterion": f"{r.name} within {ENQUEUE_LIMIT_X:g}× the atomic add",
                        "value": f"{r.x_floor:.2f}×",
                        "met": bool(r.x_floor <= ENQUEUE_LIMIT_X)})
    for r in rows:
        if r.key == "drain:bitmap":
            ok = bool(r.value is not None and r.value >= DRAIN_TARGET)
            out.append({"criterion": f"bitmap drain ≥ {DRAIN_TARGET / 1e6:g} M slots/s "
                                     "(zero profile)",
                        "value": "—" if r.value is None else fmt_value(r.value, r.unit),
                        "met": ok})
    return out


def table(rows: list[Row], title: str) -> "Table":
    from rich.table import Table
    t = Table(title=title)
    t.add_column("benchmark")
    t.add_column("value", justify="right")
    t.add_column("× floor", justify="right")
    t.add_column("note")
    for r in rows:
        t.add_row(r.name, "—" if r.value is None else fmt_value(r.value, r.unit),
                  fmt_x(r.x_floor), r.note)
    return t


def run_bench(console: "Console", quick: bool = False, output: str | None = None) -> int:
    """``emul bench``: run every row, print the table and the acceptance figures."""
    if output and not Path(output).resolve().parent.is_dir():   # refuse before a minute's work
        raise InputError("-o", None, f"no such directory for {output}")
    t_start = time.monotonic()

    def progress(text: str) -> None:
        # plain lines on stderr: the table on stdout stays clean for pipes and files
        print(f"[{time.monotonic() - t_start:6.1f}s] bench: {text}", file=sys.stderr, flush=True)

    settings = Settings.make(quick)
    bench = Bench(settings, progress)
    rows = bench.run()
    cpus = bench.cpus
    title = (f"emul bench — {platform.machine()}, {len(cpus)} usable CPU"
             f"{'s' if len(cpus) != 1 else ''}, {'--quick, ' if quick else ''}median of "
             f"{settings.batches} batches; × floor: ns per operation / the atomic add's")
    console.print(table(rows, title))
    crit = criteria(rows)
    for c in crit:
        mark = "met" if c["met"] else "NOT met"
        console.print(f"acceptance: {c['criterion']}: {c['value']} — {mark}", highlight=False)
    if output:
        doc = {"schema": "emul-bench", "version": 1,
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": quick,
               "machine": {"arch": platform.machine(), "cpus": cpus,
                           "python": platform.python_version(), "numba": numba.__version__},
               "settings": asdict(settings), "floor_ns": bench.floor_ns,
               "rows": [asdict(r) for r in rows], "criteria": crit,
               "elapsed_s": time.monotonic() - t_start}
        try:
            Path(output).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise InputError("-o", None, f"cannot write {output}: {exc.strerror}") from None
        console.print(f"rows: {output}", markup=False)
    return 0
