"""A repeat's RepeatRecord, read from the arena once the repeat has ended.

Every worker keeps its own row of counters (``wstat``, padded, written only by its owner: no
shared traffic while measuring); here the rows are summed. The headline time is the first actor
role's workers' span, from the first one's start to the last one's end.
"""
from __future__ import annotations

from typing import Any

from emul.config.costs import COST_NAMES
from emul.harness.group import GroupState, Repeat
from emul.harness.hoststate import CLK_TCK, cpu_ticks
from emul.harness.record import WORKER_COUNTERS, RepeatRecord, WorkerUse
from emul.harness.sampler import ReplaySampler
from emul.harness.supervisor import PhaseDone, WorkerProc
from emul.kernel import context as C
from emul.kernel import lockstat
from emul.kernel.lockstat import LOCK_CLASS_NAMES, LS_ROW, LS_WAIT_TOTAL
from emul.kernel.zram import STAT_NAMES


def headline_span(g: GroupState) -> tuple[int, int, int]:
    """(first start, last end, PTEs) of the headline actors; a killer left without a victim
    never started and does not count."""
    ws = g.arena["wstat"]
    heads = [ws[w.index] for w in g.plan.headline if ws[w.index, C.W_T_START] != 0]
    heads = heads or [ws[g.plan.headline[0].index]]
    return (min(int(k[C.W_T_START]) for k in heads), max(int(k[C.W_T_END]) for k in heads),
            sum(int(k[C.W_PTES]) for k in heads))


def worker_use(w: WorkerProc, done: PhaseDone, cpumask: int) -> WorkerUse:
    u = done.usage
    return WorkerUse(role=w.role, cpus_allowed=done.cpus_allowed,
                     cpus_seen=[c for c in range(63) if cpumask >> c & 1],
                     cpu_s=u.cpu_s if u else None, wall_s=u.wall_s if u else None,
                     voluntary=u.voluntary if u else None,
                     involuntary=u.involuntary if u else None,
                     migrations=u.migrations if u else None,
                     runqueue_wait_s=u.runqueue_wait_s if u else None)


def record(g: GroupState, r: Repeat) -> RepeatRecord:
    arena, tpn, ws = g.arena, g.ticks_per_ns, g.arena["wstat"]
    workers = g.plan.workers
    t_start, t_end, ptes = headline_span(g)
    others = [role for role, _, _ in g.plan.actors[1:]]
    gcs = g.gcs(r.variant)
    gc_idle = max((int(ws[w.index, C.W_GC_IDLE_AT]) for w in gcs), default=0)
    timeline = r.sampler.timeline()
    # per CPU (percpu-zsfree) a worker sees only its own buffer's backlog; the samples sum
    # every buffer
    peak = max([int(ws[w.index, C.W_PEAK_BACKLOG]) for w in workers] + timeline["gc_backlog"])
    return RepeatRecord(
        variant=r.variant.name, strategy=r.variant.strategy, repeat=r.repeat + 1,
        group=r.variant.group, profile=g.profile.name, experiment=g.sc.experiment.value,
        time_ns=(t_end - t_start) / tpn,
        other_actors_ns={w.name: float(ws[w.index, C.W_T_END] - ws[w.index, C.W_T_START]) / tpn
                         for w in workers if w.role in others},
        headline_ns={w.name: float(ws[w.index, C.W_T_END] - ws[w.index, C.W_T_START]) / tpn
                     for w in g.plan.headline if ws[w.index, C.W_T_START] != 0},
        ptes=ptes, ns_per_page=(t_end - t_start) / tpn / ptes if ptes else 0.0,
        counters={k: int(sum(int(ws[w.index, i]) for w in workers))
                  for k, i in WORKER_COUNTERS.items()},
        gc_busy_ns=sum(int(ws[w.index, C.W_GC_BUSY]) for w in workers) / tpn,
        gc_drain_ns=max(0, gc_idle - t_end) / tpn if gcs else 0.0,
        backlog_at_unmap_end=r.backlog_at_end, peak_backlog=peak,
        peak_backlog_bytes=max(int(ws[w.index, C.W_PEAK_BYTES]) for w in workers),
        pool_pages_before=r.pool_before, pool_pages_after=int(arena["pool_stat"][0]),
        zram_stats={n: int(v) for n, v in zip(STAT_NAMES, arena["zram_stats"])},
        zram_stats_before={n: int(v) for n, v in zip(STAT_NAMES, r.stats_before)},
        lock_stat=lockstat.merge(arena["lockstat"], 1.0 / tpn),
        lock_who=lockstat.merge_who(arena["lockstat"], {w.index: w.name for w in workers},
                                    1.0 / tpn),
        shared_counters=lockstat.merge_counters(arena["lockstat"]),
        workers={w.name: worker_use(w, r.done[w.name], int(ws[w.index, C.W_CPUMASK]))
                 for w in workers if w.name in r.done},
        audit=r.audit, timeline=timeline, time_split=time_splits(g, r),
        steal_s=steal_since(r), dilation=g.sc.dilate,
        replay=r.sampler.result() if isinstance(r.sampler, ReplaySampler) else None)


def steal_since(r: Repeat) -> dict[str, float]:
    """Seconds the hypervisor took from each measured CPU since the measured phase began."""
    cpus = {c for d in r.done.values() for c in d.cpus_allowed}
    now = cpu_ticks()
    return {str(c): (now[c][1] - r.steal_before[c][1]) / CLK_TCK for c in sorted(cpus)
            if c in now and c in r.steal_before}


def time_split(g: GroupState, r: Repeat, w: WorkerProc, span_ticks: int) -> dict[str, Any]:
    """Where one measured worker's time went, in emulated ns (perf report's view): per cost the
    busy-wait (the target less emul's machinery), emul's machinery inside the steps (and the
    part of it over the targets), the strategy's own work, the loops around the steps, lock
    waits per class, time preempted (on the runqueue while another task had the CPU, from
    /proc/<pid>/schedstat over the phase); ``rest`` is what none of these explains (cache lines
    other CPUs held, time the hypervisor took). ``repaid_ns``: the part of the overruns that later steps' waits made up."""
    row, tpn = g.arena["wstat"][w.index], g.ticks_per_ns
    m = g.machinery[r.variant.name].role(w.role)
    events = [int(row[C.W_STEP_EVENTS + i]) for i in range(len(COST_NAMES))]
    costs = {COST_NAMES[i]: int(row[C.W_STEP_WAITED + i]) / tpn
             for i in range(len(COST_NAMES)) if row[C.W_STEP_WAITED + i]}
    machinery = sum(events[i] * m.step[i] for i in range(len(COST_NAMES))) / tpn
    overrun = {COST_NAMES[i]: int(row[C.W_STEP_OVERRUN + i]) / tpn
               for i in range(len(COST_NAMES)) if row[C.W_STEP_OVERRUN + i]}
    # per event, for the warning: machinery over its target (both in emulated ns)
    over_steps = {name: {"events": events[i], "machinery_ns": m.step[i] / tpn,
                         "target_ns": m.step[i] / tpn - overrun[name] / max(1, events[i])}
                  for i, name in enumerate(COST_NAMES) if name in overrun}
    units = int(row[C.W_GC_FREED]) if w.role == "gc" else int(row[C.W_DESIGN_CALLS])
    design = units * m.design / tpn
    loops = int(row[C.W_PTES]) * m.root_per_unit / tpn
    ls = g.arena["lockstat"][w.index]
    waits = {LOCK_CLASS_NAMES[k]: int(ls[k * LS_ROW + LS_WAIT_TOTAL]) / tpn
             for k in range(len(LOCK_CLASS_NAMES)) if ls[k * LS_ROW + LS_WAIT_TOTAL]}
    total = span_ticks / tpn
    done = r.done.get(w.name)
    queued = done.usage.runqueue_wait_s if done is not None and done.usage else None
    preempted = min(total, queued * 1e9 / g.sc.dilate) if queued else 0.0
    explained = (sum(costs.values()) + machinery + design + loops + sum(waits.values())
                 + preempted)
    return {"measured_ns": total, "costs_ns": costs, "machinery_ns": machinery,
            "overrun_ns": overrun, "overrun_steps": over_steps, "design_ns": design,
            "loops_ns": loops,
            "repaid_ns": max(0.0, sum(overrun.values()) - max(0, int(row[C.W_BALANCE])) / tpn),
            "preempted_ns": preempted,
            "lock_wait_ns": waits, "rest_ns": total - explained}


def time_splits(g: GroupState, r: Repeat) -> dict[str, dict[str, Any]]:
    """The split of every measured actor (span: first start to last end) and of each GC worker
    (its busy time)."""
    ws = g.arena["wstat"]
    out = {}
    for role, _, _ in g.plan.actors:
        for w in g.plan.actor_workers[role]:
            span = int(ws[w.index, C.W_T_END] - ws[w.index, C.W_T_START])
            if ws[w.index, C.W_T_START] != 0:
                out[w.name] = time_split(g, r, w, span)
    for w in g.gcs(r.variant):
        out[w.name] = time_split(g, r, w, int(ws[w.index, C.W_GC_BUSY]))
    return out
