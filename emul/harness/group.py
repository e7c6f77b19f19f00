"""A group's state, and what one repeat carries from step to step.

emul/harness/controller.py's Group builds on GroupState (set-up, shutdown); the repeat's steps
(emul/harness/repeat.py) and its collection (emul/harness/collect.py) read only what is here.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from emul.config.costs import NR_COSTS
from emul.config.profiles import Profile
from emul.config.scenario import Scenario, VariantSpec
from emul.errors import RunAborted
from emul.harness import plan as planning
from emul.harness.arena import Arena
from emul.harness.disturbance import REDO_LIMIT
from emul.harness.entrypoints import Views
from emul.harness.machinery import Machinery
from emul.harness.plan import ReplayPlan
from emul.harness.sampler import PhaseSampler
from emul.harness.supervisor import PhaseDone, Supervisor, WorkerProc
from emul.harness.trace import TraceRecorder
from emul.kernel import context as C
from emul.kernel import layout
from emul.kernel.layout import Geometry
from emul.kernel.workqueue import GC_IDLE, GC_PENDING
from emul.kernel.zram import F_CHAOS
from emul.strategies import gc_backlog_now, get_strategy

STUCK_AFTER_S = 1.0              # a GC whose backlog has not moved this long is stuck


class GroupState:
    """One structural combination of a scenario: its plan, its workers' supervisor, its arena
    once set up, and what a repeat's steps read of them."""

    def __init__(self, scenario: Scenario, profile: Profile, progress: Callable[[str], None],
                 log_path: str | None = None, replay: ReplayPlan | None = None,
                 trace: TraceRecorder | None = None, trace_pid: int = 1,
                 on_phase: Callable[[str], None] | None = None, boost: bool = True,
                 warmup: int = 1, redo_limit: int = REDO_LIMIT) -> None:
        self.sc, self.profile, self.progress = scenario, profile, progress
        self.replay, self.trace, self.trace_pid = replay, trace, trace_pid
        self.plan = planning.plan_workers(scenario)
        # boost: the workers at nice -20 where allowed (emul/harness/priority.py)
        self.sup = Supervisor(self.plan.workers, log_path, on_phase, boost=boost)
        self.warmup = warmup              # unmeasured repeats per variant before the first
        self.redo_limit = redo_limit      # a disturbed repeat is run again up to this often
        self.host_state: dict | None = None   # the machine over the run (hoststate.py)
        self.reclaim_pages = planning.reclaim_pages(scenario)
        self.chaos_raise: tuple[str, int] | None = None   # emul run --chaos: (kind, worker)
        # the host's clock, and the emulated one: every target and every reported time is in
        # emulated time, which runs ``dilate`` times slower than the host's (--dilate)
        self.host_ticks_per_ns = 0.0
        self.ticks_per_ns = 0.0
        self.machinery: dict[str, Machinery] = {}      # variant name -> the probe's figures
        self.fresh_machinery = False     # probe again even if the cache has this group's figures
        self.core_classes = planning.core_classes(scenario, profile, self.plan)
        self._arena: Arena | None = None
        self._views: Views | None = None

    # the arena and its views exist from set-up until shutdown; a step that runs outside that
    # (a Ctrl-C mid-set-up) gets a RunAborted, as Supervisor.control does for the socket
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

    def cost_rows(self, variant: VariantSpec) -> np.ndarray:
        """Every worker's ctx.costs row for a measured phase: the targets of its emulated
        core class (dilated), then emul's machinery for its role on this host."""
        rows = np.zeros((len(self.plan.workers), C.COSTS_WORDS), dtype=np.int64)
        m = self.machinery.get(variant.name)
        for w in self.plan.workers:
            if w.role == "swapout":
                continue        # it is idle while anything is measured
            core = self.core_classes[variant.name][w.name]
            rows[w.index, :NR_COSTS] = self.profile.ticks(self.ticks_per_ns, self.sc.page_size,
                                                         core, variant.costs)
            if m is not None:
                rows[w.index, C.MACHINERY:C.MACHINERY + NR_COSTS] = m.role(w.role).row()
                rows[w.index, C.DELAY_OVERHEAD] = m.wait_overhead(w.role)
        return rows

    def gcs(self, variant: VariantSpec) -> list[WorkerProc]:
        """The GC workers that serve this variant (none for a strategy without a GC)."""
        return self.plan.of_role("gc") if get_strategy(variant.strategy).NEEDS_GC else []

    def backlog(self) -> int:
        return gc_backlog_now(self.arena)[0]

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


@dataclass
class Repeat:
    """What one repeat carries from step to step."""

    variant: VariantSpec
    repeat: int                                  # 0-based; -1: the warm-up
    geo: Geometry
    ranges: list[tuple[int, int, int, str]]      # per process: pte start, end, swapped ppm, role
    background: tuple[int, int]                  # the reclaim worker's pages
    marks: dict[str, int] = field(default_factory=dict)
    # set by the measured phase's arming
    stats_before: np.ndarray = field(init=False)
    pool_before: int = 0
    sampler: PhaseSampler = field(init=False)
    backlog_at_end: int = 0
    steal_before: dict[int, tuple[int, int]] = field(default_factory=dict)  # hoststate.cpu_ticks
    done: dict[str, PhaseDone] = field(default_factory=dict)
    audit: dict = field(default_factory=dict)

    @property
    def title(self) -> str:
        which = "warm-up" if self.repeat < 0 else f"#{self.repeat + 1}"
        return f"{self.variant.name} {which}"
