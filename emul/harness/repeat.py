"""One repeat of one variant, step by step.

    reset     the arena to the variant's initial state, every process's pages resident
    swap-out  the swapout worker writes the chosen pages into zram (not measured: zero costs)
    measured  the profile's costs on; the actors (killer, swap-in, reapers), the GC and reclaim
              start together on the gate; the controller samples the timeline meanwhile
    drain     reclaim stopped, the GC left to empty its queue
    audit     the invariant audit of the whole state
    collect   the RepeatRecord (emul/harness/collect.py)
"""
from __future__ import annotations

import numpy as np

from emul.config.scenario import VariantSpec
from emul.harness import collect
from emul.harness import plan as planning
from emul.harness.arena import Arena
from emul.harness.group import GroupState, Repeat
from emul.harness.hoststate import cpu_ticks
from emul.harness.record import RepeatRecord
from emul.harness.sampler import SAMPLE_MS, PhaseSampler, ReplaySampler
from emul.harness.trace import TraceRecorder, record_kills, record_repeat
from emul.kernel import audit, layout, lockstat
from emul.kernel import context as C
from emul.kernel.clock import clock_now
from emul.kernel.gc_worker import gc_worker_reset, gc_worker_stop
from emul.kernel.layout import Geometry
from emul.kernel.mm import CTL_RECLAIM_STOP, populate_vma
from emul.kernel.replay import CTL_REPLAY_NEXT, K_DUE, K_SLOTS
from emul.kernel.workqueue import GC_PENDING, flush_work
from emul.kernel.zram import K_SLOTS_LEFT, KILL_WORDS, STAT_NAMES
from emul.strategies import get_strategy

PHASE_TIMEOUT_S = 600.0


def reset_arena(arena: Arena, geo: Geometry, strategy: str,
                cpus: list[int] | None = None) -> None:
    """Every array zeroed, the initial state of geo, and the strategy's queue set up."""
    for view in arena.views.values():
        view[...] = 0
    layout.init_state(arena, geo)
    strat = get_strategy(strategy)
    if hasattr(strat, "setup_queue"):     # optional: the queue's initial values
        strat.setup_queue(arena["gc_queue"], geo.nr_slots, geo.cap_slots, geo.cap_bytes,
                          cpus=cpus)


def reset(g: GroupState, variant: VariantSpec, repeat: int) -> Repeat:
    sc = g.sc
    geo = g.geometry(variant)
    reset_arena(g.arena, geo, variant.strategy, cpus=g.plan.freeing_cpus())
    g.apply_chaos()
    ranges, start = [], 0
    for p in sc.processes:
        n = p.vma // sc.page_size
        ranges.append((start, start + n, int(round(p.swapped * 1e6)), p.role))
        populate_vma(g.views.mm, start, start + n)
        start += n
    background = (start, start + g.reclaim_pages)
    populate_vma(g.views.mm, *background)
    return Repeat(variant, repeat, geo, ranges, background)


def swap_out(g: GroupState, r: Repeat) -> None:
    g.arena["costs"][:] = 0   # set-up is not measured: swap-out runs at machinery speed
    r.marks["swap-out"] = clock_now()
    g.sup.phase = f"{r.title}: swap-out"
    g.sup.start_phase(g.arena["ctl"], {"swapout": ("swapout", {"ranges": [x[:3] for x in r.ranges]})},
                      PHASE_TIMEOUT_S)
    g.sup.wait_done({"swapout"}, PHASE_TIMEOUT_S)


def reset_rows(g: GroupState, variant: VariantSpec) -> None:
    """Every worker's statistics row fresh, with its settings for the phase."""
    sc, wstat = g.sc, g.arena["wstat"]
    wstat[:] = 0
    # the shared counters as they stand: a writer's first update after another's is a bounce
    now = np.append(g.arena["zram_stats"][:len(STAT_NAMES)], g.arena["pool_lock"][0])
    lockstat.reset_rows(g.arena["lockstat"], now)
    for w in g.plan.workers:
        wstat[w.index, C.W_INDEX] = w.index
        wstat[w.index, C.W_LOCKSTAT] = int(sc.lockstat)
        work_ns = variant.step_work_ns or planning.step_work_ns(sc)
        wstat[w.index, C.W_STEP_WORK] = int(work_ns * g.host_ticks_per_ns)
        if w.role == "gc":
            wstat[w.index, C.W_GC_POLL_NS] = int(sc.workers.gc.idle_poll_ns * g.ticks_per_ns)
            wstat[w.index, C.W_HOLD_WORK] = int(sc.debug.get("gc_hold_ns", 0)
                                                * g.host_ticks_per_ns)


def actor_phases(g: GroupState, r: Repeat, roles: set[str] | None = None
                 ) -> dict[str, tuple[str, dict]]:
    """The measured actors' phases: each role's processes dealt out to its workers in turn."""
    plan: dict[str, tuple[str, dict]] = {}
    for role, phase, which in g.plan.actors:
        if roles is not None and role not in roles:
            continue
        mine = [(s, e) for s, e, _, role_ in r.ranges if which is None or role_ == which]
        procs = g.plan.actor_workers[role]
        for k, w in enumerate(procs):
            plan[w.name] = (phase, {"ranges": mine[k::len(procs)]})
    return plan


def arm_measured(g: GroupState, r: Repeat) -> dict[str, tuple[str, dict]]:
    """Costs on, fresh statistics rows, the sampler; returns every worker's phase."""
    arena = g.arena
    arena["costs"][:] = g.cost_rows(r.variant)
    reset_rows(g, r.variant)
    r.stats_before = arena["zram_stats"].copy()
    r.pool_before = int(arena["pool_stat"][0])
    gc_worker_reset(g.views.zram)
    plan = actor_phases(g, r)
    r.sampler = make_sampler(g, r)
    if g.replay is not None:
        # every reaper takes the next kill from the shared schedule, in kill order
        victims = prepare_replay(g, r)
        for w in g.plan.actor_workers["killer"]:
            plan[w.name] = ("reap", {"ranges": victims,
                                     "ticks_per_us": max(1, int(g.ticks_per_ns * 1000))})
    if g.sc.workers.gc.start == "at-once":
        plan.update({w.name: ("serve", {}) for w in g.gcs(r.variant)})
    if g.sc.workers.reclaim is not None:
        plan["reclaim"] = ("reclaim", {"start": r.background[0], "end": r.background[1]})
    return plan


def make_sampler(g: GroupState, r: Repeat) -> PhaseSampler:
    # resident pages of the measured processes, as the swap-out left them
    resident = int((g.arena["pte"][:r.background[0]] > 0).sum())
    args = (g.arena, [w.index for w in g.plan.of_role("killer")],
            [w.index for w in g.plan.of_role("swapin")], resident, g.ticks_per_ns,
            g.sc.page_size)
    if g.replay is not None:
        return ReplaySampler(g.replay, *args, interval_ms=SAMPLE_MS)
    return PhaseSampler(*args)


def prepare_replay(g: GroupState, r: Repeat) -> list[tuple[int, int]]:
    """Tag every slot a victim's swapped pages hold with its kill, and load the schedule."""
    assert g.replay is not None
    victims = [(s, e) for s, e, _, role in r.ranges if role == "victim"][:len(g.replay.due_ms)]
    owner, kills, pte = g.arena["owner"], g.arena["kills"], g.arena["pte"]
    kills[:] = 0
    for i, (start, end) in enumerate(victims):
        ptes = pte[start:end]
        slots = -ptes[ptes < 0] - 1
        owner[slots] = i
        k = i * KILL_WORDS
        kills[k + K_SLOTS] = kills[k + K_SLOTS_LEFT] = slots.size
        kills[k + K_DUE] = int(g.replay.due_ms[i] * 1e6 * g.ticks_per_ns)
    g.arena["ctl"][CTL_REPLAY_NEXT] = 0
    return victims


def measured(g: GroupState, r: Repeat) -> None:
    plan = arm_measured(g, r)
    g.sup.phase = f"{r.title}: {g.sc.experiment.value}"
    r.steal_before = cpu_ticks()
    r.marks[g.sc.experiment.value] = clock_now()
    g.sup.start_phase(g.arena["ctl"], plan, PHASE_TIMEOUT_S, r.sampler.start)
    actors = {w.name for ws in g.plan.actor_workers.values() for w in ws}
    r.done = g.sup.wait_done(actors, PHASE_TIMEOUT_S, r.sampler)
    if g.sc.workers.reclaim is not None:
        # reclaim keeps freeing slots: stop it before waiting for the GC to drain
        g.arena["ctl"][CTL_RECLAIM_STOP] = 1
        r.done.update(g.sup.wait_done({"reclaim"}, PHASE_TIMEOUT_S))
    r.backlog_at_end = g.backlog()


def drain(g: GroupState, r: Repeat) -> None:
    r.marks["GC drain"] = clock_now()
    g.sup.phase = f"{r.title}: GC drain"
    gcs = g.gcs(r.variant)
    if gcs and getattr(get_strategy(r.variant.strategy), "FLUSH_AT_END", False):
        flush_work(g.views.zram)     # the last partial page (zs_free_deferred_flush)
    if gcs and g.sc.workers.gc.start == "after":
        # gc.start: after: the kworker runs only now, on the backlog the actors left
        g.arena["gc_ctl"][GC_PENDING] = 1
        g.sup.start_phase(g.arena["ctl"], {w.name: ("serve", {}) for w in gcs},
                          PHASE_TIMEOUT_S)
    g.sup.wait_until(g.drained_or_stuck(), PHASE_TIMEOUT_S, r.sampler)
    r.sampler.sample()
    gc_worker_stop(g.views.zram)
    if gcs:
        r.done.update(g.sup.wait_done({w.name for w in gcs}, PHASE_TIMEOUT_S))


def audit_state(g: GroupState, r: Repeat) -> None:
    r.marks["audit"] = clock_now()
    g.sup.phase = f"{r.title}: audit"
    r.audit = audit.audit(g.arena, expect_empty=True)
    r.marks["end"] = clock_now()


def run_repeat(g: GroupState, variant: VariantSpec, repeat: int,
               trace: TraceRecorder | None = None) -> RepeatRecord:
    """Every step of one repeat; the record it measured, its spans and counters added to
    ``trace`` (None: not traced, as a warm-up repeat, which the caller drops)."""
    r = reset(g, variant, repeat)
    swap_out(g, r)
    measured(g, r)
    drain(g, r)
    audit_state(g, r)
    rec = collect.record(g, r)
    if trace is not None:
        trace.ticks_per_ns = g.ticks_per_ns
        record_repeat(trace, g.trace_pid, variant.name, repeat + 1, r.marks, g.plan.workers,
                      g.arena["wstat"], r.sampler.samples, g.sc.page_size)
        if rec.replay is not None:
            record_kills(trace, g.trace_pid, g.plan.actor_workers["killer"],
                         rec.replay["kills"])
    return rec
