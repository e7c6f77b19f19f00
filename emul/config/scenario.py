"""Scenario files: what to emulate, on which CPUs, and which freeing strategies to compare.

A scenario is one YAML mapping. Only ``name`` is required; every other key has the default shown
in this example, which is the default scenario ``scenarios/seed-unmap.yaml``::

    name: seed-unmap                 # required; lowercase letters, digits, ".", "_", "-"
    description: ""                  # free text
    experiment: unmap                # what the measured phase does; one of: unmap
    page_size: 4K                    # 4K or 16K
    repeats: 5                       # runs per variant, 1..1000
    seed: 1                          # random seed, >= 0
    profile: rk3588-cpu2             # a known timing profile
    zram:
      disksize: 512M                 # a multiple of page_size, >= the processes' total VMA
      alloc_from: seed               # where swap-out takes its first slot: seed (a seed-chosen
                                     # slot), head (slot 0) or tail (so the slots end the device)
    processes:                       # at least one
      - name: victim                 # default "victim", then "victim2", "victim3", ...
        vma: 256M                    # a multiple of page_size
        swapped: 1.0                 # fraction of the VMA's pages swapped out beforehand, 0..1
    data:
      compression_ratio: 2.0         # page_size / mean compressed size, 1..64
      spread: 0.25                   # relative spread of compressed sizes around the mean, 0..1
      same_filled: 0.0               # fraction of same-filled pages, 0..1
      incompressible: 0.0            # fraction stored as huge objects, 0..1 (same_filled +
                                     # incompressible <= 1)
    workers:                         # cpu: a CPU number, "cpuN" or a role naming CPUs of this
                                     # machine (emul/config/topology.py, `emul topo`): little, big,
                                     # little[i], big[i], clusterK, any; a worker is pinned to
                                     # one CPU, so a role naming several gives its first CPU,
                                     # except in killer.cpu and gc.cpu: one worker per CPU
      killer:  {cpu: 0}              # cpu may be a list or "all"; count: killers (default:
                                     # one per CPU listed), victims dealt out to them in turn
      gc:      {cpu: 1, count: 1}    # count 1..(CPUs available); cpu may be a list of CPUs,
                                     # one per GC worker (count then defaults to its length);
                                     # idle_poll: 0 (e.g. 200us: poll before sleeping, so a
                                     # wake-up costs the profile's wake_up, not a futex call)
      swapout: {cpu: 0}
    variants:                        # at least one; names must be unique
      - name: sync                   # default: the strategy name
        strategy: sync               # required; a known strategy
      - name: bitmap
        strategy: bitmap
        cap: 30000                   # GC cap: a slot count, or a size such as 64M (rounded
                                     # down to whole pages); default null = strategy default
        zsmalloc: default            # or v6 (zs_free without pool->lock, zspage pages freed
                                     # after the class lock), or a list: [class_in_handle,
                                     # free_unlocked]
    fallback: error                  # or any: on a machine whose CPUs are all alike, little
                                     # and big mean every CPU (little[i]: the i-th CPU)
                                     # instead of being refused
    lockstat: false                  # collect per-lock statistics
    debug: {}                        # test switches: name -> true/false or a whole number

Sizes are written ``256M``, ``1G``, ``4K``, ``64MiB``, ``1.5G`` (binary units) or as a number of
bytes; ``zram.disksize`` and ``vma`` may be at most 1T. Unknown keys are errors. A bad file
gives one line naming the file, the key and what was expected, e.g.
``scenarios/x.yaml: variants[1].cap: expected a slot count or a size like 64M, got "lots"``.
"""
from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from emul.errors import InputError
from emul.config.sizes import (SizeError, classify_count_or_size, format_size, show_value,
    size_bytes, slots_from_bytes)
from emul.config.topology import Topology, machine_topology, resolve_cpus

__all__ = [
    "DataSpec",
    "Experiment",
    "GcSpec",
    "PAGE_SIZES",
    "ProcessSpec",
    "Scenario",
    "VariantSpec",
    "WorkerSpec",
    "WorkersSpec",
    "ZramSpec",
    "load_scenario",
    "scenario_from_dict",
]

PAGE_SIZES: tuple[int, ...] = (4096, 16384)
MAX_DISKSIZE = 1 << 40          # 1T: keeps per-slot tables a sane size
MAX_FILE_BYTES = 1 << 20        # a scenario file is a few hundred bytes; refuse anything silly
MAX_SEED = (1 << 64) - 1
_INT64 = (-(1 << 63), (1 << 63) - 1)

_SCENARIO_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_ITEM_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+= -]{0,99}")
_CPU_RE = re.compile(r"cpu([0-9]{1,6})", re.IGNORECASE)
_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")


class Experiment(str, enum.Enum):
    """What the measured phase does. Add members here as experiments are written."""

    UNMAP = "unmap"      # the killer unmaps the processes' VMAs
    SWAPIN = "swapin"    # a swap-in worker faults every swapped page back in
    MIXED = "mixed"      # both at once: the killer unmaps the victims, swap-in faults the apps


# --------------------------------------------------------------------------------------------
# Resolved scenario (what the rest of emul uses)
# --------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class GcSpec:
    cpus: tuple[int, ...]              # one CPU per GC worker (may repeat)
    idle_poll_ns: int = 0              # poll for work this long before sleeping (0: sleep)

    @property
    def count(self) -> int:
        return len(self.cpus)


@dataclass(frozen=True)
class ReclaimSpec:
    cpu: int
    vma: int                           # bytes of the background process it reclaims and refaults


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
    name: str
    strategy: str
    cap_slots: int | None              # None: the strategy's default cap
    cap_bytes: int | None              # the size as written, when the cap was given as a size
    zsmalloc: tuple[str, ...] = ()     # zsmalloc variant flags (emul.kernel.zsmalloc ZS_FLAG_NAMES)
    group: str = ""                    # vary: the structural settings this variant runs with


@dataclass(frozen=True)
class Scenario:
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
                "killer": {"cpu": self.workers.killer.cpu, "cpus": list(self.workers.killers)},
                "gc": {"cpus": list(self.workers.gc.cpus), "count": self.workers.gc.count,
                       "idle_poll_ns": self.workers.gc.idle_poll_ns},
                "swapout": {"cpu": self.workers.swapout.cpu},
                "swapin": {"cpu": self.workers.swapin.cpu},
                "reclaim": (None if self.workers.reclaim is None else
                            {"cpu": self.workers.reclaim.cpu, "vma": self.workers.reclaim.vma}),
            },
            "variants": [
                {"name": v.name, "strategy": v.strategy, "cap_slots": v.cap_slots, "cap_bytes": v.cap_bytes,
                 "zsmalloc": list(v.zsmalloc), "group": v.group}
                for v in self.variants
            ],
            "lockstat": self.lockstat,
            "debug": dict(self.debug),
            "fallback": self.fallback,
            "source": self.source,
        }


# --------------------------------------------------------------------------------------------
# Field validators. Each raises ValueError("expected ..., got ...") and nothing else.
# --------------------------------------------------------------------------------------------


def _ctx(info: ValidationInfo, name: str) -> Any:
    context = info.context
    return context.get(name) if isinstance(context, dict) else None


def _one_of(names: Iterable[str]) -> str:
    names = sorted(names)
    return ", ".join(names) if names else "none are available"


def _v_scenario_name(value: Any) -> str:
    if isinstance(value, str) and _SCENARIO_NAME_RE.fullmatch(value):
        return value
    raise ValueError(
        'expected a name of lowercase letters, digits, ".", "_" and "-" (at most 100, starting with '
        f"a letter or digit), got {show_value(value)}"
    )


def _v_item_name(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and _ITEM_NAME_RE.fullmatch(value):
        return value
    raise ValueError(
        'expected a name of letters, digits, spaces, ".", "_", "+", "=" and "-" (at most 100, starting with '
        f"a letter or digit), got {show_value(value)}"
    )


def _v_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a text string, got {show_value(value)}")


def _v_patterns(value: Any) -> tuple[str, ...]:
    if value == ():
        return ()
    if (isinstance(value, list) and 1 <= len(value) <= 16
            and all(isinstance(v, str) and 1 <= len(v.encode()) <= 256 for v in value)):
        return tuple(value)
    raise ValueError("expected a list of 1 to 16 text patterns of 1 to 256 bytes, "
                     f"got {show_value(value)}")


def _v_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {show_value(value)}")


def _v_int(lo: int, hi: int | None) -> Any:
    def check(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and lo <= value and (hi is None or value <= hi):
            return value
        span = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"expected a whole number {span}, got {show_value(value)}")

    return check


def _v_number(lo: float, hi: float, what: str = "a number") -> Any:
    def check(value: Any) -> float:
        # Compare before converting: a huge int compares fine but would overflow float().
        if isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi:
            return float(value)
        raise ValueError(f"expected {what} from {lo:g} to {hi:g}, got {show_value(value)}")

    return check


def _v_size(maximum: int) -> Any:
    def check(value: Any) -> int:
        return size_bytes(value, minimum=1, maximum=maximum)   # SizeError is a ValueError

    return check


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s)\s*$")
_DURATION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def _v_duration(value: Any) -> int:
    """A duration as nanoseconds: 0, a whole number of ns, or "200us", "1.5ms", "2s" (<= 10 s)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**10:
        return value
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m:
        ns = int(float(m.group(1)) * _DURATION_NS[m.group(2)])
        if ns <= 10**10:
            return ns
    raise ValueError(f'expected a duration such as 200us, 1ms or 0 (at most 10s), got {show_value(value)}')


def _v_page_size(value: Any) -> int:
    try:
        nbytes = size_bytes(value)
    except SizeError:
        nbytes = None
    if nbytes in PAGE_SIZES:
        return nbytes
    raise ValueError(f"expected 4K or 16K, got {show_value(value)}")


def _v_experiment(value: Any) -> Experiment:
    for member in Experiment:
        if value == member.value and isinstance(value, str):
            return member
    known = _one_of(m.value for m in Experiment)
    raise ValueError(f"expected an experiment (one of: {known}), got {show_value(value)}")


def _v_profile(value: Any, info: ValidationInfo) -> str:
    known = _ctx(info, "profiles")
    if isinstance(value, str) and (known is None or value in known):
        return value
    raise ValueError(f"expected a known profile (one of: {_one_of(known or ())}), got {show_value(value)}")


def _v_strategy(value: Any, info: ValidationInfo) -> str:
    known = _ctx(info, "strategies")
    if isinstance(value, str) and (known is None or value in known):
        return value
    raise ValueError(f"expected a known strategy (one of: {_one_of(known or ())}), got {show_value(value)}")


ZSMALLOC_FLAGS = ("class_in_handle", "free_unlocked")   # see emul/kernel/zsmalloc.py
ZSMALLOC_SETS = {"default": (), "v6": ZSMALLOC_FLAGS}


def _v_zsmalloc(value: Any) -> tuple[str, ...]:
    """zsmalloc variant: "default", "v6" (both of v6's changes), or a list of flag names."""
    if isinstance(value, str) and value in ZSMALLOC_SETS:
        return ZSMALLOC_SETS[value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v in ZSMALLOC_FLAGS for v in value):
        return tuple(dict.fromkeys(value))
    raise ValueError(f"expected default, v6 or a list of: {', '.join(ZSMALLOC_FLAGS)}; "
                     f"got {show_value(value)}")


def _v_optional_count(value: Any) -> int | None:
    return None if value is None else _v_int(1, 64)(value)


def _v_cpus(value: Any, info: ValidationInfo) -> tuple[int, ...]:
    """The CPUs a ``cpu:`` value names: a number, "cpuN" or a role (emul.topology.resolve_cpus),
    checked against the context's topology and allowed CPUs."""
    topo, available = _ctx(info, "topology"), _ctx(info, "cpus")
    if topo is None and available is None:     # validated without a context: numbers, unchecked
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return (value,)
        if isinstance(value, str) and (match := _CPU_RE.fullmatch(value.strip())):
            return (int(match[1]),)
        raise ValueError(f'expected a CPU number like 0 or "cpu0", got {show_value(value)}')
    if topo is None:
        topo = Topology.flat(available)
    if available is None:
        available = topo.online
    return tuple(resolve_cpus(value, topo, available, bool(_ctx(info, "fallback_any"))))


def _v_cpu(value: Any, info: ValidationInfo) -> int:
    """One worker's CPU. Workers are pinned to exactly one CPU, so a role naming several (big,
    cluster1, any) gives its first: the choice is stable and visible in the resolved scenario."""
    return _v_cpus(value, info)[0]


def _v_fallback(value: Any) -> str:
    if value in ("any", "error") and isinstance(value, str):
        return value
    raise ValueError(f"expected any or error, got {show_value(value)}")


def _v_gc_count(value: Any, info: ValidationInfo) -> int | None:
    if value is None:
        return None
    available = _ctx(info, "cpus")
    hi = len(available) if available is not None else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1 and (hi is None or value <= hi):
        return value
    span = f"from 1 to {hi} (the CPUs available)" if hi is not None else ">= 1"
    raise ValueError(f"expected a whole number {span}, got {show_value(value)}")


def _v_cap(value: Any) -> tuple[Literal["slots", "bytes"], int] | None:
    if value is None:
        return None
    return classify_count_or_size(value)                     # SizeError is a ValueError


def _v_debug_key(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise ValueError(f"expected a switch name (text), got {show_value(value)}")


def _v_debug_value(value: Any) -> bool | int:
    if isinstance(value, bool) or (isinstance(value, int) and _INT64[0] <= value <= _INT64[1]):
        return value
    raise ValueError(f"expected true, false or a whole number, got {show_value(value)}")


ScenarioName = Annotated[str, PlainValidator(_v_scenario_name)]
ItemName = Annotated[Union[str, None], PlainValidator(_v_item_name)]
Text = Annotated[str, PlainValidator(_v_text)]
Flag = Annotated[bool, PlainValidator(_v_bool)]
Fraction01 = Annotated[float, PlainValidator(_v_number(0.0, 1.0, "a fraction"))]
Cpu = Annotated[int, PlainValidator(_v_cpu)]
CpuSet = Annotated[tuple[int, ...], PlainValidator(_v_cpus)]   # killer/gc: one worker per CPU
DebugKey = Annotated[str, PlainValidator(_v_debug_key)]
DebugValue = Annotated[Union[bool, int], PlainValidator(_v_debug_value)]
Cap = Annotated[Any, PlainValidator(_v_cap)]


# --------------------------------------------------------------------------------------------
# Pydantic models of the file's shape (field order = the documented key order)
# --------------------------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class _ZramIn(_In):
    disksize: Annotated[int, PlainValidator(_v_size(MAX_DISKSIZE))] = "512M"  # type: ignore[assignment]
    alloc_from: Literal["seed", "head", "tail"] = "seed"


class _ProcessIn(_In):
    name: ItemName = None
    vma: Annotated[int, PlainValidator(_v_size(MAX_DISKSIZE))] = "256M"  # type: ignore[assignment]
    swapped: Fraction01 = 1.0
    role: Literal["victim", "app"] = "victim"


class _DataIn(_In):
    compression_ratio: Annotated[float, PlainValidator(_v_number(1.0, 64.0))] = 2.0
    spread: Fraction01 = 0.25
    same_filled: Fraction01 = 0.0
    incompressible: Fraction01 = 0.0
    patterns: Annotated[tuple[str, ...], PlainValidator(_v_patterns)] = ()

    @model_validator(mode="after")
    def _fractions_add_up(self) -> _DataIn:
        if self.same_filled + self.incompressible > 1.0:
            raise ValueError(
                "expected same_filled + incompressible <= 1, "
                f"got {self.same_filled:g} + {self.incompressible:g}"
            )
        return self


class _KillerIn(_In):
    cpu: Annotated[list[CpuSet], Field(min_length=1)] = 0  # type: ignore[assignment]
    count: Annotated[Union[int, None], PlainValidator(_v_optional_count)] = None

    @field_validator("cpu", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        # "all" (= any) and other roles resolve to their CPUs in _v_cpus: one killer per CPU
        return value if isinstance(value, list) else [value]


class _GcIn(_In):
    cpu: Annotated[list[CpuSet], Field(min_length=1)] = 1  # type: ignore[assignment]
    count: Annotated[Union[int, None], PlainValidator(_v_gc_count)] = None
    idle_poll: Annotated[int, PlainValidator(_v_duration)] = 0

    @field_validator("cpu", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return value if isinstance(value, list) else [value]


class _SwapoutIn(_In):
    cpu: Cpu = 0


class _ReclaimIn(_In):
    cpu: Cpu = 0
    vma: Annotated[int, PlainValidator(_v_size(MAX_DISKSIZE))] = "4M"  # type: ignore[assignment]


class _WorkersIn(_In):
    killer: _KillerIn = Field(default_factory=dict)  # type: ignore[arg-type]
    gc: _GcIn = Field(default_factory=dict)  # type: ignore[arg-type]
    swapout: _SwapoutIn = Field(default_factory=dict)  # type: ignore[arg-type]
    swapin: _SwapoutIn = Field(default_factory=dict)  # type: ignore[arg-type]
    reclaim: Union[_ReclaimIn, None] = None


class _VariantIn(_In):
    name: ItemName = None
    strategy: Annotated[str, PlainValidator(_v_strategy)]
    cap: Cap = None
    zsmalloc: Annotated[tuple[str, ...], PlainValidator(_v_zsmalloc)] = ()


class _ScenarioIn(_In):
    name: ScenarioName
    description: Text = ""
    experiment: Annotated[Experiment, PlainValidator(_v_experiment)] = "unmap"  # type: ignore[assignment]
    page_size: Annotated[int, PlainValidator(_v_page_size)] = "4K"  # type: ignore[assignment]
    repeats: Annotated[int, PlainValidator(_v_int(1, 1000))] = 5
    seed: Annotated[int, PlainValidator(_v_int(0, MAX_SEED))] = 1
    profile: Annotated[str, PlainValidator(_v_profile)] = "rk3588-cpu2"
    zram: _ZramIn = Field(default_factory=dict)  # type: ignore[arg-type]
    processes: Annotated[list[_ProcessIn], Field(min_length=1)] = [{}]  # type: ignore[assignment]
    data: _DataIn = Field(default_factory=dict)  # type: ignore[arg-type]
    workers: _WorkersIn = Field(default_factory=dict)  # type: ignore[arg-type]
    fallback: Annotated[str, PlainValidator(_v_fallback)] = "error"
    variants: Annotated[list[_VariantIn], Field(min_length=1)] = [  # type: ignore[assignment]
        {"name": "sync", "strategy": "sync"},
        {"name": "bitmap", "strategy": "bitmap", "cap": 30000},
    ]
    lockstat: Flag = False
    debug: dict[DebugKey, DebugValue] = Field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Errors: pydantic's (loc, type) -> "key.path: expected ..., got ..." in document order
# --------------------------------------------------------------------------------------------

Loc = tuple[Union[str, int], ...]
_ABSENT = object()
_SCALAR_OR_LIST: frozenset[Loc] = frozenset({("workers", "gc", "cpu"), ("workers", "killer", "cpu")})   # see _GcIn._listify


def _place(raw: Any, loc: Loc) -> tuple[str, tuple[int, ...]]:
    """The dotted key path for ``loc`` (``variants[1].cap``) and a sort key in document order.

    Walks the document as written: mapping keys sort by their position in the file, keys that
    are absent (defaults, missing keys) after the present ones. The index pydantic adds when a
    scalar is accepted as a one-item list (``workers.gc.cpu: 1``) is dropped.
    """
    path, order = "", []
    node: Any = raw
    for depth, comp in enumerate(loc):
        if isinstance(node, dict) and comp in node:
            order.append(list(node).index(comp))
            node = node[comp]
        elif isinstance(node, list) and isinstance(comp, int) and 0 <= comp < len(node):
            order.append(comp)
            path += f"[{comp}]"
            node = node[comp]
            continue
        elif comp == "[key]" or (isinstance(comp, int) and tuple(loc[:depth]) in _SCALAR_OR_LIST):
            continue                        # pydantic's dict-key marker; a scalar taken as a one-item list
        else:
            order.append(len(node) + 1 if isinstance(node, (dict, list)) else 1 << 30)
            node = _ABSENT
            if isinstance(comp, int):
                path += f"[{comp}]"
                continue
        name = comp if isinstance(comp, str) and _KEY_RE.fullmatch(comp) else show_value(comp)
        path += f".{name}" if path else name
    return path, tuple(order)


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The input model that validates the mapping at ``loc``, if any."""
    tp: Any = _ScenarioIn
    for comp in loc:
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(comp, str) and comp in tp.model_fields:
            tp = tp.model_fields[comp].annotation
        elif isinstance(comp, int) and get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return None
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _message(err: Mapping[str, Any]) -> tuple[Loc, str]:
    kind, loc, value = err["type"], tuple(err["loc"]), err.get("input")
    if kind in ("extra_forbidden", "invalid_key"):
        if kind == "invalid_key":
            loc = loc[:-1] + (value,)
        model = _model_at(loc[:-1])
        allowed = f" (expected one of: {', '.join(model.model_fields)})" if model else ""
        return loc, f"unknown key{allowed}"
    if kind == "missing":
        return loc, "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return loc, f"expected a mapping, got {show_value(value)}"
    if kind in ("list_type", "tuple_type"):
        return loc, f"expected a list, got {show_value(value)}"
    if kind == "too_short":
        least = (err.get("ctx") or {}).get("min_length", 1)
        return loc, f"expected at least {least} entr{'y' if least == 1 else 'ies'}, got an empty list"
    msg = str(err.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
            break
    else:
        msg = f"{msg[:1].lower()}{msg[1:]}, got {show_value(value)}"
    return loc, msg


def _raise_first(where: str, raw: Any, problems: list[tuple[Loc, str]]) -> None:
    if not problems:
        return
    placed = sorted((_place(raw, loc)[1], _place(raw, loc)[0], msg) for loc, msg in problems)
    _, key, msg = placed[0]
    if len(placed) > 1:
        msg += f" (and {len(placed) - 1} more)"
    raise InputError(where, key or None, msg)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _read_yaml(where: str, path: str | os.PathLike[str]) -> Any:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InputError(where, None, "no such file") from None
    except IsADirectoryError:
        raise InputError(where, None, "is a directory, expected a scenario file") from None
    except PermissionError:
        raise InputError(where, None, "permission denied") from None
    except OSError as err:
        raise InputError(where, None, f"cannot read the file ({err.strerror or err})") from None
    if len(data) > MAX_FILE_BYTES:
        raise InputError(where, None, f"too large for a scenario file (over {format_size(MAX_FILE_BYTES)})")
    try:
        return yaml.safe_load(data)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "syntax error"
        if err.context and err.problem and err.problem.startswith("but "):
            problem = f"{err.context}, {err.problem}"
        if mark is not None:
            at = f"line {mark.line + 1}, column {mark.column + 1}"
            raise InputError(where, at, f"invalid YAML: {problem}") from None
        raise InputError(where, None, f"invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as err:
        raise InputError(where, None, f"not readable as text at byte {err.position} ({err.reason})") from None
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise InputError(where, None, f"invalid YAML: {first}") from None
    except RecursionError:
        raise InputError(where, None, "invalid YAML: nested too deeply") from None
    except Exception as err:  # noqa: BLE001 - a constructor choked on a value (e.g. 2024-13-45, a 5000-digit int)
        reason = str(err).split(";")[0].strip() or type(err).__name__
        raise InputError(where, None, f"invalid YAML: cannot read a value ({reason})") from None


def load_scenario(
    path: str | os.PathLike[str], *, cpus: Iterable[int], strategies: Iterable[str], profiles: Iterable[str],
    topology: Topology | None = None,
) -> Scenario:
    """Read and check a scenario file; every problem is an :class:`InputError` naming file and key.

    ``cpus`` are the CPUs the run may use; ``topology`` the machine's (None: read this one's),
    against which CPU roles such as ``big[0]`` resolve."""
    where = os.fsdecode(os.fspath(path))
    data = _read_yaml(where, path)
    return scenario_from_dict(data, where=where, cpus=cpus, strategies=strategies, profiles=profiles,
                              topology=topology)


def scenario_from_dict(
    data: Any, *, where: str, cpus: Iterable[int], strategies: Iterable[str], profiles: Iterable[str],
    topology: Topology | None = None,
) -> Scenario:
    """Check an already-loaded scenario mapping (``where`` names it in errors)."""
    if not isinstance(data, dict):
        got = "an empty document" if data is None else show_value(data)
        raise InputError(where, None, f"expected a mapping of scenario keys (name, experiment, ...), got {got}")
    allowed = frozenset(cpus)
    context = {
        "cpus": allowed,
        "strategies": frozenset(strategies),
        "profiles": frozenset(profiles),
        "topology": topology if topology is not None else machine_topology(allowed),
        # read before validation: the workers' cpu: values depend on it (a bad value is
        # reported by the fallback field itself)
        "fallback_any": isinstance(data.get("fallback"), str) and data.get("fallback") == "any",
    }
    try:
        model = _ScenarioIn.model_validate(data, context=context)
    except ValidationError as err:
        _raise_first(where, data, [_message(e) for e in err.errors(include_url=False)])
        raise  # pragma: no cover - _raise_first always raises for a non-empty error list
    return _resolve(model, where=where, raw=data, available=context["cpus"])


def _resolve(model: _ScenarioIn, *, where: str, raw: dict[str, Any], available: frozenset[int]) -> Scenario:
    """Checks that span several keys, then the frozen :class:`Scenario`."""
    problems: list[tuple[Loc, str]] = []
    page = model.page_size
    page_text = format_size(page)

    disksize = model.zram.disksize
    if disksize % page:
        problems.append((
            ("zram", "disksize"),
            f"expected a multiple of the page size ({page_text}), got {_got(raw, ('zram', 'disksize'), disksize)}",
        ))
    # the device must hold what is swapped out, plus the reclaim worker's process at worst
    swapped = sum(round(p.swapped * (p.vma // page)) * page for p in model.processes)
    reclaim_vma = model.workers.reclaim.vma if model.workers.reclaim is not None else 0
    if disksize < swapped + reclaim_vma:
        extra = f" plus the reclaim worker's {format_size(reclaim_vma)}" if reclaim_vma else ""
        problems.append((
            ("zram", "disksize"),
            f"expected room for the swapped-out pages ({format_size(swapped)}{extra}), "
            f"got {_got(raw, ('zram', 'disksize'), disksize)}",
        ))

    processes: list[ProcessSpec] = []
    seen: dict[str, int] = {}
    for i, p in enumerate(model.processes):
        name = p.name if p.name is not None else ("victim" if i == 0 else f"victim{i + 1}")
        if p.vma % page:
            problems.append((
                ("processes", i, "vma"),
                f"expected a multiple of the page size ({page_text}), got {_got(raw, ('processes', i, 'vma'), p.vma)}",
            ))
        if name in seen:
            problems.append((
                ("processes", i, "name"),
                f'process name "{name}" is already used by processes[{seen[name]}]; names must be unique',
            ))
        seen.setdefault(name, i)
        processes.append(ProcessSpec(name=name, vma=p.vma, swapped=p.swapped, role=p.role))

    gc = model.workers.gc
    gc_cpus = tuple(c for cpus in gc.cpu for c in cpus)
    written = raw.get("workers") if isinstance(raw.get("workers"), dict) else {}
    written = written.get("gc") if isinstance(written.get("gc"), dict) else {}
    if gc.count is not None and (len(gc_cpus) == 1 or not isinstance(written.get("cpu", 1), list)):
        # one CPU, or one role (gc: {cpu: big, count: 2}): the count takes its CPUs in turn
        gc_cpus = tuple(gc_cpus[k % len(gc_cpus)] for k in range(gc.count))
    elif gc.count is not None and gc.count != len(gc_cpus):
        problems.append((
            ("workers", "gc", "count"),
            f"expected {len(gc_cpus)} (one GC worker per CPU listed in workers.gc.cpu), got {gc.count}",
        ))
    elif gc.count is None and len(gc_cpus) > len(available):
        problems.append((
            ("workers", "gc", "cpu"),
            f"expected at most {len(available)} CPUs (the CPUs available), got a list of {len(gc_cpus)}",
        ))

    kc = model.workers.killer
    listed = [c for cpus in kc.cpu for c in cpus]
    killer_cpus = tuple(listed[k % len(listed)] for k in range(kc.count or len(listed)))

    variants: list[VariantSpec] = []
    seen = {}
    for i, v in enumerate(model.variants):
        name = v.name if v.name is not None else v.strategy
        if name in seen:
            problems.append((
                ("variants", i, "name"),
                f'variant name "{name}" is already used by variants[{seen[name]}]; names must be unique',
            ))
        seen.setdefault(name, i)
        cap_slots: int | None = None
        cap_bytes: int | None = None
        if v.cap is not None:
            kind, n = v.cap
            if kind == "slots":
                cap_slots = n
            else:
                cap_bytes = n
                try:
                    cap_slots = slots_from_bytes(n, page_size=page, got=_got(raw, ("variants", i, "cap"), n))
                except SizeError as err:
                    problems.append((("variants", i, "cap"), err.message))
        variants.append(VariantSpec(name=name, strategy=v.strategy, cap_slots=cap_slots, cap_bytes=cap_bytes,
                                    zsmalloc=v.zsmalloc))

    _raise_first(where, raw, problems)

    return Scenario(
        name=model.name,
        description=model.description,
        experiment=model.experiment,
        page_size=page,
        repeats=model.repeats,
        seed=model.seed,
        profile=model.profile,
        zram=ZramSpec(disksize=disksize, alloc_from=model.zram.alloc_from),
        processes=tuple(processes),
        data=DataSpec(
            compression_ratio=model.data.compression_ratio,
            spread=model.data.spread,
            same_filled=model.data.same_filled,
            incompressible=model.data.incompressible,
            patterns=model.data.patterns,
        ),
        workers=WorkersSpec(
            killer=WorkerSpec(cpu=killer_cpus[0]),
            killers=killer_cpus,
            gc=GcSpec(cpus=gc_cpus, idle_poll_ns=model.workers.gc.idle_poll),
            swapout=WorkerSpec(cpu=model.workers.swapout.cpu),
            swapin=WorkerSpec(cpu=model.workers.swapin.cpu),
            reclaim=(None if model.workers.reclaim is None else
                     ReclaimSpec(cpu=model.workers.reclaim.cpu,
                                 vma=model.workers.reclaim.vma // page * page)),
        ),
        variants=tuple(variants),
        lockstat=model.lockstat,
        debug=dict(model.debug),
        source=where,
        raw=raw,
        fallback=model.fallback,
    )


def _got(raw: Any, loc: Loc, nbytes: int) -> str:
    """A size as the user wrote it at ``loc``, or spelled out if it came from a default."""
    node = raw
    for comp in loc:
        if isinstance(node, dict) and comp in node:
            node = node[comp]
        elif isinstance(node, list) and isinstance(comp, int) and 0 <= comp < len(node):
            node = node[comp]
        else:
            return format_size(nbytes)
    return show_value(node)


# --------------------------------------------------------------------------------------------
# vary: matrices of scenarios
# --------------------------------------------------------------------------------------------

# Keys a scenario may vary. Variant keys multiply the variants of one run; structural keys change
# the arena or the workers, so each combination of them runs as its own group of workers.
VARIANT_KEYS = ("strategy", "cap", "zsmalloc")
STRUCTURAL_KEYS: dict[str, tuple[str, ...]] = {
    "page_size": ("page_size",),
    "disksize": ("zram", "disksize"),
    "profile": ("profile",),
    "gc_cpu": ("workers", "gc", "cpu"),
    "killers": ("workers", "killer", "count"),
}
VARY_KEYS = VARIANT_KEYS + tuple(STRUCTURAL_KEYS)


def _vary_label(key: str, value: Any) -> str:
    short = {"page_size": "page", "disksize": "disk", "gc_cpu": "gc_cpu", "zsmalloc": "zs"}
    text = value if isinstance(value, (str, int)) else "+".join(map(str, value))
    return f"{short.get(key, key)}={text}"


def _set_path(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        nxt = doc.get(key)
        if not isinstance(nxt, dict):
            nxt = {}
            doc[key] = nxt
        doc = nxt
    doc[path[-1]] = value


def expand_vary(data: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """A scenario mapping with ``vary:`` as one mapping per structural group, each holding the
    group's variants (the cartesian product of every varied key); without ``vary:``, itself.

    Returns (group label, mapping) pairs; variant names carry the varied values, so they are
    unique across groups.
    """
    import copy
    import itertools

    if not isinstance(data, dict) or "vary" not in data:
        return [("", data)]
    vary = data["vary"]
    if not isinstance(vary, dict) or not vary:
        raise InputError(where, "vary", f"expected a mapping of keys to lists of values, got {show_value(vary)}")
    for key, values in vary.items():
        if key not in VARY_KEYS:    # quoted: a key may hold anything, newlines included
            raise InputError(where, "vary", f"expected keys from: {', '.join(VARY_KEYS)}; "
                             f"got {show_value(key)}")
        if not isinstance(values, list) or not values:
            raise InputError(where, f"vary.{key}", f"expected a non-empty list of values, got {show_value(values)}")
        if len(values) > 64:
            raise InputError(where, f"vary.{key}", f"expected at most 64 values, got {len(values)}")
    base = {k: v for k, v in data.items() if k != "vary"}
    structural = [k for k in vary if k in STRUCTURAL_KEYS]
    base_variants = base.get("variants")
    if "strategy" in vary:
        base_variants = [{"strategy": s} for s in vary["strategy"]]
    elif not isinstance(base_variants, list) or not base_variants:
        base_variants = [{"name": "sync", "strategy": "sync"}, {"name": "bitmap", "strategy": "bitmap"}]
    variant_axes = [k for k in ("cap", "zsmalloc") if k in vary]
    groups: list[tuple[str, dict[str, Any]]] = []
    combos = list(itertools.product(*(vary[k] for k in structural))) or [()]
    if len(combos) * len(base_variants) * max(1, len(list(itertools.product(*(vary[k] for k in variant_axes))))) > 256:
        raise InputError(where, "vary", "expected at most 256 variants in the product")
    for combo in combos:
        doc = copy.deepcopy(base)
        labels = []
        for key, value in zip(structural, combo):
            _set_path(doc, STRUCTURAL_KEYS[key], value)
            labels.append(_vary_label(key, value))
        group = " ".join(labels)
        variants = []
        for bv in base_variants:
            if not isinstance(bv, dict):
                variants.append(bv)   # scenario_from_dict reports it
                continue
            # a cap means nothing to sync: it gets the other axes only
            axes = [k for k in variant_axes if not (k == "cap" and bv.get("strategy") == "sync")]
            for vcombo in itertools.product(*(vary[k] for k in axes)):
                v = dict(bv)
                name = str(v.get("name") or v.get("strategy"))
                for key, value in zip(axes, vcombo):
                    v[key] = value
                    name += " " + _vary_label(key, value)
                v["name"] = f"{name} {group}".strip()
                variants.append(v)
        doc["variants"] = variants
        groups.append((group, doc))
    return groups


def load_matrix(
    path: str | os.PathLike[str], *, cpus: Iterable[int], strategies: Iterable[str], profiles: Iterable[str],
    topology: Topology | None = None,
) -> list[Scenario]:
    """Read a scenario file that may ``vary:`` keys: one :class:`Scenario` per structural group
    (variants tagged with their group). A file without ``vary:`` gives a list of one."""
    import dataclasses

    where = os.fsdecode(os.fspath(path))
    data = _read_yaml(where, path)
    out = []
    cpus, strategies, profiles = list(cpus), list(strategies), list(profiles)
    if topology is None:   # read once: every group pins against the same machine
        topology = machine_topology(cpus)
    for group, doc in expand_vary(data, where):
        sc = scenario_from_dict(doc, where=f"{where} (vary: {group})" if group else where,
                                cpus=cpus, strategies=strategies, profiles=profiles, topology=topology)
        if group:
            sc = dataclasses.replace(
                sc, source=where, raw=data,
                variants=tuple(dataclasses.replace(v, group=group) for v in sc.variants))
        out.append(sc)
    return out
