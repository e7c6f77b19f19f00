"""Cost profiles: the named, calibrated costs of kernel work emul does not physically do.

A profile is a YAML file in this folder (or a path given with --profile): ``name``,
``description``, ``page_size`` the figures were taken at, and ``costs_ns``, a mapping from the
cost names (emul/config/costs.py) to nanoseconds: what each kernel step costs on the target
hardware, its *target* (emul subtracts its own machinery at run time: emul/harness/machinery.py).
Every cost needs a figure (0 for a step the target does not pay): a profile that leaves one out
is refused, naming it, unless it says ``unlisted_ns: 0`` (every cost it does not list is then
that many ns; test profiles that slow one step use it). A board with cores of several kinds names the class ``costs_ns`` describes
(``core_class``, e.g. little) and gives the others under ``classes`` (e.g. big), each a full
mapping like ``costs_ns``. Each built-in file says, in comments, how its numbers were derived,
and lists in ``derived_from`` the published figures it used (emul/validate/record.py's keys):
those are in-sample for ``emul validate``, every other figure out-of-sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from emul.config.costs import COST_INDEX, NR_COSTS
from emul.errors import InputError

# per-KiB costs are scaled by bytes; the zspage page costs are charged per KiB of page too
PER_KIB = {"compress_kib", "decompress_kib", "free_zspage_page", "alloc_zspage_page"}

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    costs_ns: dict[str, float] = field(default_factory=dict)
    source: str = ""
    core_class: str = "default"        # the core class costs_ns describes
    classes: dict[str, dict[str, float]] = field(default_factory=dict)   # the other classes
    derived_from: tuple[str, ...] = ()   # the published figures (emul validate's keys) it used

    @property
    def class_names(self) -> list[str]:
        return [self.core_class, *self.classes]

    def costs_of(self, core_class: str | None = None) -> dict[str, float]:
        """The targets of one core class (None: the class costs_ns describes)."""
        if core_class is None or core_class == self.core_class:
            return dict(self.costs_ns)
        return dict(self.classes[core_class])

    def ticks(self, ticks_per_ns: float, page_size: int, core_class: str | None = None,
              overrides: tuple[tuple[str, float], ...] = ()) -> list[int]:
        """The targets half of a ctx.costs row: ticks per event, or per KiB for PER_KIB
        costs; ``overrides`` (name, ns) replace single costs (a sensitivity sweep)."""
        row = [0] * NR_COSTS
        costs = self.costs_of(core_class)
        costs.update(dict(overrides))
        for name, ns in costs.items():
            if name in ("free_zspage_page", "alloc_zspage_page"):
                ns = ns * 4096 / page_size * 1.0   # charged per page, spread over its KiB
            row[COST_INDEX[name]] = int(round(ns * ticks_per_ns))
        return row

    def to_json(self) -> dict:
        return {"name": self.name, "description": self.description,
                "costs_ns": dict(self.costs_ns), "source": self.source,
                "core_class": self.core_class, "classes": {k: dict(v) for k, v in
                                                           self.classes.items()},
                "derived_from": list(self.derived_from)}


def builtin_names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    path = Path(name_or_path)
    if not path.suffix:
        path = HERE / f"{name_or_path}.yaml"
        if not path.exists():
            raise InputError("--profile", None, f"unknown cost profile {name_or_path!r} "
                             f"(built in: {', '.join(builtin_names())}; or a path to a .yaml)")
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(where, None, "no such file") from None
    except yaml.YAMLError as exc:
        raise InputError(where, None, f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(where, None, "expected a mapping with name, description, costs_ns")
    unlisted = data.get("unlisted_ns")
    if unlisted is not None and (isinstance(unlisted, bool) or not isinstance(unlisted, (int, float))
                                 or not 0 <= unlisted < 1e9):
        raise InputError(where, "unlisted_ns", f"expected nanoseconds (a number >= 0), got "
                         f"{unlisted!r}")
    costs = complete(check_costs(data.get("costs_ns") or {}, where, "costs_ns"), unlisted,
                     where, "costs_ns")
    core_class = data.get("core_class", "default")
    classes = data.get("classes") or {}
    if not isinstance(core_class, str) or not core_class:
        raise InputError(where, "core_class", f"expected a class name, got {core_class!r}")
    if not isinstance(classes, dict):
        raise InputError(where, "classes", "expected a mapping of class name to costs")
    derived = data.get("derived_from") or []
    if not isinstance(derived, list) or not all(isinstance(k, str) for k in derived):
        raise InputError(where, "derived_from", "expected a list of published figures' keys "
                         "(emul validate --list names them)")
    return Profile(name=str(data.get("name", path.stem)),
                   description=str(data.get("description", "")), costs_ns=costs, source=where,
                   core_class=core_class, derived_from=tuple(derived),
                   classes={str(k): complete(check_costs(v, where, f"classes.{k}"), unlisted,
                                             where, f"classes.{k}")
                            for k, v in classes.items()})


def complete(costs: dict[str, float], unlisted: float | None, where: str,
             key: str) -> dict[str, float]:
    """Every cost named: the missing ones refused, or set to unlisted_ns when the profile
    gives it."""
    missing = [n for n in COST_INDEX if n not in costs]
    if missing and unlisted is None:
        raise InputError(where, key, f"lacks {', '.join(missing)}: give every cost a figure (0 "
                         f"for a step the target does not pay), or set unlisted_ns: 0 to say "
                         f"that the costs not listed are free")
    return {**{n: float(unlisted or 0) for n in missing}, **costs}


def check_costs(costs: object, where: str, key: str) -> dict[str, float]:
    """A mapping of cost names to nanoseconds, checked."""
    if not isinstance(costs, dict):
        raise InputError(where, key, "expected a mapping of cost name to nanoseconds")
    for name, val in costs.items():
        if name not in COST_INDEX:
            raise InputError(where, f"{key}.{name}",
                             f"unknown cost (expected one of: {', '.join(COST_INDEX)})")
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 <= val < 1e9:
            raise InputError(where, f"{key}.{name}",
                             f"expected nanoseconds (a number >= 0), got {val!r}")
    return {k: float(v) for k, v in costs.items()}
