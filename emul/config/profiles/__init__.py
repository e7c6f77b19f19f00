"""Cost profiles: the named, calibrated costs of kernel work emul does not physically do.

A profile is a YAML file in this folder (or a path given with --profile): ``name``,
``description``, ``page_size`` the figures were taken at, and ``costs_ns``, a mapping from the
cost names below to nanoseconds. Missing names cost 0. Each built-in file says, in comments,
how its numbers were derived.
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

    def ticks(self, ticks_per_ns: float, page_size: int) -> list[int]:
        """The ctx.costs row: ticks per event, or per KiB for PER_KIB costs."""
        row = [0] * NR_COSTS
        for name, ns in self.costs_ns.items():
            if name in ("free_zspage_page", "alloc_zspage_page"):
                ns = ns * 4096 / page_size * 1.0   # charged per page, spread over its KiB
            row[COST_INDEX[name]] = int(round(ns * ticks_per_ns))
        return row

    def to_json(self) -> dict:
        return {"name": self.name, "description": self.description,
                "costs_ns": dict(self.costs_ns), "source": self.source}


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
    costs = data.get("costs_ns") or {}
    if not isinstance(costs, dict):
        raise InputError(where, "costs_ns", "expected a mapping of cost name to nanoseconds")
    for key, val in costs.items():
        if key not in COST_INDEX:
            raise InputError(where, f"costs_ns.{key}",
                             f"unknown cost (expected one of: {', '.join(COST_INDEX)})")
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 <= val < 1e9:
            raise InputError(where, f"costs_ns.{key}",
                             f"expected nanoseconds (a number >= 0), got {val!r}")
    return Profile(name=str(data.get("name", path.stem)),
                   description=str(data.get("description", "")),
                   costs_ns={k: float(v) for k, v in costs.items()}, source=where)
