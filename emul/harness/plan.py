"""What a scenario asks for, turned into processes and an arena: the plan of one group.

``plan_workers`` decides which worker processes a group needs and where each is pinned;
``geometry`` sizes the arena for a variant; ``check_resources`` refuses, before anything is
created, groups whose arenas do not fit this machine.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from emul.config.profiles import Profile
from emul.config.scenario import Scenario, VariantSpec
from emul.config.topology import Topology, machine_topology
from emul.errors import InputError
from emul.harness.supervisor import WorkerProc
from emul.kernel import layout
from emul.kernel.debug import DEBUG_SWITCHES, DEBUG_VALUES
from emul.kernel.zsmalloc import ZS_FLAG_NAMES
from emul.strategies import get_strategy, strategy_id

# experiment -> the measured workers: (role, phase, which processes: a role or None for all);
# the first role's time is the run's headline figure
ACTORS: dict[str, list[tuple[str, str, str | None]]] = {
    "unmap": [("killer", "unmap", None)],
    "swapin": [("swapin", "swapin", None)],
    "mixed": [("killer", "unmap", "victim"), ("swapin", "swapin", "app")],
}


@dataclass(frozen=True)
class ReplayPlan:
    """A storm to replay: each victim's kill time (ms after the start), in kill order; the
    victims are the scenario's first processes of role victim."""

    due_ms: tuple[float, ...]
    names: tuple[str, ...]


@dataclass
class WorkerPlan:
    """A group's worker processes, and which of them are the measured actors of each role."""

    workers: list[WorkerProc]
    actors: list[tuple[str, str, str | None]]
    actor_workers: dict[str, list[WorkerProc]] = field(default_factory=dict)

    @property
    def headline(self) -> list[WorkerProc]:
        return self.actor_workers[self.actors[0][0]]

    def of_role(self, role: str) -> list[WorkerProc]:
        return [w for w in self.workers if w.role == role]

    def freeing_cpus(self) -> list[int]:
        """The CPUs of the workers whose frees reach zram_slot_free_notify (every one but the
        swap-out writer and the GC): where a per-CPU strategy's buffers fill."""
        return sorted({c for w in self.workers if w.role not in ("swapout", "gc")
                       for c in w.cpus})


def plan_workers(sc: Scenario) -> WorkerPlan:
    """The swap-out writer, the measured actors, reclaim if asked, and the GC if any variant
    needs one."""
    w = sc.workers
    plan = WorkerPlan([WorkerProc("swapout", "swapout", 0, [w.swapout.cpu])],
                      ACTORS[sc.experiment.value])
    for role, _, _ in plan.actors:
        cpus = list(w.killers or [w.killer.cpu]) if role == "killer" else [getattr(w, role).cpu]
        for k, cpu in enumerate(cpus):
            proc = WorkerProc(role if k == 0 else f"{role}{k + 1}", role, len(plan.workers), [cpu])
            plan.workers.append(proc)
            plan.actor_workers.setdefault(role, []).append(proc)
    if w.reclaim is not None:
        plan.workers.append(WorkerProc("reclaim", "reclaim", len(plan.workers), [w.reclaim.cpu]))
    if any(get_strategy(v.strategy).NEEDS_GC for v in sc.variants):
        for k in range(w.gc.count):
            cpu = w.gc.cpus[k % len(w.gc.cpus)]
            plan.workers.append(WorkerProc(f"gc{k}", "gc", len(plan.workers), [cpu]))
    return plan


def cap_slots(variant: VariantSpec) -> int:
    """The variant's cap in slots: as written, else the strategy's default (0: none)."""
    strat = get_strategy(variant.strategy)
    cap = variant.cap_slots if variant.cap_slots is not None else (
        strat.DEFAULT_CAP_SLOTS if variant.cap_bytes is None else 0)
    return int(cap or 0)


def reclaim_pages(sc: Scenario) -> int:
    r = sc.workers.reclaim
    return 0 if r is None else r.vma // sc.page_size


def alloc_start(sc: Scenario) -> int:
    """The swap allocator's first slot (-1: seed-chosen)."""
    if sc.zram.alloc_from == "head":
        return 0
    if sc.zram.alloc_from == "tail":   # the swapped pages end exactly at the device's end
        return max(0, sc.nr_slots - sum(sc.swapped_pages_per_process))
    return -1


def debug_bits(sc: Scenario) -> int:
    """The scenario's debug switches as ZP_DEBUG bits; an unknown name is an input error."""
    bits = 0
    for key, on in sc.debug.items():
        if key in DEBUG_VALUES:
            if isinstance(on, bool) or not 0 <= on <= 1_000_000:
                raise InputError(sc.source, f"debug.{key}", f"expected nanoseconds from 0 to "
                                 f"1000000, got {on!r}")
            continue
        if key not in DEBUG_SWITCHES:
            raise InputError(sc.source, f"debug.{key}", "unknown debug switch (expected one "
                             f"of: {', '.join([*DEBUG_SWITCHES, *DEBUG_VALUES])})")
        bits |= DEBUG_SWITCHES[key] if on else 0
    return bits


def step_work_ns(sc: Scenario) -> int:
    """debug.step_work_ns: extra physical work in every step (0: none)."""
    return int(sc.debug.get("step_work_ns", 0))


def cpu_class(topology: Topology, cpu: int, profile: Profile) -> str:
    """The core class a CPU is on this machine, in the profile's terms: on a machine of cores
    of two capacities, little and big where the profile has them; otherwise the class the
    profile's figures describe (the hardware as it is)."""
    if not topology.equal_capacity:
        caps = {c.cpu: c.capacity for c in topology.cpus}
        top = max(c for c in caps.values() if c is not None)
        name = "big" if caps.get(cpu) == top else "little"
        if name in profile.class_names:
            return name
    return profile.core_class


def core_classes(sc: Scenario, profile: Profile, plan: WorkerPlan,
                 topology: Topology | None = None) -> dict[str, dict[str, str]]:
    """variant -> worker -> the core class whose targets it pays: the scenario's (or the
    variant's) ``core`` for its role, else its CPU's own class. An unknown class is an input
    error naming the profile's classes."""
    topo = topology or machine_topology(frozenset(c for w in plan.workers for c in w.cpus))
    out: dict[str, dict[str, str]] = {}
    for v in sc.variants:
        out[v.name] = {}
        for w in plan.workers:
            core = sc.core_of(w.role, v) or cpu_class(topo, w.cpus[0], profile)
            if core not in profile.class_names:
                raise InputError(sc.source, f"workers.{w.role}.core",
                                 f"expected a core class of profile {profile.name} "
                                 f"({', '.join(profile.class_names)}), got {core!r}")
            out[v.name][w.name] = core
    return out


def geometry(sc: Scenario, variant: VariantSpec, n_workers: int,
             replay: ReplayPlan | None = None) -> layout.Geometry:
    """Everything the arena's size and initial values depend on, for this variant."""
    return layout.Geometry(
        page_size=sc.page_size, nr_slots=sc.nr_slots,
        total_pages=sum(p.vma // sc.page_size for p in sc.processes) + reclaim_pages(sc),
        n_workers=n_workers, strategy_id=strategy_id(variant.strategy),
        cap_slots=cap_slots(variant), cap_bytes=int(variant.cap_bytes or 0),
        queue_words=max(get_strategy(v.strategy).queue_words(sc.nr_slots, cap_slots(v))
                        for v in sc.variants),
        seed=sc.seed & (2**63 - 1),
        mean_comp_len=max(32, int(round(sc.page_size / sc.data.compression_ratio))),
        spread_permille=int(sc.data.spread * 1000),
        same_ppm=int(sc.data.same_filled * 1e6), huge_ppm=int(sc.data.incompressible * 1e6),
        patterns=tuple(sc.data.patterns), debug=debug_bits(sc),
        zs_flags=sum(ZS_FLAG_NAMES[f] for f in variant.zsmalloc),
        alloc_start=alloc_start(sc), n_kills=len(replay.due_ms) if replay else 0)


def check_resources(groups: list[tuple[Scenario, int, ReplayPlan | None]]) -> None:
    """Refuse, before anything is created, groups (scenario, worker count, replay) whose arenas
    do not fit this machine's /dev/shm and available memory."""
    need = sum(layout.build_layout(geometry(sc, sc.variants[0], n, replay)).size
               for sc, n, replay in groups)
    shm_free = shutil.disk_usage("/dev/shm").free
    avail = shm_free
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if need > min(shm_free, avail):
        raise InputError(groups[0][0].source, "zram.disksize",
                         f"expected a scenario whose shared memory fits this machine: it needs "
                         f"{need / 2**20:,.0f} MiB, /dev/shm has {shm_free / 2**20:,.0f} MiB free "
                         f"and {avail / 2**20:,.0f} MiB of memory is available")
