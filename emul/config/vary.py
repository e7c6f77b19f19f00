"""``vary:``: one scenario file as a matrix of runs.

    vary:
      strategy: [sync, bitmap]      # variant keys: more variants in the same run
      cap: [1000, 64M]              # (sync takes no cap: it gets the other variant keys only)
      page_size: [4K, 16K]          # structural keys: one group of workers per combination
      costs.zs_free: [100, 300]     # one cost of the profile, in ns (a sensitivity sweep)
      core.gc: [little, big]        # the emulated core class of one worker role

Variant keys (strategy, cap, zsmalloc, costs.<name>, core.<role>) multiply the variants of one
run. Structural keys
(page_size, disksize, profile, gc_cpu, killers, exits) change the arena or the workers, so each
combination of them is a scenario of its own, a group. Variant names carry the varied values
(``bitmap cap=1000 page=16K``), so they are unique across groups. At most 64 values a key and
256 variants in all.

A scaling sweep varies the number of concurrent exits (will-it-scale's curve, emul/report/
scaling.py): ``exits: [1, 2, 4]`` runs N copies of the file's one process, each unmapped by a
killer of its own, at once (the published 1 / 2 / 4-process rows); ``killers: [1, 2]`` splits
the file's processes over N killers (the same work, more hands). A point whose killers would
share a CPU is not run: it needs N CPUs, and :func:`load_sweep` returns it as skipped with the
reason, so a 2-CPU machine runs the 1- and 2-exit points and lists the 4-exit one.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import os
from collections.abc import Iterable
from typing import Any

from emul.config.scenario import Scenario, read_yaml, scenario_from_dict
from emul.config.sizes import show_value
from emul.config.topology import Topology, machine_topology
from emul.config.yamlread import shorten
from emul.errors import InputError

__all__ = ["SCALING_KEYS", "STRUCTURAL_KEYS", "VARIANT_KEYS", "VARY_KEYS", "SkippedPoint",
           "concurrent_exits", "expand_vary", "load_matrix", "load_sweep", "scaling_key",
           "sweep_from_dict"]

VARIANT_KEYS = ("strategy", "cap", "zsmalloc")
STRUCTURAL_KEYS: dict[str, tuple[str, ...]] = {     # key -> where it goes in the scenario
    "page_size": ("page_size",),
    "disksize": ("zram", "disksize"),
    "profile": ("profile",),
    "gc_cpu": ("workers", "gc", "cpu"),
    "killers": ("workers", "killer", "count"),
    "exits": ("workers", "killer", "count"),     # and N copies of the one process
}
SCALING_KEYS = ("exits", "killers")   # the number of concurrent exits: one killer each
MAX_EXITS = 64                        # as workers.killer.count
VARY_KEYS = VARIANT_KEYS + tuple(STRUCTURAL_KEYS)
# variant keys with a name after the dot: one cost of the profile, or one role's core class
NESTED_VARIANT_KEYS = ("costs", "core")


def _is_nested(key: Any) -> bool:
    return (isinstance(key, str) and key.count(".") == 1
            and key.split(".")[0] in NESTED_VARIANT_KEYS and key.split(".")[1] != "")
MAX_VALUES = 64
MAX_VARIANTS = 256
MAX_VALUE_CHARS = 100           # a value ends up in variant names, which are at most 100 long
_SCALARS = (str, int, float, bool, type(None))


def _vary_label(key: str, value: Any) -> str:
    short = {"page_size": "page", "disksize": "disk", "gc_cpu": "gc_cpu", "zsmalloc": "zs"}
    text = "+".join(map(str, value)) if isinstance(value, list) else str(value)
    return f"{short.get(key, key)}={text}"


@dataclasses.dataclass(frozen=True)
class SkippedPoint:
    """A point of a scaling sweep this machine cannot run without its killers sharing CPUs."""

    group: str            # the group's label, e.g. "exits=4"
    exits: int            # concurrent exits (= killers) at this point
    needs_cpus: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def scaling_key(vary: Any) -> str | None:
    """The key a ``vary:`` mapping sweeps the number of concurrent exits by, if any."""
    if not isinstance(vary, dict):
        return None
    return next((k for k in SCALING_KEYS if k in vary), None)


def _set_path(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        nxt = doc.get(key)
        if not isinstance(nxt, dict):
            nxt = {}
            doc[key] = nxt
        doc = nxt
    doc[path[-1]] = value


def _check_vary(vary: Any, where: str) -> None:
    """The shape of ``vary:`` itself and the kind of each value (before any str() of one);
    what a value means is checked where it lands in each group."""
    if not isinstance(vary, dict) or not vary:
        raise InputError(where, "vary", f"expected a mapping of keys to lists of values, got {show_value(vary)}")
    for key, values in vary.items():
        if key not in VARY_KEYS and not _is_nested(key):   # quoted: a key may hold anything
            raise InputError(where, "vary", f"expected keys from: {', '.join(VARY_KEYS)}, "
                             f"costs.<cost name>, core.<worker role>; got {show_value(key)}")
        shown = f"vary.{shorten(key)}"    # costs.<name>: the name may be anything
        if not isinstance(values, list) or not values:
            raise InputError(where, shown, f"expected a non-empty list of values, got {show_value(values)}")
        if len(values) > MAX_VALUES:
            raise InputError(where, shown, f"expected at most {MAX_VALUES} values, got {len(values)}")
        seen: dict[str, int] = {}
        for i, value in enumerate(values):
            _check_value(value, where, f"{shown}[{i}]")
            # a value twice would name two variants alike, and their repeats would merge
            text = repr(value)
            if text in seen:
                raise InputError(where, f"{shown}[{i}]", f"expected distinct values, got "
                                 f"{show_value(value)} again (as {shown}[{seen[text]}])")
            seen[text] = i


def _check_value(value: Any, where: str, key: str) -> None:
    """One varied value: a scalar or a flat list of them (zsmalloc, gc_cpu), short. Checked
    before anything calls str() on it: a nested value (an alias bomb) would be huge."""
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_VALUES:
        raise InputError(where, key, f"expected at most {MAX_VALUES} items, got {len(items)}")
    for item in items:
        if not isinstance(item, _SCALARS):
            got = show_value(value) if item is value else f"a list holding {show_value(item)}"
            raise InputError(where, key, f"expected a value or a list of plain values, got {got}")
        if isinstance(item, str) and len(item) > MAX_VALUE_CHARS:
            raise InputError(where, key, f"expected a value of at most {MAX_VALUE_CHARS} characters, "
                             f"got {show_value(item)}")


def _base_variants(base: dict[str, Any], vary: dict[str, Any]) -> list[Any]:
    """The variants the variant keys multiply: one per varied strategy, else the file's own."""
    if "strategy" in vary:
        return [{"strategy": s} for s in vary["strategy"]]
    variants = base.get("variants")
    if not isinstance(variants, list) or not variants:
        return [{"name": "sync", "strategy": "sync"}, {"name": "bitmap", "strategy": "bitmap"}]
    return variants


def _expand_variant(variant: Any, vary: dict[str, Any], axes: list[str], group: str) -> list[Any]:
    """``variant`` once per combination of the varied variant keys, named after them."""
    if not isinstance(variant, dict):
        return [variant]              # scenario_from_dict reports it
    # a cap means nothing to sync: it gets the other axes only
    axes = [k for k in axes if not (k == "cap" and variant.get("strategy") == "sync")]
    base = variant.get("name") or variant.get("strategy")
    if not isinstance(base, str):
        return [variant]              # a bad or missing name: scenario_from_dict reports it
    out = []
    for combo in itertools.product(*(vary[k] for k in axes)):
        v = dict(variant)
        name = base
        for key, value in zip(axes, combo):
            if _is_nested(key):          # costs.zs_free: 300 -> costs: {zs_free: 300}
                outer, inner = key.split(".")
                v[outer] = dict(v.get(outer) or {}, **{inner: value})
            else:
                v[key] = value
            name += " " + _vary_label(key, value)
        v["name"] = f"{name} {group}".strip()
        out.append(v)
    return out


def _build_group(base: dict[str, Any], vary: dict[str, Any], structural: list[str], combo: tuple[Any, ...],
                 variants: list[Any], axes: list[str]) -> tuple[str, dict[str, Any]]:
    """The scenario mapping of one combination of structural values, and its label."""
    doc = copy.deepcopy(base)
    labels = []
    for key, value in zip(structural, combo):
        _set_path(doc, STRUCTURAL_KEYS[key], value)
        if key == "exits":
            doc["processes"] = _copies(doc["processes"][0], value)
        labels.append(_vary_label(key, value))
    group = " ".join(labels)
    doc["variants"] = [v for variant in variants for v in _expand_variant(variant, vary, axes, group)]
    return group, doc


def _copies(proc: Any, n: int) -> list[Any]:
    """n copies of the one process, named victim1..victimN (one copy keeps its name)."""
    if n == 1 or not isinstance(proc, dict):
        return [proc] * n
    name = proc.get("name", "victim")
    return [dict(proc, name=f"{name}{k}") for k in range(1, n + 1)]


def _check_exits(base: dict[str, Any], vary: dict[str, Any], where: str) -> None:
    """``exits`` copies the file's one process once per exit: the file must have one, and an
    unmap to run (a swap-in has no exits)."""
    if "exits" not in vary:
        return
    if "killers" in vary:
        raise InputError(where, "vary", "expected exits or killers, not both: exits sets the "
                         "number of killers (one per exit)")
    for i, n in enumerate(vary["exits"]):
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_EXITS:
            raise InputError(where, f"vary.exits[{i}]", f"expected a whole number of exits from "
                             f"1 to {MAX_EXITS}, got {show_value(n)}")
    if base.get("experiment", "unmap") != "unmap":
        raise InputError(where, "vary.exits", f"expected experiment: unmap (each exit is an "
                         f"unmap), got {show_value(base.get('experiment'))}")
    procs = base.get("processes")
    if not isinstance(procs, list) or len(procs) != 1:
        got = f"{len(procs)} processes" if isinstance(procs, list) else show_value(procs)
        raise InputError(where, "processes", f"vary.exits runs N copies of one process at once: "
                         f"expected a list of one process, got {got}")


def expand_vary(data: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """A scenario mapping with ``vary:`` as one mapping per structural group, each holding the
    group's variants (the cartesian product of every varied key); without ``vary:``, itself.

    Returns (group label, mapping) pairs; variant names carry the varied values, so they are
    unique across groups.
    """
    if not isinstance(data, dict) or "vary" not in data:
        return [("", data)]
    vary = data["vary"]
    _check_vary(vary, where)
    base = {k: v for k, v in data.items() if k != "vary"}
    _check_exits(base, vary, where)
    structural = [k for k in vary if k in STRUCTURAL_KEYS]
    variants = _base_variants(base, vary)
    axes = [k for k in ("cap", "zsmalloc") if k in vary] + [k for k in vary if _is_nested(k)]
    combos = list(itertools.product(*(vary[k] for k in structural))) or [()]
    per_variant = max(1, len(list(itertools.product(*(vary[k] for k in axes)))))
    if len(combos) * len(variants) * per_variant > MAX_VARIANTS:
        raise InputError(where, "vary", f"expected at most {MAX_VARIANTS} variants in the product")
    return [_build_group(base, vary, structural, combo, variants, axes) for combo in combos]


def load_matrix(
    path: str | os.PathLike[str], *, cpus: Iterable[int], strategies: Iterable[str], profiles: Iterable[str],
    topology: Topology | None = None,
) -> list[Scenario]:
    """Read a scenario file that may ``vary:`` keys: one :class:`Scenario` per structural group
    (variants tagged with their group). A file without ``vary:`` gives a list of one. The points
    of a scaling sweep this machine cannot run are left out (:func:`load_sweep` names them)."""
    return load_sweep(path, cpus=cpus, strategies=strategies, profiles=profiles,
                      topology=topology)[0]


def load_sweep(
    path: str | os.PathLike[str], *, cpus: Iterable[int], strategies: Iterable[str], profiles: Iterable[str],
    topology: Topology | None = None,
) -> tuple[list[Scenario], list[SkippedPoint]]:
    """The groups of a scenario file, and the points of its scaling sweep (``vary: exits`` or
    ``killers``) left out because their killers would share a CPU: N concurrent exits need N
    CPUs among the killers' (time-slicing two killers on one CPU measures the scheduler, not
    the design). Every point is checked as a scenario first; a sweep with no point left is
    refused."""
    where = os.fsdecode(os.fspath(path))
    return sweep_from_dict(read_yaml(where, path), where, cpus=cpus, strategies=strategies,
                           profiles=profiles, topology=topology)


def sweep_from_dict(
    data: Any, where: str, *, cpus: Iterable[int], strategies: Iterable[str], profiles: Iterable[str],
    topology: Topology | None = None,
) -> tuple[list[Scenario], list[SkippedPoint]]:
    """:func:`load_sweep` of a mapping already read (``where`` names it in errors)."""
    out: list[Scenario] = []
    skipped: list[SkippedPoint] = []
    cpus, strategies, profiles = list(cpus), list(strategies), list(profiles)
    if topology is None:   # read once: every group pins against the same machine
        topology = machine_topology(cpus)
    key = scaling_key(data.get("vary")) if isinstance(data, dict) else None
    for group, doc in expand_vary(data, where):
        sc = scenario_from_dict(doc, where=f"{where} (vary: {group})" if group else where,
                                cpus=cpus, strategies=strategies, profiles=profiles, topology=topology)
        if group:
            sc = dataclasses.replace(
                sc, source=where, raw=data,
                variants=tuple(dataclasses.replace(v, group=group) for v in sc.variants))
        point = _unrunnable(sc, group) if key else None
        if point is not None:
            skipped.append(point)
        else:
            out.append(sc)
    if not out:
        raise InputError(where, f"vary.{key}", f"no point of the sweep can run here: "
                         f"{skipped[0].reason}")
    return out, skipped


def _unrunnable(sc: Scenario, group: str) -> SkippedPoint | None:
    """The point as skipped, if its killers would share a CPU."""
    n = concurrent_exits(sc)
    have = sorted(set(sc.workers.killers))
    if n <= len(have):
        return None
    return SkippedPoint(group, n, n, f"needs {n} CPUs, one per concurrent exit (the killers "
                        f"have {len(have)} here: CPU{'s' if len(have) > 1 else ''} "
                        f"{','.join(map(str, have))})")


def concurrent_exits(sc: Scenario) -> int:
    """Killers that run at once: one per victim at most (a killer without one never starts)."""
    victims = sum(1 for p in sc.processes if p.role == "victim")
    return max(1, min(len(sc.workers.killers), victims))
