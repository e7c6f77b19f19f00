"""The machinery probe of one variant (emul/harness/machinery.py says what it measures).

After the swap-out, each measured worker runs its path alone: each killer in turn (or the
swap-in worker, or both), then the GC draining what they queued, then reclaim for
PROBE_RECLAIM_S. Nothing runs beside the worker measured: these are emul's own uncontended
figures on this host.
Three passes: plain (no modelled cost, for the span), timed (every region timed, for the split
per step), and waiting (every step waits PROBE_WAIT_NS, for what a wait costs in the path);
each PROBE_ROUNDS times, the typical (median) round counting.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from emul.config.costs import NR_COSTS
from emul.config.scenario import VariantSpec
from emul.harness import machinery as mach
from emul.harness.group import GroupState
from emul.harness.disturbance import STEAL_SHARE_MAX
from emul.harness.hoststate import LOADED_SHARE, HostState
from emul.harness.repeat import PHASE_TIMEOUT_S, actor_phases, reset, reset_rows, swap_out
from emul.kernel import context as C
from emul.kernel.gc_worker import gc_worker_reset, gc_worker_stop
from emul.kernel.mm import CTL_RECLAIM_STOP
from emul.kernel.workqueue import GC_FLUSH, GC_PENDING

PROBE_RECLAIM_S = 0.05
PROBE_ROUNDS = 3            # runs of each pass; the median one counts


def run_alone(g: GroupState, phases: dict[str, tuple[str, dict]], timed: bool,
              until: Callable[[], None] | None = None) -> None:
    """Start these workers' phase (their regions timed if ``timed``); wait (for ``until``
    first)."""
    wstat = g.arena["wstat"]
    for name in phases:
        if timed:
            mach.arm_probe(wstat, g.sup.by_name[name].index)
    g.sup.start_phase(g.arena["ctl"], phases, PHASE_TIMEOUT_S)
    if until is not None:
        until()
    g.sup.wait_done(set(phases), PHASE_TIMEOUT_S)
    for name in phases:
        wstat[g.sup.by_name[name].index, C.W_PROBE] = 0


PASSES = {"plain": {"timed": False}, "timed": {"timed": True},
          "waiting": {"timed": False, "wait_ns": mach.PROBE_WAIT_NS}}
Rounds = dict[str, list[dict[str, list[np.ndarray]]]]      # pass -> its rounds' rows per role


def probe_variants(g: GroupState, variants: Sequence[VariantSpec]) -> dict[str, mach.Machinery]:
    """Measure (or load from the cache) each variant's machinery per role.

    Each role's path runs alone in three passes (PASSES): as in a run, for its span; with
    every region timed, for the split; and with every step waiting, for what a wait costs.
    The timing's own cost is taken off the split (the empty-region figures), and what remains
    of it is spread over the split in proportion, so that the parts add up to the untimed
    span. PROBE_ROUNDS rounds, each round visiting every variant in turn, so that a slow spell
    of a shared host falls on all of them alike; per pass the typical (median) round counts."""
    out: dict[str, mach.Machinery] = {}
    keys = {v.name: mach.cache_key(g.sc, [(w.role, w.cpus) for w in g.plan.workers], v)
            for v in variants}
    todo: list[VariantSpec] = []       # one per key: variants differing only in costs share it
    for v in variants:
        cached = None if g.fresh_machinery else mach.load_cached(keys[v.name], g.host_ticks_per_ns)
        if cached is not None:
            out[v.name] = cached
        elif all(keys[t.name] != keys[v.name] for t in todo):
            todo.append(v)
    if not todo:
        return out
    g.progress(f"measuring emul's machinery on this host: {', '.join(v.name for v in todo)} "
               f"({PROBE_ROUNDS} rounds; cached afterwards)")
    host = HostState(sorted({c for w in g.plan.workers for c in w.cpus}))
    pids = [os.getpid()] + [w.popen.pid for w in g.plan.workers if w.popen]
    host.start(pids)
    bias_in, bias_out = mach.calibrate(g.views.ctx)     # row 0: the idle swap-out writer's
    delay = mach.delay_overhead(g.host_ticks_per_ns)
    rounds: dict[str, Rounds] = {v.name: {p: [] for p in PASSES} for v in todo}
    for _ in range(PROBE_ROUNDS):
        for v in todo:
            for p, how in PASSES.items():
                rounds[v.name][p].append(run_roles(g, v, **how))    # type: ignore[arg-type]
    state = host.stop(pids)
    # other tasks make emul's machinery slower than it will be; a steady share of steal (a
    # shared VM's) is there in the later runs too, so only a large one counts
    loaded = state["others_share"] > LOADED_SHARE or state["steal_share"] > STEAL_SHARE_MAX
    if loaded:
        # figures taken on a loaded host are too slow for a quiet one: every later run would
        # wait too little (its actors faster than their targets); keep them for this run only
        g.progress(f"the host was loaded while measuring (other tasks took "
                   f"{state['others_share']:.0%} of the CPUs, the hypervisor "
                   f"{state['steal_share']:.0%}): the figures serve this run and are not cached")
    for t in todo:
        m = machinery_of(g, rounds[t.name], keys[t.name], bias_in, bias_out, delay)
        if not loaded:
            mach.store(m)
        out.update({v.name: m for v in variants if keys[v.name] == keys[t.name]})
    return out


def machinery_of(g: GroupState, rounds: Rounds, key: str, bias_in: float, bias_out: float,
                 delay: int) -> mach.Machinery:
    plain, timed = typical(rounds["plain"]), typical(rounds["timed"])
    roles = {}
    for role in timed:
        plain_span = mach.span(plain[role], role)
        roles[role] = mach.role_machinery(timed[role], role, bias_in, bias_out, plain_span)
        roles[role].wait_overhead = wait_overhead(rounds, role, delay)
    return mach.Machinery(roles, g.host_ticks_per_ns, bias_in, bias_out, key, delay)


def wait_overhead(rounds: Rounds, role: str, delay: int) -> float:
    """What a wait costs in this role's path: per round, the waiting pass against the plain
    pass run just before it (the same moment of a shared host), the median over the rounds;
    never less than a wait's own clock reads (``delay``, measured back to back)."""
    each = [mach.wait_overhead(w[role], role, mach.span(p[role], role))
            for p, w in zip(rounds["plain"], rounds["waiting"])]
    each = [e for e in each if e >= 0]
    return max(float(delay), statistics.median(each)) if each else -1.0


def typical(rounds: list[dict[str, list[np.ndarray]]]) -> dict[str, list[np.ndarray]]:
    """Per role, the rows of the round with the median span. Not the fastest: the repeats
    the figures will be subtracted from run at the host's typical speed, and on a shared host
    the fastest round is an exception (with it, every run came out slower than its targets)."""
    out = {}
    for role in rounds[0]:
        ranked = sorted((r[role] for r in rounds), key=lambda rows: mach.span(rows, role) or 0)
        out[role] = ranked[len(ranked) // 2]
    return out


def run_roles(g: GroupState, variant: VariantSpec, timed: bool,
              wait_ns: int = 0) -> dict[str, list[np.ndarray]]:
    """Every measured role's path, one role at a time (each step waiting wait_ns, its whole
    length: no machinery or overhead left out); each role's rows afterwards."""
    r = reset(g, variant, -1)
    swap_out(g, r)
    g.arena["costs"][:] = 0
    g.arena["costs"][:, :NR_COSTS] = int(wait_ns * g.host_ticks_per_ns)
    reset_rows(g, variant)
    for role, _, _ in g.plan.actors:
        g.sup.phase = f"{variant.name}: machinery probe ({role})"
        # one worker at a time: two killers at once would contend, and contention is what a
        # run must show, not what the probe may take off the targets
        for name, phase in actor_phases(g, r, {role}).items():
            run_alone(g, {name: phase}, timed)
    gcs = g.gcs(variant)
    if gcs:
        g.sup.phase = f"{variant.name}: machinery probe (gc)"
        gc_worker_reset(g.views.zram)
        g.arena["gc_ctl"][GC_PENDING] = 1   # the work the killers queued (reset cleared it)
        g.arena["gc_ctl"][GC_FLUSH] = 1     # the killers are done: their last pages too

        def drained() -> None:
            g.sup.wait_until(g.drained_or_stuck(), PHASE_TIMEOUT_S)
            gc_worker_stop(g.views.zram)
        run_alone(g, {w.name: ("serve", {}) for w in gcs}, timed, drained)
    if g.sc.workers.reclaim is not None:
        g.sup.phase = f"{variant.name}: machinery probe (reclaim)"

        def a_moment() -> None:
            deadline = time.monotonic() + PROBE_RECLAIM_S
            g.sup.wait_until(lambda: time.monotonic() > deadline, PHASE_TIMEOUT_S)
            g.arena["ctl"][CTL_RECLAIM_STOP] = 1
        run_alone(g, {"reclaim": ("reclaim", {"start": r.background[0], "end": r.background[1]})},
                  timed, a_moment)
    wstat = g.arena["wstat"]
    return {role: [wstat[w.index].copy() for w in g.plan.of_role(role)]
            for role in sorted({w.role for w in g.plan.workers} - {"swapout"})}
