"""The resolved scenario: frozen, checked values that the rest of emul reads.

emul.config.scenario turns a scenario file into these (sizes in bytes, CPUs as numbers, caps in
slots); nothing here validates, so a Scenario built by hand (tests, cli soak) is taken as is.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DataSpec",
    "Experiment",
    "GcSpec",
    "PAGE_SIZES",
    "ProcessSpec",
    "ReclaimSpec",
    "Scenario",
    "VariantSpec",
    "WorkerSpec",
    "WorkersSpec",
    "ZramSpec",
]

PAGE_SIZES: tuple[int, ...] = (4096, 16384)


class Experiment(str, enum.Enum):
    """What the measured phase does. Add members here as experiments are written."""

    UNMAP = "unmap"      # the killer unmaps the processes' VMAs
    SWAPIN = "swapin"    # a swap-in worker faults every swapped page back in
    MIXED = "mixed"      # both at once: the killer unmaps the victims, swap-in faults the apps


@dataclass(frozen=True)
class ZramSpec:
    disksize: int                      # bytes, a multiple of the page size
    alloc_from: str = "seed"           # where swap-out starts allocating slots: seed, head, tail


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    vma: int                           # bytes, a multiple of the page size
    swapped: float                     # fraction 0..1 of the VMA's pages swapped out beforehand
    role: str = "victim"               # experiment mixed: "victim" (unmapped) or "app" (swapped in)


@dataclass(frozen=True)
class DataSpec:
    compression_ratio: float           # page_size / mean compressed size, 1..64
    spread: float                      # relative spread of compressed sizes, 0..1
    same_filled: float                 # fraction of same-filled pages
    incompressible: float              # fraction stored as huge objects
    patterns: tuple[str, ...] = ()     # if set: page k holds patterns[k % n] repeated


@dataclass(frozen=True)
class WorkerSpec:
    cpu: int
    core: str | None = None            # the emulated core class (None: the CPU's own)


@dataclass(frozen=True)
class GcSpec:
    cpus: tuple[int, ...]              # one CPU per GC worker (may repeat)
    idle_poll_ns: int = 0              # poll for work this long before sleeping (0: sleep)
    core: str | None = None
    start: str = "at-once"             # "after": the GC drains once the measured actors are done

    @property
    def count(self) -> int:
        return len(self.cpus)


@dataclass(frozen=True)
class ReclaimSpec:
    cpu: int
    vma: int                           # bytes of the background process it reclaims and refaults
    core: str | None = None


@dataclass(frozen=True)
class WorkersSpec:
    killer: WorkerSpec                 # the first killer (the only one unless killers says more)
    gc: GcSpec
    swapout: WorkerSpec
    swapin: WorkerSpec = WorkerSpec(cpu=0)
    reclaim: ReclaimSpec | None = None     # a reclaim worker cycling its own process's pages
    killers: tuple[int, ...] = ()          # CPU of each killer; victims are dealt out in turn


@dataclass(frozen=True)
class VariantSpec:
    """One freeing strategy as a run compares it: its name in the results and its settings."""

    name: str
    strategy: str
    cap_slots: int | None              # None: the strategy's default cap
    cap_bytes: int | None              # the size as written, when the cap was given as a size
    zsmalloc: tuple[str, ...] = ()     # zsmalloc variant flags (emul.kernel.zsmalloc ZS_FLAG_NAMES)
    group: str = ""                    # vary: the structural settings this variant runs with
    costs: tuple[tuple[str, float], ...] = ()   # cost overrides in ns (a sensitivity sweep)
    core: tuple[tuple[str, str], ...] = ()      # role -> emulated core class overrides
    step_work_ns: int = 0              # debug: extra physical work in every step (a slower host)


@dataclass(frozen=True)
class Scenario:
    """A whole checked scenario. ``raw`` is the mapping as written (a ``vary:`` file's whole
    mapping), kept so the results file can say what was asked for."""

    name: str
    description: str
    experiment: Experiment
    page_size: int
    repeats: int
    seed: int
    profile: str
    zram: ZramSpec
    processes: tuple[ProcessSpec, ...]
    data: DataSpec
    workers: WorkersSpec
    variants: tuple[VariantSpec, ...]
    lockstat: bool
    debug: dict[str, bool | int] = field(hash=False)
    source: str = ""                   # the file path, or the `where` given to scenario_from_dict
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)
    fallback: str = "error"            # "any": little/big on a machine of equal CPUs mean any CPU
    dilate: float = 1.0                # every target x dilate, every reported time / dilate
    base_for: str | None = None        # "replay": a base scenario emul replay fills in

    def core_of(self, role: str, variant: VariantSpec | None = None) -> str | None:
        """The emulated core class a role's workers run as (None: the CPU's own class)."""
        if variant is not None and role in dict(variant.core):
            return dict(variant.core)[role]
        w = self.workers
        spec = {"killer": w.killer, "swapin": w.swapin, "gc": w.gc, "reclaim": w.reclaim}.get(role)
        return getattr(spec, "core", None)

    @property
    def nr_slots(self) -> int:
        """Swap slots on the zram device."""
        return self.zram.disksize // self.page_size

    @property
    def pages_per_process(self) -> list[int]:
        """Pages in each process's VMA, in ``processes`` order."""
        return [p.vma // self.page_size for p in self.processes]

    @property
    def swapped_pages_per_process(self) -> list[int]:
        """Pages swapped out before the measured phase: round(swapped * pages), per process."""
        return [round(p.swapped * (p.vma // self.page_size)) for p in self.processes]

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario as JSON-safe data (sizes in bytes; ``raw`` not included)."""
        return {
            "name": self.name,
            "description": self.description,
            "experiment": self.experiment.value,
            "page_size": self.page_size,
            "repeats": self.repeats,
            "seed": self.seed,
            "profile": self.profile,
            "zram": {"disksize": self.zram.disksize, "nr_slots": self.nr_slots,
                     "alloc_from": self.zram.alloc_from},
            "processes": [
                {"name": p.name, "vma": p.vma, "swapped": p.swapped, "role": p.role,
                 "pages": n}
                for p, n in zip(self.processes, self.pages_per_process)
            ],
            "data": {
                "compression_ratio": self.data.compression_ratio,
                "spread": self.data.spread,
                "same_filled": self.data.same_filled,
                "incompressible": self.data.incompressible,
                "patterns": list(self.data.patterns),
            },
            "workers": {
                "killer": {"cpu": self.workers.killer.cpu, "cpus": list(self.workers.killers),
                           "core": self.workers.killer.core},
                "gc": {"cpus": list(self.workers.gc.cpus), "count": self.workers.gc.count,
                       "idle_poll_ns": self.workers.gc.idle_poll_ns, "core": self.workers.gc.core,
                       "start": self.workers.gc.start},
                "swapout": {"cpu": self.workers.swapout.cpu},
                "swapin": {"cpu": self.workers.swapin.cpu, "core": self.workers.swapin.core},
                "reclaim": (None if self.workers.reclaim is None else
                            {"cpu": self.workers.reclaim.cpu, "vma": self.workers.reclaim.vma,
                             "core": self.workers.reclaim.core}),
            },
            "variants": [
                {"name": v.name, "strategy": v.strategy, "cap_slots": v.cap_slots, "cap_bytes": v.cap_bytes,
                 "zsmalloc": list(v.zsmalloc), "group": v.group, "costs": dict(v.costs),
                 "core": dict(v.core), "step_work_ns": v.step_work_ns}
                for v in self.variants
            ],
            "lockstat": self.lockstat,
            "debug": dict(self.debug),
            "fallback": self.fallback,
            "dilate": self.dilate,
            "base_for": self.base_for,
            "source": self.source,
        }
