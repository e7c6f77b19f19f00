"""The controller: one Group per structural combination of a scenario, run together.

A :class:`Group` owns what one combination creates — the arena, the compiled code, the worker
processes (through a Supervisor) — and runs its variants' repeats (emul/harness/repeat.py).
``run_groups`` sets up every group, interleaves the repeats of all of them, and, in one
``try/finally``, tears everything down on any exit: success, a failed audit, a dead or stopped
worker, Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable

from emul.config.scenario import VariantSpec
from emul.harness import plan as planning
from emul.harness.arena import Arena
from emul.harness.disturbance import Disturbance, disturbances, least_disturbed
from emul.harness.entrypoints import Views, compile_run
from emul.harness.signals import INTERRUPTS
from emul.harness.hoststate import HostState
from emul.harness.group import GroupState
from emul.harness.probe import probe_variants
from emul.harness.record import RepeatRecord
from emul.harness.repeat import run_repeat
from emul.harness.trace import TraceRecorder, name_tracks
from emul.kernel import layout
from emul.kernel.clock import measure_ticks_per_ns
from emul.kernel.gc_worker import gc_worker_stop
from emul.kernel.mm import CTL_RECLAIM_STOP

WORKER_START_TIMEOUT_S = 180.0   # the first run compiles; later runs load the cache


class Group(GroupState):
    """The arena, workers and repeats of one structural combination of a scenario."""

    def setup(self) -> None:
        """Arena, compiled kernels, control socket and pinned workers, ready for repeats."""
        self.host_ticks_per_ns = measure_ticks_per_ns()
        self.ticks_per_ns = self.host_ticks_per_ns * self.sc.dilate
        geo = self.geometry(self.sc.variants[0])
        shape = layout.build_layout(geo)
        self.progress("compiling the kernel paths (cached after the first run)")
        with INTERRUPTS.interrupting():     # numba may drop or twist a signal mid-compile
            compiled = compile_scratch(shape)   # before the arena exists: a kill leaves nothing
        with INTERRUPTS.held():        # created and recorded for shutdown as one step
            self._arena = Arena.create(shape)
        layout.init_state(self._arena, geo)
        self._views = Views.of(self._arena, 0)
        if not compiled:
            with INTERRUPTS.interrupting():
                compile_run(self.views)
        self.progress(f"starting {len(self.plan.workers)} workers")
        self.sup.start(self.arena, self.ticks_per_ns, WORKER_START_TIMEOUT_S)
        self.machinery.update(probe_variants(self, self.sc.variants))
        if self.trace is not None:
            name_tracks(self.trace, self.trace_pid, self.sc.variants[0].group or self.sc.name,
                        self.plan.workers)

    def run_repeat(self, variant: VariantSpec, repeat: int) -> RepeatRecord:
        """One repeat, run again while another task disturbed it (emul/harness/disturbance.py),
        up to redo_limit more times; the record says how many tries it took."""
        tries: list[tuple[RepeatRecord, list[Disturbance]]] = []
        traces: dict[int, TraceRecorder] = {}     # id(record) -> its try's trace events
        while True:
            sub = TraceRecorder() if self.trace is not None else None
            rec = run_repeat(self, variant, repeat, sub)
            if sub is not None:
                traces[id(rec)] = sub
            found = disturbances(rec)
            tries.append((rec, found))
            if not found or len(tries) > self.redo_limit or not rec.audit_ok:
                break
            self.progress(f"  {variant.name}: disturbed ({'; '.join(d.describe() for d in found)})"
                          f": again, try {len(tries) + 1} of {self.redo_limit + 1}")
        causes = [" and ".join(sorted({d.cause for d in f})) for _, f in tries if f]
        rec, found = tries[-1] if not found else least_disturbed(tries)
        rec.tries, rec.disturbed = len(tries), [d.to_json() for d in found]
        rec.redone_for = causes[:len(tries) - 1]
        if self.trace is not None:
            self.trace.take(traces[id(rec)])       # the kept try's spans only
        return rec

    def warm_up(self) -> list[RepeatRecord]:
        """The warm-up repeats: each variant's paths run once unmeasured (page tables and the
        arena faulted in, caches warm) before its first measured repeat. Their figures are
        dropped, but a failed audit is kept, as repeat 0: the run has failed."""
        failed = []
        for _ in range(self.warmup):
            for v in self.sc.variants:
                self.progress(f"warm-up: {v.name}")
                rec = run_repeat(self, v, -1)
                if not rec.audit_ok:
                    failed.append(rec)
        return failed

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
    with INTERRUPTS.catching():
        return _run_groups(groups, on_repeat, on_ready, duration_s)


def _run_groups(groups: list[Group], on_repeat: Callable[[RepeatRecord], None] | None,
                on_ready: Callable[[], None] | None,
                duration_s: float | None) -> list[RepeatRecord]:
    records: list[RepeatRecord] = []
    try:
        for k, g in enumerate(groups):
            if len(groups) > 1:
                g.progress(f"group {k + 1}/{len(groups)}: {g.sc.variants[0].group or g.sc.name}")
            g.setup()
        for g in groups if duration_s != 0.0 else []:
            for rec in g.warm_up():          # only a warm-up whose audit failed
                records.append(rec)
                if on_repeat:
                    on_repeat(rec)
        host = HostState(sorted({c for g in groups for w in g.plan.workers
                                 if w.role != "swapout" for c in w.cpus}))
        host.start(_pids(groups))
        if on_ready is not None:
            on_ready()
        records += _interleaved(groups, on_repeat, duration_s)
        state = host.stop(_pids(groups))
        for g in groups:
            g.host_state = state
        return records
    finally:
        # a second Ctrl-C or SIGTERM (in any thread) must not cut the clean-up short: from here
        # on they are noted, not raised (emul/harness/signals.py)
        INTERRUPTS.hold()
        _shutdown_all(groups)


def _shutdown_all(groups: list[Group]) -> None:
    """Every group shut down, even when one's shutdown fails (the first failure is raised)."""
    failure: BaseException | None = None
    for g in groups:
        try:
            g.shutdown()
        except BaseException as exc:     # noqa: BLE001 - the other groups still need it
            failure = failure or exc
    if failure is not None:
        raise failure


def _pids(groups: list[Group]) -> list[int]:
    """emul's own processes: this controller and every worker."""
    return [os.getpid()] + [w.popen.pid for g in groups for w in g.plan.workers if w.popen]


def probe_groups(groups: list[Group]) -> None:
    """Set every group up (its machinery probed or loaded) and tear it down: no repeat runs."""
    run_groups(groups, duration_s=0.0)


def _interleaved(groups: list[Group], on_repeat: Callable[[RepeatRecord], None] | None,
                 duration_s: float | None) -> list[RepeatRecord]:
    records: list[RepeatRecord] = []
    deadline = None if duration_s is None else time.monotonic() + duration_s
    order = [(g, v) for g in groups for v in g.sc.variants]
    repeats = max(g.sc.repeats for g in groups)
    for r in range(repeats):
        if deadline is not None and time.monotonic() >= deadline:
            break    # emul soak: its time is up (always after a whole cycle)
        for g, v in (order if r % 2 == 0 else reversed(order)):
            if r >= g.sc.repeats:
                continue
            INTERRUPTS.check()
            g.progress(f"repeat {r + 1}/{repeats}: {v.name}")
            rec = g.run_repeat(v, r)
            records.append(rec)
            if on_repeat:
                on_repeat(rec)
    return records


def compile_scratch(shape: layout.Layout) -> bool:
    """Compile every entry point for the arena's types against untouched anonymous memory of
    its layout; False where the host refuses such a mapping (the real arena is used then)."""
    try:
        scratch = Arena.scratch(shape)
    except OSError:
        return False
    try:
        compile_run(Views.of(scratch, 0))
    finally:
        scratch.close()
    return True
