"""The controller: one Group per structural combination of a scenario, run together.

A :class:`Group` owns what one combination creates — the arena, the compiled code, the worker
processes (through a Supervisor) — and runs its variants' repeats (emul/harness/repeat.py).
``run_groups`` sets up every group, interleaves the repeats of all of them, and, in one
``try/finally``, tears everything down on any exit: success, a failed audit, a dead or stopped
worker, Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import signal
import time
from collections.abc import Callable

from emul.config.profiles import Profile
from emul.config.scenario import Scenario, VariantSpec
from emul.errors import RunAborted
from emul.harness import plan as planning
from emul.harness.arena import Arena
from emul.harness.entrypoints import Views, compile_run
from emul.harness.plan import ReplayPlan
from emul.harness.record import RepeatRecord
from emul.harness.repeat import run_repeat
from emul.harness.supervisor import Supervisor, WorkerProc
from emul.harness.trace import TraceRecorder, name_tracks
from emul.kernel import layout
from emul.kernel.clock import measure_ticks_per_ns
from emul.kernel.mm import CTL_RECLAIM_STOP
from emul.kernel.gc_worker import gc_worker_stop
from emul.kernel.workqueue import GC_IDLE, GC_PENDING
from emul.kernel.zram import F_CHAOS
from emul.strategies import gc_backlog_now, get_strategy

WORKER_START_TIMEOUT_S = 180.0   # the first run compiles; later runs load the cache
STUCK_AFTER_S = 1.0              # a GC whose backlog has not moved this long is stuck


class Group:
    """The arena, workers and repeats of one structural combination of a scenario."""

    def __init__(self, scenario: Scenario, profile: Profile, progress: Callable[[str], None],
                 log_path: str | None = None, replay: ReplayPlan | None = None,
                 trace: TraceRecorder | None = None, trace_pid: int = 1,
                 on_phase: Callable[[str], None] | None = None) -> None:
        self.sc, self.profile, self.progress = scenario, profile, progress
        self.replay, self.trace, self.trace_pid = replay, trace, trace_pid
        self.plan = planning.plan_workers(scenario)
        self.sup = Supervisor(self.plan.workers, log_path, on_phase)
        self.reclaim_pages = planning.reclaim_pages(scenario)
        self.chaos_raise: tuple[str, int] | None = None   # emul run --chaos: (kind, worker)
        self.ticks_per_ns = 0.0
        self._arena: Arena | None = None
        self._views: Views | None = None

    @property
    def arena(self) -> Arena:
        """The group's arena (from setup until shutdown)."""
        if self._arena is None:
            raise RunAborted(f"{self.sc.name}: the arena is gone during {self.phase}")
        return self._arena

    @property
    def views(self) -> Views:
        if self._views is None:
            raise RunAborted(f"{self.sc.name}: the arena is gone during {self.phase}")
        return self._views

    @property
    def workers(self) -> list[WorkerProc]:
        return self.plan.workers

    @property
    def phase(self) -> str:
        return self.sup.phase

    @property
    def dropped_messages(self) -> int:
        return self.sup.dropped_messages

    def geometry(self, variant: VariantSpec) -> layout.Geometry:
        return planning.geometry(self.sc, variant, len(self.plan.workers), self.replay)

    def gcs(self, variant: VariantSpec) -> list[WorkerProc]:
        """The GC workers that serve this variant (none for a strategy without a GC)."""
        return self.plan.of_role("gc") if get_strategy(variant.strategy).NEEDS_GC else []

    def backlog(self) -> int:
        return gc_backlog_now(self.arena)[0]

    def setup(self) -> None:
        """Arena, compiled kernels, control socket and pinned workers, ready for repeats."""
        self.ticks_per_ns = measure_ticks_per_ns()
        geo = self.geometry(self.sc.variants[0])
        self._arena = Arena.create(layout.build_layout(geo))
        layout.init_state(self._arena, geo)
        self._views = Views.of(self._arena, 0)
        self.progress("compiling the kernel paths (cached after the first run)")
        compile_run(self.views)
        self.progress(f"starting {len(self.plan.workers)} workers")
        self.sup.start(self.arena, self.ticks_per_ns, WORKER_START_TIMEOUT_S)
        if self.trace is not None:
            name_tracks(self.trace, self.trace_pid, self.sc.variants[0].group or self.sc.name,
                        self.plan.workers)

    def run_repeat(self, variant: VariantSpec, repeat: int) -> RepeatRecord:
        return run_repeat(self, variant, repeat)

    def apply_chaos(self) -> None:
        """Re-arm an injected raise in the (freshly reset) arena."""
        if self.chaos_raise is None or self._arena is None:
            return
        kind, index = self.chaos_raise
        if kind == "raise-compiled":
            self.arena["faults"][F_CHAOS] = index + 1
        else:
            self.arena["ctl"][layout.CTL_CHAOS_PY] = index + 1

    def drained_or_stuck(self) -> Callable[[], bool]:
        """The GC is done: nothing queued, or it sleeps and its backlog has not moved for
        STUCK_AFTER_S (a broken strategy or counter; the audit then says what is wrong)."""
        ctl = self.arena["gc_ctl"]
        seen = {"value": -1, "since": time.monotonic()}

        def done() -> bool:
            backlog = self.backlog()
            if backlog == 0:
                return True
            now = time.monotonic()
            if backlog != seen["value"] or ctl[GC_IDLE] == 0 or ctl[GC_PENDING] != 0:
                seen.update(value=backlog, since=now)
            return now - seen["since"] > STUCK_AFTER_S
        return done

    def shutdown(self) -> None:
        """Stop the workers (politely, then SIGKILL), close the socket, drop the arena."""
        arena = self._arena

        def wake() -> None:     # break the compiled loops of reclaim and the GC
            if arena is not None:
                arena["ctl"][CTL_RECLAIM_STOP] = 1
                gc_worker_stop(layout.zram_view(arena))
        try:
            self.sup.shutdown(wake)
        finally:
            if arena is not None:
                self._views = self._arena = None
                arena.unlink()
                arena.close()


def run_groups(groups: list[Group], on_repeat: Callable[[RepeatRecord], None] | None = None,
               on_ready: Callable[[], None] | None = None,
               duration_s: float | None = None) -> list[RepeatRecord]:
    """Run the repeats of several groups' variants, interleaved so that drift on a shared
    machine hits every variant alike: each repeat visits every group and variant, and every
    other repeat in reverse order. Every group's workers stay up for the whole run (an idle
    worker waits on its socket and uses no CPU). Ctrl-C or SIGTERM stops every group's workers
    first, then removes the arenas. With duration_s, no new cycle of every variant starts once
    that long has passed since the workers were up."""
    planning.check_resources([(g.sc, len(g.plan.workers), g.replay) for g in groups])
    previous = {sig: signal.signal(sig, _raise_interrupt)
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for k, g in enumerate(groups):
            if len(groups) > 1:
                g.progress(f"group {k + 1}/{len(groups)}: {g.sc.variants[0].group or g.sc.name}")
            g.setup()
        if on_ready is not None:
            on_ready()
        return _interleaved(groups, on_repeat, duration_s)
    finally:
        # a second Ctrl-C or SIGTERM must not cut the clean-up short: hold them until it ends
        signal.pthread_sigmask(signal.SIG_BLOCK, set(previous))
        try:
            for g in groups:
                g.shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, set(previous))


def _interleaved(groups: list[Group], on_repeat: Callable[[RepeatRecord], None] | None,
                 duration_s: float | None) -> list[RepeatRecord]:
    records: list[RepeatRecord] = []
    deadline = None if duration_s is None else time.monotonic() + duration_s
    order = [(g, v) for g in groups for v in g.sc.variants]
    repeats = max(g.sc.repeats for g in groups)
    for r in range(repeats):
        if deadline is not None and time.monotonic() > deadline:
            break    # emul soak: its time is up (always after a whole cycle)
        for g, v in (order if r % 2 == 0 else reversed(order)):
            if r >= g.sc.repeats:
                continue
            g.progress(f"repeat {r + 1}/{repeats}: {v.name}")
            rec = g.run_repeat(v, r)
            records.append(rec)
            if on_repeat:
                on_repeat(rec)
    return records


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
