"""The controller: creates the arena, starts and pins the workers, runs the phases, audits.

One ``try/finally`` owns everything a run creates — the arena, the control socket and its
directory, the worker processes — and tears it all down on any exit: success, a failed audit, a
dead or stopped worker, Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
import zmq

from emul import PACKAGE_ROOT
from emul.kernel import audit
from emul.harness.arena import Arena
from emul.harness.control import ControlServer
from emul.errors import InputError, RunAborted
from emul.kernel import context as C
from emul.kernel import lockstat, layout as state
from emul.kernel.clock import measure_ticks_per_ns
from emul.kernel.mm import CTL_RECLAIM_STOP
from emul.kernel.zram import STAT_NAMES
from emul.kernel.zsmalloc import ZS_FLAG_NAMES
from emul.config.profiles import Profile
from emul.config.scenario import Scenario
from emul.strategies import gc_backlog_now, get_strategy, strategy_id

WORKER_START_TIMEOUT_S = 180.0   # first run compiles; later runs load the cache
PHASE_TIMEOUT_S = 600.0
# experiment -> the measured workers: (role, phase, which processes: a role or None for all)
ACTORS = {"unmap": [("killer", "unmap", None)], "swapin": [("swapin", "swapin", None)],
          "mixed": [("killer", "unmap", "victim"), ("swapin", "swapin", "app")]}
STOPPED_GRACE_S = 2.0
POLL_MS = 50
SAMPLE_MS = 2          # replays: the memory-returned timeline's sampling interval
TIMELINE_MS = 5        # other runs: the memory-held timeline's


@dataclass
class WorkerProc:
    name: str
    role: str
    index: int
    cpus: list[int]
    popen: subprocess.Popen | None = None
    stopped_since: float | None = None
    ran_on: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class ReplayPlan:
    """A storm to replay: each victim's kill time (ms after the start), in kill order; the
    victims are the scenario's first processes of role victim."""
    due_ms: tuple[float, ...]
    names: tuple[str, ...]


class PhaseSampler:
    """One repeat's timeline, sampled by the controller while the actors run and the GC drains:
    memory held by the measured processes (resident pages, and the pool's compressed pages) and
    the GC backlog. It reads a few counters of shared memory per sample and no more, so that it
    does not disturb the run it watches."""

    interval_ticks = 0

    def __init__(self, ctl: "Controller", resident_pages: int, interval_ms: float) -> None:
        self.ctl = ctl
        self.resident_pages = resident_pages
        self.interval_ms = interval_ms
        self.samples: list[tuple[int, int, int, int]] = []
        self.t0 = 0
        self.last = 0

    def start(self) -> None:
        from emul.kernel.clock import clock_now
        arena = self.ctl.arena
        self.freeing = [w.index for w in self.ctl.workers if w.role in ("killer",)]
        self.faulting = [w.index for w in self.ctl.workers if w.role == "swapin"]
        self.pool_start = int(arena["pool_stat"][0])
        self.interval_ticks = int(self.interval_ms * 1e6 * self.ctl.ticks_per_ns)
        self.t0 = clock_now()
        self.sample()

    def __call__(self) -> None:
        from emul.kernel.clock import clock_now
        if clock_now() - self.last >= self.interval_ticks:
            self.sample()

    def sample(self) -> None:
        from emul.kernel.clock import clock_now
        arena = self.ctl.arena
        ws = arena["wstat"]
        freed = sum(int(ws[i, C.W_RESIDENT_FREED]) for i in self.freeing)
        faulted = sum(int(ws[i, C.W_FAULTED]) for i in self.faulting)
        self.last = clock_now()
        self.samples.append((self.last, self.resident_pages - freed + faulted,
                             int(arena["pool_stat"][0]), gc_backlog_now(arena)[0]))

    def timeline(self) -> dict:
        tpn, page = self.ctl.ticks_per_ns, self.ctl.sc.page_size
        return {"t_ms": [(s[0] - self.t0) / tpn / 1e6 for s in self.samples],
                "resident_mb": [s[1] * page / 2**20 for s in self.samples],
                "compressed_mb": [s[2] * page / 2**20 for s in self.samples],
                "gc_backlog": [s[3] for s in self.samples]}


class ReplaySampler(PhaseSampler):
    """A replay's timeline: also the memory returned (resident pages the reapers freed, the
    pool's pages given back), and each kill's record. Its clock starts at the storm's start."""

    def start(self) -> None:
        from emul.kernel.replay import CTL_REPLAY_T0
        super().start()
        # the schedule starts a little after the gate opens, so every reaper is waiting on it
        self.t0 += int(200e3 * self.ctl.ticks_per_ns)
        self.ctl.arena["ctl"][CTL_REPLAY_T0] = self.t0

    def result(self) -> dict:
        from emul.kernel.replay import kill_record
        tpn, page = self.ctl.ticks_per_ns, self.ctl.sc.page_size
        kills = []
        for i, name in enumerate(self.ctl.replay.names):
            k = kill_record(self.ctl.arena["kills"], i)
            start = k["start"] - self.t0
            swap_done = k["swap_done"] if k["slots"] else k["anon_done"]
            kills.append({
                "name": name, "due_ms": self.ctl.replay.due_ms[i],
                "start_ms": start / tpn / 1e6, "reaper_cpu": k["reaper_cpu"],
                "anon_freed_ms": (k["anon_done"] - k["start"]) / tpn / 1e6,
                "swap_freed_ms": ((swap_done - k["start"]) / tpn / 1e6
                                  if swap_done and not k["slots_left"] else None),
                "slots": k["slots"], "slots_never_freed": k["slots_left"],
                "t_start": k["start"], "t_anon_done": k["anon_done"], "t_swap_done": swap_done})
        samples = [s for s in self.samples if s[0] >= self.t0] or self.samples[-1:]
        start_resident = self.resident_pages
        return {"kills": kills, "timeline": {
            "t_ms": [(s[0] - self.t0) / tpn / 1e6 for s in samples],
            "returned_mb": [((start_resident - s[1]) + (self.pool_start - s[2])) * page / 2**20
                            for s in samples],
            "resident_freed_mb": [(start_resident - s[1]) * page / 2**20 for s in samples],
            "pool_mb": [s[2] * page / 2**20 for s in samples],
            "gc_backlog": [s[3] for s in samples]}}


class Controller:
    def __init__(self, scenario: Scenario, profile: Profile, progress: Callable[[str], None],
                 log_path: str | None = None, replay: ReplayPlan | None = None) -> None:
        self.sc, self.profile, self.progress = scenario, profile, progress
        self.replay = replay
        self.chaos_raise: tuple[str, int] | None = None   # emul run --chaos: (kind, worker)
        self.trace = None          # a TraceRecorder when the run writes trace.json
        self.on_phase: Callable[[str], None] | None = None   # progress display
        self.trace_pid = 1
        self.dropped_messages = 0
        self.log_path = log_path
        self.workers: list[WorkerProc] = []
        self.arena: Arena | None = None
        self.server: ControlServer | None = None
        self.seq = 0
        self._phase = "start-up"

    @property
    def phase(self) -> str:
        """What the run is doing now: in error messages, and shown live on a terminal."""
        return self._phase

    @phase.setter
    def phase(self, text: str) -> None:
        self._phase = text
        if self.on_phase is not None:
            self.on_phase(text)

    # --- set-up ---------------------------------------------------------------------------------

    def cap_slots(self, variant) -> int:
        """The variant's cap in slots: as written, else the strategy's default (0: none)."""
        strat = get_strategy(variant.strategy)
        cap = variant.cap_slots if variant.cap_slots is not None else (
            strat.DEFAULT_CAP_SLOTS if variant.cap_bytes is None else 0)
        return int(cap or 0)

    def geometry(self, variant) -> state.Geometry:
        sc = self.sc
        cap_slots = self.cap_slots(variant)
        mean = max(32, int(round(sc.page_size / sc.data.compression_ratio)))
        return state.Geometry(
            page_size=sc.page_size, nr_slots=sc.nr_slots,
            total_pages=sum(p.vma // sc.page_size for p in sc.processes) + self.reclaim_pages(),
            n_workers=len(self.workers), strategy_id=strategy_id(variant.strategy),
            cap_slots=int(cap_slots or 0), cap_bytes=int(variant.cap_bytes or 0),
            queue_words=max(get_strategy(v.strategy).queue_words(sc.nr_slots, self.cap_slots(v))
                            for v in sc.variants),
            seed=sc.seed & (2**63 - 1), mean_comp_len=mean, spread_permille=int(sc.data.spread * 1000),
            same_ppm=int(sc.data.same_filled * 1e6), huge_ppm=int(sc.data.incompressible * 1e6),
            patterns=tuple(sc.data.patterns), debug=debug_bits(sc),
            zs_flags=sum(ZS_FLAG_NAMES[f] for f in variant.zsmalloc),
            alloc_start=self.alloc_start(),
            n_kills=len(self.replay.due_ms) if self.replay else 0)

    def alloc_start(self) -> int:
        """The swap allocator's first slot (-1: seed-chosen)."""
        sc = self.sc
        if sc.zram.alloc_from == "head":
            return 0
        if sc.zram.alloc_from == "tail":   # the swapped pages end exactly at the device's end
            return max(0, sc.nr_slots - sum(sc.swapped_pages_per_process))
        return -1

    def reclaim_pages(self) -> int:
        r = self.sc.workers.reclaim
        return 0 if r is None else r.vma // self.sc.page_size


    def plan_workers(self) -> None:
        w = self.sc.workers
        # the measured actors: the killer (unmap), the swap-in worker (swapin), or both (mixed);
        # the first one's time is the run's headline figure
        self.actors = ACTORS[self.sc.experiment.value]
        self.actor = self.actors[0][0]
        self.workers = [WorkerProc("swapout", "swapout", 0, [w.swapout.cpu])]
        self.actor_workers: dict[str, list[WorkerProc]] = {}
        for role, _, _ in self.actors:
            cpus = list(w.killers or [w.killer.cpu]) if role == "killer" else [getattr(w, role).cpu]
            for k, cpu in enumerate(cpus):
                proc = WorkerProc(role if k == 0 else f"{role}{k + 1}", role, len(self.workers), [cpu])
                self.workers.append(proc)
                self.actor_workers.setdefault(role, []).append(proc)
        if w.reclaim is not None:
            self.workers.append(WorkerProc("reclaim", "reclaim", len(self.workers),
                                           [w.reclaim.cpu]))
        if any(get_strategy(v.strategy).NEEDS_GC for v in self.sc.variants):
            for k in range(w.gc.count):
                cpu = w.gc.cpus[k % len(w.gc.cpus)]
                self.workers.append(WorkerProc(f"gc{k}", "gc", len(self.workers), [cpu]))

    def freeing_cpus(self) -> list[int]:
        """The CPUs of the workers whose frees reach zram_slot_free_notify (every one but the
        swap-out writer and the GC): where a per-CPU strategy's buffers fill."""
        return sorted({c for w in self.workers if w.role not in ("swapout", "gc") for c in w.cpus})

    def compile_kernels(self) -> None:
        """Compile every entry point here, once, before any worker starts (numba's disk cache is
        not safe against concurrent compilers); the workers then only load it."""
        from workers.base import compile_for
        from emul.kernel.mm import populate_vma
        from emul.kernel.workqueue import gc_worker_reset, gc_worker_stop
        z, mm = state.zram_view(self.arena), state.mm_view(self.arena)
        ctx, page = state.ctx_view(self.arena, 0), state.page_buffer(self.arena, 0)
        from emul.kernel.mm import reclaim_run, swap_in_range, swap_out_range, unmap_vma
        from emul.kernel.workqueue import gc_worker_run
        from emul.kernel.gate import gate_wait
        compile_for(swap_out_range, z, mm, ctx, 0, 0, 0, page)
        compile_for(unmap_vma, z, mm, ctx, 0, 0)
        import numpy as np
        from emul.kernel.replay import reap_run
        one = np.zeros(1, dtype=np.int64)
        compile_for(reap_run, z, mm, ctx, self.arena["ctl"], one, one, 0)
        compile_for(swap_in_range, z, mm, ctx, 0, 0, page)
        compile_for(reclaim_run, z, mm, ctx, self.arena["ctl"], 0, 0, page)
        compile_for(gc_worker_run, z, mm, ctx, 0)
        compile_for(populate_vma, mm, 0, 0)
        compile_for(gc_worker_stop, z)
        compile_for(gc_worker_reset, z)
        compile_for(gate_wait, self.arena["ctl"], 0, 0)
        audit.compile_audit(z)

    def start_workers(self) -> None:
        env = dict(os.environ)
        root = str(PACKAGE_ROOT)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        for w in self.workers:
            cmd = [sys.executable, "-m", f"workers.{w.role}", "--control", self.server.endpoint,
                   "--name", w.name, "--token", self.server.token]
            log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
            w.popen = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=log)
            if log is not subprocess.DEVNULL:
                log.close()
        pending = {w.name for w in self.workers}
        layout = self.arena.layout.to_json()
        by_name = {w.name: w for w in self.workers}
        ready: set[str] = set()
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while len(ready) < len(self.workers):
            name, msg = self.expect({"hello", "ready"}, deadline)
            w = by_name[name]
            if msg["type"] == "hello" and name in pending:
                pending.discard(name)
                self.send(name, {"type": "setup", "arena": self.arena.name, "layout": layout,
                                 "index": w.index, "cpus": w.cpus,
                                 "ticks_per_ns": self.ticks_per_ns})
            elif msg["type"] == "ready":
                ready.add(name)
        # every worker has the arena mapped: remove its name now, nothing can leak it later
        self.arena.unlink()

    # --- supervision ----------------------------------------------------------------------------

    def send(self, name: str, msg: dict) -> None:
        """Send to a worker; one that has vanished ends the run with the reason it died."""
        try:
            self.server.send(name, msg)
        except zmq.ZMQError:
            try:
                self.by_name[name].popen.wait(timeout=5)  # gone: let check_workers say how
            except subprocess.TimeoutExpired:
                pass
            self.check_workers()
            raise RunAborted(f"worker {name} is unreachable during {self.phase}") from None

    def check_workers(self) -> None:
        now = time.monotonic()
        for w in self.workers:
            rc = w.popen.poll()
            if rc is not None:
                self.raise_pending_error(w.name)   # it may have said why before it exited
                how = (f"was killed by {signal.Signals(-rc).name}" if rc < 0
                       else f"exited with status {rc}")
                raise RunAborted(f"worker {w.name} (pid {w.popen.pid}) {how} during {self.phase}")
            try:
                stopped = psutil.Process(w.popen.pid).status() == psutil.STATUS_STOPPED
            except psutil.NoSuchProcess:
                continue
            if stopped:
                w.stopped_since = w.stopped_since or now
                if now - w.stopped_since > STOPPED_GRACE_S:
                    raise RunAborted(f"worker {w.name} (pid {w.popen.pid}) stopped answering "
                                     f"(stopped for {now - w.stopped_since:.1f} s) during "
                                     f"{self.phase}")
            else:
                w.stopped_since = None

    def expect(self, types: set[str], deadline: float,
               on_poll: Callable[[], None] | None = None) -> tuple[str, dict]:
        known = {w.name for w in self.workers}
        while True:
            if on_poll is not None:
                on_poll()
            got = self.server.recv(SAMPLE_MS if on_poll else POLL_MS, known)
            if got is not None:
                name, msg = got
                if msg["type"] == "error":
                    self.worker_failed(name, msg)
                if msg["type"] in types:
                    return name, msg
            self.check_workers()
            if time.monotonic() > deadline:
                raise RunAborted(f"no answer from the workers within the time limit during "
                                 f"{self.phase}")

    def worker_failed(self, name: str, msg: dict) -> None:
        """A worker's error message: its traceback to the log, one line to the user."""
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(f"--- worker {name} ---\n{msg.get('traceback', '')}\n")
        raise RunAborted(f"worker {name} failed during {self.phase}: {msg.get('message')}")

    def raise_pending_error(self, name: str) -> None:
        """Read what is queued on the socket; raise the named worker's error if it sent one."""
        known = {w.name for w in self.workers}
        while True:
            got = self.server.recv(0, known) if self.server is not None else None
            if got is None:
                return
            if got[1]["type"] == "error":
                self.worker_failed(got[0], got[1])

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float,
                   on_poll: Callable[[], None] | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            self.check_workers()
            if time.monotonic() > deadline:
                raise RunAborted(f"{self.phase} did not finish within {timeout_s:.0f} s")
            if on_poll is not None:
                on_poll()
            time.sleep(0.001)

    # --- phases ---------------------------------------------------------------------------------

    def start_phase(self, assignments: dict[str, tuple[str, dict]],
                    before_go: Callable[[], None] | None = None) -> None:
        """Send each named worker its phase, wait until all reached the gate, open it."""
        self.seq += 1
        ctl = self.arena["ctl"]
        ctl[state.CTL_GATE_ARRIVE] = 0
        for name, (phase, args) in assignments.items():
            self.send(name, {"type": "phase", "phase": phase, "seq": self.seq, "args": args})
        self.wait_until(lambda: ctl[state.CTL_GATE_ARRIVE] >= len(assignments), PHASE_TIMEOUT_S)
        if before_go is not None:
            before_go()
        ctl[state.CTL_GATE_GO] = self.seq

    def wait_done(self, names: set[str], on_poll: Callable[[], None] | None = None
                  ) -> dict[str, dict]:
        out: dict[str, dict] = {}
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        while set(out) != names:
            name, msg = self.expect({"done"}, deadline, on_poll)
            if msg.get("seq") == self.seq and name in names:
                out[name] = msg
        for name, msg in out.items():
            self.by_name[name].ran_on.add(int(msg.get("cpu_now", -1)))
        return out

    def run_repeat(self, variant, repeat: int) -> dict:
        from emul.kernel.mm import populate_vma
        from emul.kernel.workqueue import gc_worker_reset, gc_worker_stop
        sc, arena = self.sc, self.arena
        geo = self.geometry(variant)
        for key in arena.views:
            arena[key][:] = 0
        state.init_state(arena, geo)
        self.apply_chaos()
        strat = get_strategy(variant.strategy)
        if hasattr(strat, "setup_queue"):
            strat.setup_queue(arena["gc_queue"], sc.nr_slots, geo.cap_slots, geo.cap_bytes,
                              cpus=self.freeing_cpus())
        z, mm = state.zram_view(arena), state.mm_view(arena)
        ranges, start = [], 0
        for p in sc.processes:
            n = p.vma // sc.page_size
            ranges.append((start, start + n, int(round(p.swapped * 1e6)), p.role))
            populate_vma(mm, start, start + n)
            start += n
        background = (start, start + self.reclaim_pages())
        populate_vma(mm, *background)
        costs = arena["costs"]
        costs[:] = 0  # set-up is not measured: swap-out runs at machinery speed
        from emul.kernel.clock import clock_now
        marks = {"swap-out": clock_now()}
        self.phase = f"{variant.name} #{repeat + 1}: swap-out"
        self.start_phase({"swapout": ("swapout", {"ranges": [r[:3] for r in ranges]})})
        self.wait_done({"swapout"})

        row = self.profile.ticks(self.ticks_per_ns, sc.page_size)
        costs[:] = row
        wstat = arena["wstat"]
        wstat[:] = 0
        lockstat.reset_rows(arena["lockstat"])
        for w in self.workers:
            wstat[w.index, C.W_INDEX] = w.index
            wstat[w.index, C.W_LOCKSTAT] = int(sc.lockstat)
            if w.role == "gc":
                wstat[w.index, C.W_GC_POLL_NS] = int(sc.workers.gc.idle_poll_ns
                                                     * self.ticks_per_ns)
        stored_before = arena["zram_stats"].copy()
        pool_pages_before = int(arena["pool_stat"][0])
        gcs = [w for w in self.workers if w.role == "gc"] if get_strategy(
            variant.strategy).NEEDS_GC else []
        gc_worker_reset(z)
        self.phase = f"{variant.name} #{repeat + 1}: {sc.experiment.value}"
        plan = {}
        for role, phase, which in self.actors:
            mine = [(s, e) for s, e, _, r in ranges if which is None or r == which]
            procs = self.actor_workers[role]
            for k, w in enumerate(procs):   # processes dealt out to the role's workers in turn
                plan[w.name] = (phase, {"ranges": mine[k::len(procs)]})
        # resident pages of the measured processes, as the swap-out left them
        resident = int((arena["pte"][:background[0]] > 0).sum())
        sampler: PhaseSampler = PhaseSampler(self, resident, TIMELINE_MS)
        before_go = sampler.start
        if self.replay is not None:
            # every reaper takes the next kill from the shared schedule, in kill order
            victims = [(s, e) for s, e, _, r in ranges if r == "victim"][:len(self.replay.due_ms)]
            self.replay_prepare(victims)
            for w in self.actor_workers["killer"]:
                plan[w.name] = ("reap", {"ranges": victims,
                                         "ticks_per_us": max(1, int(self.ticks_per_ns * 1000))})
            sampler = ReplaySampler(self, resident, SAMPLE_MS)
            before_go = sampler.start
        plan.update({w.name: ("serve", {}) for w in gcs})
        if self.sc.workers.reclaim is not None:
            plan["reclaim"] = ("reclaim", {"start": background[0], "end": background[1]})
        marks[sc.experiment.value] = clock_now()
        self.start_phase(plan, before_go)
        done = self.wait_done({w.name for ws in self.actor_workers.values() for w in ws},
                              sampler)
        if self.sc.workers.reclaim is not None:
            # reclaim keeps freeing slots: stop it before waiting for the GC to drain
            arena["ctl"][CTL_RECLAIM_STOP] = 1
            done.update(self.wait_done({"reclaim"}))
        peak_after = gc_backlog_now(arena)[0]
        marks["GC drain"] = clock_now()
        self.phase = f"{variant.name} #{repeat + 1}: GC drain"
        self.wait_until(self.drained_or_stuck(), PHASE_TIMEOUT_S, sampler)
        sampler.sample()
        gc_worker_stop(z)
        done.update(self.wait_done({w.name for w in gcs}) if gcs else {})
        marks["audit"] = clock_now()
        self.phase = f"{variant.name} #{repeat + 1}: audit"
        report = audit.audit(arena, expect_empty=True)
        marks["end"] = clock_now()
        row = self.collect(variant, repeat, done, gcs, stored_before,
                           pool_pages_before, peak_after, report)
        row["timeline"] = sampler.timeline()
        # per CPU (percpu-zsfree) a worker sees only its own buffer's backlog; the samples sum
        # every buffer
        row["peak_backlog"] = max([row["peak_backlog"], *row["timeline"]["gc_backlog"]])
        if self.replay is not None:
            row["replay"] = sampler.result()
        self.record_trace(variant, repeat, marks, sampler, row)
        return row

    def apply_chaos(self) -> None:
        """Re-arm an injected raise in the (freshly reset) arena."""
        if self.chaos_raise is None or self.arena is None:
            return
        from emul.kernel.zram import F_CHAOS
        kind, index = self.chaos_raise
        if kind == "raise-compiled":
            self.arena["faults"][F_CHAOS] = index + 1
        else:
            self.arena["ctl"][state.CTL_CHAOS_PY] = index + 1

    # --- trace.json ---

    def record_trace(self, variant, repeat: int, marks: dict[str, int], sampler: PhaseSampler,
                     row: dict) -> None:
        """This repeat's phases, worker spans, GC passes, kills and counters, for trace.json."""
        rec = self.trace
        if rec is None:
            return
        pid = self.trace_pid
        rec.ticks_per_ns = self.ticks_per_ns
        ws = self.arena["wstat"]
        names = list(marks)
        for a, b in zip(names, names[1:]):
            if a != "end":
                rec.span(pid, 0, f"{a}: {variant.name} #{repeat + 1}", marks[a], marks[b],
                         variant=variant.name, repeat=repeat + 1)
        for w in self.workers:
            if w.role in ("swapout", "gc"):
                continue
            rec.span(pid, w.index + 1, f"{w.role}: {variant.name} #{repeat + 1}",
                     int(ws[w.index, C.W_T_START]), int(ws[w.index, C.W_T_END]),
                     pages=int(ws[w.index, C.W_PTES]))
        for w in self.workers:
            if w.role != "gc":
                continue
            n = int(ws[w.index, C.W_NEVENTS])
            ev = ws[w.index, C.W_EVENTS:C.W_EVENTS + n * C.EVENT_WORDS].reshape(n, C.EVENT_WORDS)
            for t0, t1, freed in ev:
                rec.span(pid, w.index + 1, "GC pass", int(t0), int(t1), freed=int(freed))
        if self.replay is not None:
            reapers = {w.index: w for w in self.actor_workers["killer"]}
            for k in row["replay"]["kills"]:
                tid = next((i + 1 for i, w in reapers.items() if k["reaper_cpu"] in w.cpus),
                           min(reapers) + 1)
                rec.span(pid, tid, f"kill {k['name']}", k["t_start"], k["t_anon_done"],
                         swap_freed_ms=k["swap_freed_ms"])
        page = self.sc.page_size
        for t, resident, pool, backlog in sampler.samples:
            rec.counter(pid, "memory held (MB)", t, resident=resident * page / 2**20,
                        compressed=pool * page / 2**20)
            rec.counter(pid, "GC backlog (slots)", t, slots=backlog)

    def name_trace_tracks(self) -> None:
        if self.trace is None:
            return
        label = self.sc.variants[0].group or self.sc.name
        self.trace.name_process(self.trace_pid, f"emul {label}")
        self.trace.name_track(self.trace_pid, 0, "controller (phases)")
        for w in self.workers:
            cpus = ",".join(map(str, w.cpus))
            self.trace.name_track(self.trace_pid, w.index + 1, f"{w.name} (CPU {cpus})")

    # --- replays --------------------------------------------------------------------------------

    def replay_prepare(self, victims: list[tuple[int, int]]) -> None:
        """Tag every slot a victim's swapped pages hold with its kill, and load the schedule."""
        from emul.kernel.replay import CTL_REPLAY_NEXT, K_DUE, K_SLOTS
        from emul.kernel.zram import K_SLOTS_LEFT, KILL_WORDS
        arena = self.arena
        owner, kills, pte = arena["owner"], arena["kills"], arena["pte"]
        kills[:] = 0
        for i, (start, end) in enumerate(victims):
            ptes = pte[start:end]
            slots = -ptes[ptes < 0] - 1
            owner[slots] = i
            k = i * KILL_WORDS
            kills[k + K_SLOTS] = kills[k + K_SLOTS_LEFT] = slots.size
            kills[k + K_DUE] = int(self.replay.due_ms[i] * 1e6 * self.ticks_per_ns)
        arena["ctl"][CTL_REPLAY_NEXT] = 0

    def drained_or_stuck(self) -> Callable[[], bool]:
        """The GC is done: nothing queued, or it sleeps and its backlog has not moved for a second
        (a broken strategy or counter; the audit then says what is wrong)."""
        from emul.strategies.common import GC_IDLE, GC_PENDING
        arena, ctl = self.arena, self.arena["gc_ctl"]
        seen = {"value": -1, "since": time.monotonic()}

        def done() -> bool:
            backlog = gc_backlog_now(arena)[0]
            if backlog == 0:
                return True
            now = time.monotonic()
            if backlog != seen["value"] or ctl[GC_IDLE] == 0 or ctl[GC_PENDING] != 0:
                seen.update(value=backlog, since=now)
            return now - seen["since"] > 1.0
        return done

    def collect(self, variant, repeat, msgs: dict[str, dict], gcs, stats_before, pool_before,
                backlog_at_end, report) -> dict:
        """One repeat's row; msgs holds every worker's phase-done message by name."""
        arena, tpn = self.arena, self.ticks_per_ns
        ws = arena["wstat"]
        # the headline: the first actor role's workers, from the first start to the last end
        # (a killer left without a victim never started: it does not count)
        heads = [ws[w.index] for w in self.actor_workers[self.actors[0][0]]
                 if ws[w.index, C.W_T_START] != 0] or [ws[self.actor_workers[self.actors[0][0]][0].index]]
        t_end = max(int(k[C.W_T_END]) for k in heads)
        unmap_ticks = t_end - min(int(k[C.W_T_START]) for k in heads)
        actor_ns = {w.name: float(ws[w.index, C.W_T_END] - ws[w.index, C.W_T_START]) / tpn
                    for w in self.workers if w.role in [r for r, _, _ in self.actors[1:]]}
        ptes = sum(int(k[C.W_PTES]) for k in heads)
        gc_idle = max((int(ws[w.index, C.W_GC_IDLE_AT]) for w in gcs), default=0)
        drain_ticks = max(0, gc_idle - t_end) if gcs else 0
        peak = max([int(ws[w.index, C.W_PEAK_BACKLOG]) for w in self.workers])

        def wsum(field_):
            return int(sum(int(ws[w.index, field_]) for w in self.workers))

        workers = {}
        for w in self.workers:
            if w.name not in msgs:
                continue
            m = msgs[w.name]
            mask = int(ws[w.index, C.W_CPUMASK])
            workers[w.name] = {
                "role": w.role, "cpus_allowed": m.get("cpus_allowed", w.cpus),
                "cpus_seen": [c for c in range(63) if mask >> c & 1],
                **{key: m["usage"].get(key) for key in ("cpu_s", "wall_s", "voluntary",
                                                        "involuntary", "migrations")}}
        return {
            "variant": variant.name, "strategy": variant.strategy, "repeat": repeat,
            "group": variant.group, "profile": self.profile.name,
            "experiment": self.sc.experiment.value,
            "time_ns": unmap_ticks / tpn,
            "other_actors_ns": actor_ns,
            "ptes": ptes,
            "ns_per_page": unmap_ticks / tpn / ptes if ptes else 0.0,
            "lazy": wsum(C.W_LAZY), "in_place": wsum(C.W_IN_PLACE),
            "fallback": wsum(C.W_FALLBACK), "miss_free": wsum(C.W_MISS_FREE),
            "gc_freed": wsum(C.W_GC_FREED), "gc_passes": wsum(C.W_GC_PASSES),
            "gc_skipped": wsum(C.W_GC_SKIPPED), "gc_sleeps": wsum(C.W_GC_SLEEPS),
            "gc_wakeups": wsum(C.W_WAKEUPS), "gc_wake_polled": wsum(C.W_WAKE_POLLED),
            "reused_queued": wsum(C.W_REUSED_QUEUED),
            "reclaimed": wsum(C.W_RECLAIMED), "refaulted": wsum(C.W_REFAULTED),
            "gc_busy_ns": wsum(C.W_GC_BUSY) / tpn,
            "gc_drain_ns": drain_ticks / tpn,
            "backlog_at_unmap_end": backlog_at_end,
            "peak_backlog": peak,
            "peak_backlog_bytes": max(int(ws[w.index, C.W_PEAK_BYTES]) for w in self.workers),
            "batch_saved": wsum(C.W_BATCH_SAVED),
            "pool_pages_before": pool_before,
            "pool_pages_after": int(arena["pool_stat"][0]),
            "zram_stats": {n: int(v) for n, v in zip(STAT_NAMES, arena["zram_stats"])},
            "zram_stats_before": {n: int(v) for n, v in zip(STAT_NAMES, stats_before)},
            "lock_stat": lockstat.merge(arena["lockstat"], 1.0 / tpn),
            "workers": workers,
            "audit": report,
        }

    # --- the whole run --------------------------------------------------------------------------

    def setup(self) -> None:
        """Arena, compiled kernels, control socket and pinned workers, ready for repeats."""
        self.plan_workers()
        self.by_name = {w.name: w for w in self.workers}
        self.ticks_per_ns = measure_ticks_per_ns()
        geo = self.geometry(self.sc.variants[0])
        self.arena = Arena.create(state.build_layout(geo))
        state.init_state(self.arena, geo)
        self.progress("compiling the kernel paths (cached after the first run)")
        self.compile_kernels()
        self.server = ControlServer()
        self.progress(f"starting {len(self.workers)} workers")
        self.phase = "worker start-up"
        self.start_workers()
        self.name_trace_tracks()

    def run(self, on_repeat: Callable[[dict], None] | None = None) -> list[dict]:
        """Every repeat of every variant of this one scenario (see run_groups)."""
        return run_groups([self], on_repeat)

    def shutdown(self) -> None:
        """Stop workers (politely, then SIGKILL), close the socket, drop the arena. Idempotent."""
        if self.server is not None:
            for w in self.workers:
                if w.popen is not None and w.popen.poll() is None:
                    try:
                        self.server.send(w.name, {"type": "exit"})
                    except Exception:
                        pass
        if self.arena is not None:
            from emul.kernel.workqueue import gc_worker_stop
            self.arena["ctl"][CTL_RECLAIM_STOP] = 1
            try:
                gc_worker_stop(state.zram_view(self.arena))
            except Exception:
                pass
        deadline = time.monotonic() + 2.0
        for w in self.workers:
            if w.popen is None:
                continue
            try:
                w.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.popen.kill()
                w.popen.wait()
        try:
            if self.server is not None:
                self.dropped_messages = self.server.dropped
                self.server.close()
                self.server = None
        finally:
            if self.arena is not None:
                self.arena.unlink()
                self.arena.close()
                self.arena = None


def run_groups(groups: list[Controller], on_repeat: Callable[[dict], None] | None = None,
               on_ready: Callable[[], None] | None = None,
               duration_s: float | None = None) -> list[dict]:
    """Run the repeats of several controllers' variants, interleaved so that drift on a shared
    machine hits every variant alike: each repeat visits every group and variant, and every
    other repeat in reverse order. Every group's workers stay up for the whole run (an idle
    worker waits on its socket and uses no CPU). Ctrl-C or SIGTERM stops every group's workers
    first, then removes the arenas. With duration_s, no new cycle of every variant starts once
    that long has passed since the workers were up."""
    rows: list[dict] = []
    check_resources(groups)
    previous = {sig: signal.signal(sig, _raise_interrupt)
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for g, ctl in enumerate(groups):
            if len(groups) > 1:
                ctl.progress(f"group {g + 1}/{len(groups)}: "
                             f"{ctl.sc.variants[0].group or ctl.sc.name}")
            ctl.setup()
        if on_ready is not None:
            on_ready()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        order = [(ctl, v) for ctl in groups for v in ctl.sc.variants]
        repeats = max(ctl.sc.repeats for ctl in groups)
        for r in range(repeats):
            seq = order if r % 2 == 0 else list(reversed(order))
            if deadline is not None and time.monotonic() > deadline:
                break    # emul soak: its time is up (always after a whole cycle)
            for ctl, v in seq:
                if r >= ctl.sc.repeats:
                    continue
                ctl.progress(f"repeat {r + 1}/{repeats}: {v.name}")
                row = ctl.run_repeat(v, r)
                rows.append(row)
                if on_repeat:
                    on_repeat(row)
        return rows
    finally:
        # a second Ctrl-C or SIGTERM must not cut the clean-up short: hold them until it ends
        signal.pthread_sigmask(signal.SIG_BLOCK, set(previous))
        try:
            for ctl in groups:
                ctl.shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, set(previous))


def check_resources(groups: list[Controller]) -> None:
    """Refuse, before anything is created, a run whose arenas do not fit this machine."""
    import shutil
    need = 0
    for ctl in groups:
        ctl.plan_workers()
        need += state.build_layout(ctl.geometry(ctl.sc.variants[0])).size
    shm_free = shutil.disk_usage("/dev/shm").free
    avail = shm_free
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if need > min(shm_free, avail):
        raise InputError(groups[0].sc.source, "zram.disksize",
                         f"expected a scenario whose shared memory fits this machine: it needs "
                         f"{need / 2**20:,.0f} MiB, /dev/shm has {shm_free / 2**20:,.0f} MiB free "
                         f"and {avail / 2**20:,.0f} MiB of memory is available")


def debug_bits(sc: Scenario) -> int:
    """The scenario's debug switches as ZP_DEBUG bits; an unknown name is an input error."""
    from emul.kernel.zram import DEBUG_SWITCHES
    bits = 0
    for key, on in sc.debug.items():
        if key not in DEBUG_SWITCHES:
            raise InputError(sc.source, f"debug.{key}", "unknown debug switch "
                             f"(expected one of: {', '.join(DEBUG_SWITCHES)})")
        bits |= DEBUG_SWITCHES[key] if on else 0
    return bits


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
