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
                                     # wake-up costs the profile's wake_up, not a futex call);
                                     # start: at-once (default) or after: the GC drains only
                                     # once the measured actors are done (the drain alone)
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
    base_for: null                   # replay: a base for `emul replay` (its victims are
                                     # placeholders the trace replaces); emul run refuses it

Sizes are written ``256M``, ``1G``, ``4K``, ``64MiB``, ``1.5G`` (binary units) or as a number of
bytes; ``zram.disksize`` and ``vma`` may be at most 1T. Unknown keys are errors. A bad file
gives one line naming the file, the key and what was expected, e.g.
``scenarios/x.yaml: variants[1].cap: expected a slot count or a size like 64M, got "lots"``.

Here: the file's shape (pydantic models) and the checks that span keys. What each key may hold
is in emul/config/fields.py, the checked result in emul/config/spec.py, and ``vary:`` matrices
in emul/config/vary.py.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emul.config.fields import (
    Cap,
    CoreClass,
    CoreOverrides,
    CostOverrides,
    Cpu,
    CpuSet,
    DebugKey,
    DebugValue,
    Dilation,
    Duration,
    ExperimentName,
    Fallback,
    Flag,
    Fraction01,
    GcCount,
    ItemName,
    KillerCount,
    PageSize,
    Patterns,
    ProfileName,
    Ratio,
    Repeats,
    ScenarioName,
    Seed,
    Size,
    StepWork,
    StrategyName,
    Text,
    Zsmalloc,
)
from emul.config.sizes import SizeError, format_size, show_value, slots_from_bytes

# The resolved scenario lives in emul.config.spec; its names are re-exported here, where the
# rest of emul has always imported them.
from emul.config.spec import (
    PAGE_SIZES,
    DataSpec,
    Experiment,
    GcSpec,
    ProcessSpec,
    ReclaimSpec,
    Scenario,
    VariantSpec,
    WorkerSpec,
    WorkersSpec,
    ZramSpec,
)
from emul.config.topology import Topology, machine_topology
from emul.config.yamlread import MAX_SHOWN, read_yaml_file
from emul.errors import InputError

MAX_FILE_BYTES = 1 << 20        # a scenario file is a few hundred bytes; refuse anything silly
_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")


# --------------------------------------------------------------------------------------------
# Pydantic models of the file's shape (field order = the documented key order)
# --------------------------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class _ZramIn(_In):
    disksize: Size = "512M"  # type: ignore[assignment]
    alloc_from: Literal["seed", "head", "tail"] = "seed"


class _ProcessIn(_In):
    name: ItemName = None
    vma: Size = "256M"  # type: ignore[assignment]
    swapped: Fraction01 = 1.0
    role: Literal["victim", "app"] = "victim"


class _DataIn(_In):
    compression_ratio: Ratio = 2.0
    spread: Fraction01 = 0.25
    same_filled: Fraction01 = 0.0
    incompressible: Fraction01 = 0.0
    patterns: Patterns = ()

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
    count: KillerCount = None
    core: CoreClass = None

    @field_validator("cpu", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        # "all" (= any) and other roles resolve to their CPUs in fields._v_cpus: one killer per CPU
        return value if isinstance(value, list) else [value]


class _GcIn(_In):
    cpu: Annotated[list[CpuSet], Field(min_length=1)] = 1  # type: ignore[assignment]
    count: GcCount = None
    idle_poll: Duration = 0
    core: CoreClass = None
    start: Literal["at-once", "after"] = "at-once"

    @field_validator("cpu", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return value if isinstance(value, list) else [value]


class _SwapoutIn(_In):
    cpu: Cpu = 0


class _SwapinIn(_In):
    cpu: Cpu = 0
    core: CoreClass = None


class _ReclaimIn(_In):
    cpu: Cpu = 0
    vma: Size = "4M"  # type: ignore[assignment]
    core: CoreClass = None


class _WorkersIn(_In):
    killer: _KillerIn = Field(default_factory=dict)  # type: ignore[arg-type]
    gc: _GcIn = Field(default_factory=dict)  # type: ignore[arg-type]
    swapout: _SwapoutIn = Field(default_factory=dict)  # type: ignore[arg-type]
    swapin: _SwapinIn = Field(default_factory=dict)  # type: ignore[arg-type]
    reclaim: Union[_ReclaimIn, None] = None


class _VariantIn(_In):
    name: ItemName = None
    strategy: StrategyName
    cap: Cap = None
    zsmalloc: Zsmalloc = ()
    costs: CostOverrides = ()
    core: CoreOverrides = ()
    step_work_ns: StepWork = 0


class _ScenarioIn(_In):
    name: ScenarioName
    description: Text = ""
    experiment: ExperimentName = "unmap"  # type: ignore[assignment]
    page_size: PageSize = "4K"  # type: ignore[assignment]
    repeats: Repeats = 5
    seed: Seed = 1
    profile: ProfileName = "rk3588-cpu2"
    zram: _ZramIn = Field(default_factory=dict)  # type: ignore[arg-type]
    processes: Annotated[list[_ProcessIn], Field(min_length=1)] = [{}]  # type: ignore[assignment]
    data: _DataIn = Field(default_factory=dict)  # type: ignore[arg-type]
    workers: _WorkersIn = Field(default_factory=dict)  # type: ignore[arg-type]
    fallback: Fallback = "error"
    variants: Annotated[list[_VariantIn], Field(min_length=1)] = [  # type: ignore[assignment]
        {"name": "sync", "strategy": "sync"},
        {"name": "bitmap", "strategy": "bitmap", "cap": 30000},
    ]
    lockstat: Flag = False
    debug: dict[DebugKey, DebugValue] = Field(default_factory=dict)
    dilate: Dilation = 1.0
    base_for: Literal["replay"] | None = None


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
        # a long key is shown cut short (show_value): a message never quotes a huge value
        name = (comp if isinstance(comp, str) and len(comp) <= MAX_SHOWN and _KEY_RE.fullmatch(comp)
                else show_value(comp))
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


def read_yaml(where: str, path: str | os.PathLike[str]) -> Any:
    """The YAML document in ``path``; every way that fails is one InputError naming ``where``
    (a FIFO, a directory, an alias bomb and a duplicate key included: emul.config.yamlread)."""
    return read_yaml_file(where, path, MAX_FILE_BYTES, "a scenario file")


def load_scenario(
    path: str | os.PathLike[str], *, cpus: Iterable[int], strategies: Iterable[str], profiles: Iterable[str],
    topology: Topology | None = None,
) -> Scenario:
    """Read and check a scenario file; every problem is an :class:`InputError` naming file and key.

    ``cpus`` are the CPUs the run may use; ``topology`` the machine's (None: read this one's),
    against which CPU roles such as ``big[0]`` resolve."""
    where = os.fsdecode(os.fspath(path))
    data = read_yaml(where, path)
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
    return _resolve(model, where=where, raw=data, available=allowed)


# --------------------------------------------------------------------------------------------
# Resolving: the checks that span several keys, then the frozen Scenario. Each step appends
# what is wrong to ``problems``; _resolve reports the first in document order.
# --------------------------------------------------------------------------------------------

Problems = list[tuple[Loc, str]]


def _resolve(model: _ScenarioIn, *, where: str, raw: dict[str, Any], available: frozenset[int]) -> Scenario:
    """Checks that span several keys, then the frozen :class:`Scenario`."""
    problems: Problems = []
    _check_disksize(model, raw, problems)
    processes = _resolve_processes(model, raw, problems)
    gc_cpus = _resolve_gc_cpus(model, raw, available, problems)
    killer_cpus = _resolve_killer_cpus(model)
    variants = _resolve_variants(model, raw, problems)
    _raise_first(where, raw, problems)
    page = model.page_size
    workers = WorkersSpec(
        killer=WorkerSpec(cpu=killer_cpus[0], core=model.workers.killer.core),
        killers=killer_cpus,
        gc=GcSpec(cpus=gc_cpus, idle_poll_ns=model.workers.gc.idle_poll,
                  core=model.workers.gc.core, start=model.workers.gc.start),
        swapout=WorkerSpec(cpu=model.workers.swapout.cpu),
        swapin=WorkerSpec(cpu=model.workers.swapin.cpu, core=model.workers.swapin.core),
        reclaim=(None if model.workers.reclaim is None else
                 ReclaimSpec(cpu=model.workers.reclaim.cpu,
                             vma=model.workers.reclaim.vma // page * page,
                             core=model.workers.reclaim.core)),
    )
    return _build_scenario(model, processes, workers, variants, where=where, raw=raw)


def _check_disksize(model: _ScenarioIn, raw: dict[str, Any], problems: Problems) -> None:
    """zram.disksize: whole pages, and room for what is swapped out."""
    page = model.page_size
    disksize = model.zram.disksize
    if disksize % page:
        problems.append((
            ("zram", "disksize"),
            f"expected a multiple of the page size ({format_size(page)}), "
            f"got {_got(raw, ('zram', 'disksize'), disksize)}",
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


def _resolve_processes(model: _ScenarioIn, raw: dict[str, Any], problems: Problems) -> tuple[ProcessSpec, ...]:
    """Each process named (victim, victim2, ...), its VMA whole pages, names unique."""
    page = model.page_size
    processes: list[ProcessSpec] = []
    seen: dict[str, int] = {}
    for i, p in enumerate(model.processes):
        name = p.name if p.name is not None else ("victim" if i == 0 else f"victim{i + 1}")
        if p.vma % page:
            problems.append((
                ("processes", i, "vma"),
                f"expected a multiple of the page size ({format_size(page)}), "
                f"got {_got(raw, ('processes', i, 'vma'), p.vma)}",
            ))
        if name in seen:
            problems.append((
                ("processes", i, "name"),
                f'process name "{name}" is already used by processes[{seen[name]}]; names must be unique',
            ))
        seen.setdefault(name, i)
        processes.append(ProcessSpec(name=name, vma=p.vma, swapped=p.swapped, role=p.role))
    return tuple(processes)


def _resolve_gc_cpus(model: _ScenarioIn, raw: dict[str, Any], available: frozenset[int],
                     problems: Problems) -> tuple[int, ...]:
    """One CPU per GC worker: a list gives one each; one CPU or role with a count, in turn."""
    gc = model.workers.gc
    gc_cpus = tuple(c for cpus in gc.cpu for c in cpus)
    workers = raw.get("workers")
    workers = workers if isinstance(workers, dict) else {}
    gc_raw = workers.get("gc")
    written: dict[str, Any] = gc_raw if isinstance(gc_raw, dict) else {}
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
    return gc_cpus


def _resolve_killer_cpus(model: _ScenarioIn) -> tuple[int, ...]:
    """One CPU per killer: count killers take the listed CPUs in turn (default: one per CPU)."""
    kc = model.workers.killer
    listed = [c for cpus in kc.cpu for c in cpus]
    return tuple(listed[k % len(listed)] for k in range(kc.count or len(listed)))


def _resolve_cap(model: _ScenarioIn, raw: dict[str, Any], i: int,
                 problems: Problems) -> tuple[int | None, int | None]:
    """variants[i].cap as (slots, bytes as written or None); a size must hold a page."""
    cap = model.variants[i].cap
    if cap is None:
        return None, None
    kind, n = cap
    if kind == "slots":
        return n, None
    try:
        return slots_from_bytes(n, page_size=model.page_size, got=_got(raw, ("variants", i, "cap"), n)), n
    except SizeError as err:
        problems.append((("variants", i, "cap"), err.message))
        return None, n


def _resolve_variants(model: _ScenarioIn, raw: dict[str, Any], problems: Problems) -> tuple[VariantSpec, ...]:
    """Each variant named (default: its strategy), names unique, its cap in slots."""
    variants: list[VariantSpec] = []
    seen: dict[str, int] = {}
    for i, v in enumerate(model.variants):
        name = v.name if v.name is not None else v.strategy
        if name in seen:
            problems.append((
                ("variants", i, "name"),
                f'variant name "{name}" is already used by variants[{seen[name]}]; names must be unique',
            ))
        seen.setdefault(name, i)
        cap_slots, cap_bytes = _resolve_cap(model, raw, i, problems)
        variants.append(VariantSpec(name=name, strategy=v.strategy, cap_slots=cap_slots, cap_bytes=cap_bytes,
                                    zsmalloc=v.zsmalloc, costs=v.costs, core=v.core,
                                    step_work_ns=v.step_work_ns))
    return tuple(variants)


def _build_scenario(model: _ScenarioIn, processes: tuple[ProcessSpec, ...], workers: WorkersSpec,
                    variants: tuple[VariantSpec, ...], *, where: str, raw: dict[str, Any]) -> Scenario:
    return Scenario(
        name=model.name,
        description=model.description,
        experiment=model.experiment,
        page_size=model.page_size,
        repeats=model.repeats,
        seed=model.seed,
        profile=model.profile,
        zram=ZramSpec(disksize=model.zram.disksize, alloc_from=model.zram.alloc_from),
        processes=processes,
        data=DataSpec(
            compression_ratio=model.data.compression_ratio,
            spread=model.data.spread,
            same_filled=model.data.same_filled,
            incompressible=model.data.incompressible,
            patterns=model.data.patterns,
        ),
        workers=workers,
        variants=variants,
        lockstat=model.lockstat,
        debug=dict(model.debug),
        source=where,
        raw=raw,
        fallback=model.fallback,
        dilate=model.dilate,
        base_for=model.base_for,
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

