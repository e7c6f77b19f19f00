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
those are in-sample for ``emul validate``, every other figure out-of-sample. ``emul calibrate``
adds ``measured``, the figures it fitted (kept as written, not used).

The file is checked as strictly as a scenario: unknown keys, duplicate keys, alias bombs and
anything but a regular file are refused (emul/config/yamlread.py); ``name`` is a short line of
text; ``page_size`` is 4K, 16K or 64K. A profile taken at another page size than the
scenario's still applies (per-KiB costs scale by bytes, per-page ones are charged per page):
:func:`page_size_warning` says so in one line rather than refusing it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emul.config.costs import COST_INDEX, NR_COSTS
from emul.config.sizes import SizeError, format_size, show_value, size_bytes
from emul.config.yamlread import read_yaml_file, shorten
from emul.errors import InputError

# per-KiB costs are scaled by bytes; the zspage page costs are charged per KiB of page too
PER_KIB = {"compress_kib", "decompress_kib", "free_zspage_page", "alloc_zspage_page"}

HERE = Path(__file__).parent
MAX_FILE_BYTES = 1 << 20        # a profile is a few kB
MAX_NAME_CHARS = 100            # a name goes into plot titles and table headers
MAX_DESCRIPTION_CHARS = 1000
# Linux's page sizes; a scenario runs at 4K or 16K, but a profile calibrated on a 64K-page
# host is still a profile (emul calibrate writes the host's page size)
PROFILE_PAGE_SIZES = (4096, 16384, 65536)
KEYS = ("name", "description", "page_size", "derived_from", "costs_ns", "unlisted_ns",
        "core_class", "classes", "measured")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    costs_ns: dict[str, float] = field(default_factory=dict)
    source: str = ""
    core_class: str = "default"        # the core class costs_ns describes
    classes: dict[str, dict[str, float]] = field(default_factory=dict)   # the other classes
    derived_from: tuple[str, ...] = ()   # the published figures (emul validate's keys) it used
    page_size: int | None = None         # bytes the figures were taken at; None: not said

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


def _shown(value: Any) -> str:
    """A key or name as a message quotes it, cut short: never the repr of a huge value."""
    return shorten(value) if isinstance(value, str) else show_value(value)


def _profile_path(name_or_path: str) -> Path:
    """A built-in profile's file, or the path given."""
    path = Path(name_or_path)
    if path.suffix:
        return path
    path = HERE / f"{name_or_path}.yaml"
    if not path.exists():
        raise InputError("--profile", None, f"unknown cost profile {_shown(name_or_path)!r} "
                         f"(built in: {', '.join(builtin_names())}; or a path to a .yaml)")
    return path


def _check_name(value: Any, where: str) -> str:
    if isinstance(value, str) and value.strip() and len(value) <= MAX_NAME_CHARS and value.isprintable():
        return value
    raise InputError(where, "name", f"expected a name of at most {MAX_NAME_CHARS} printable "
                     f"characters on one line, got {show_value(value)}")


def _check_description(value: Any, where: str) -> str:
    if isinstance(value, str) and len(value) <= MAX_DESCRIPTION_CHARS:
        return value
    raise InputError(where, "description", f"expected text of at most {MAX_DESCRIPTION_CHARS} "
                     f"characters, got {show_value(value)}")


def _check_page_size(value: Any, where: str) -> int | None:
    """The page size the figures were taken at (bytes), as a scenario writes it: 4K, 16K, 4096."""
    if value is None:
        return None
    try:
        nbytes = size_bytes(value)
    except SizeError:
        nbytes = None
    if nbytes in PROFILE_PAGE_SIZES:
        return nbytes
    raise InputError(where, "page_size", f"expected 4K, 16K or 64K, got {show_value(value)}")


def _check_unlisted(value: Any, where: str) -> float | None:
    if value is None or (not isinstance(value, bool) and isinstance(value, (int, float))
                         and 0 <= value < 1e9):
        return value
    raise InputError(where, "unlisted_ns", f"expected nanoseconds (a number >= 0), got "
                     f"{show_value(value)}")


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    """The profile file's mapping, its keys known; ``where`` names it in errors."""
    where = str(path)
    data = read_yaml_file(where, path, MAX_FILE_BYTES, "a cost profile file")
    if not isinstance(data, dict):
        raise InputError(where, None, "expected a mapping with name, description, costs_ns")
    for key in data:
        if key not in KEYS:
            raise InputError(where, _shown(key), f"unknown key (expected one of: {', '.join(KEYS)})")
    return where, data


def load_profile(name_or_path: str) -> Profile:
    path = _profile_path(name_or_path)
    where, data = _read(path)
    # no name: the file's (shortened, not checked: the file did not write it)
    name = _check_name(data["name"], where) if "name" in data else shorten(path.stem, MAX_NAME_CHARS)
    description = _check_description(data.get("description", ""), where)
    page_size = _check_page_size(data.get("page_size"), where)
    unlisted = _check_unlisted(data.get("unlisted_ns"), where)
    costs = complete(check_costs(data.get("costs_ns") or {}, where, "costs_ns"), unlisted,
                     where, "costs_ns")
    core_class = data.get("core_class", "default")
    classes = data.get("classes") or {}
    if not isinstance(core_class, str) or not core_class or len(core_class) > MAX_NAME_CHARS:
        raise InputError(where, "core_class", f"expected a class name, got {show_value(core_class)}")
    if not isinstance(classes, dict):
        raise InputError(where, "classes", "expected a mapping of class name to costs")
    for cls in classes:
        if not isinstance(cls, str) or not cls or len(cls) > MAX_NAME_CHARS:
            raise InputError(where, "classes", f"expected class names, got {show_value(cls)}")
    derived = data.get("derived_from") or []
    if not isinstance(derived, list) or not all(isinstance(k, str) for k in derived):
        raise InputError(where, "derived_from", "expected a list of published figures' keys "
                         "(emul validate --list names them)")
    measured = data.get("measured")
    if measured is not None and not isinstance(measured, dict):
        raise InputError(where, "measured", f"expected a mapping (emul calibrate's figures), "
                         f"got {show_value(measured)}")
    return Profile(name=name, description=description, costs_ns=costs, source=where,
                   core_class=core_class, derived_from=tuple(derived), page_size=page_size,
                   classes={k: complete(check_costs(v, where, f"classes.{k}"), unlisted,
                                        where, f"classes.{k}")
                            for k, v in classes.items()})


def page_size_warning(profile: Profile, scenario_page_size: int) -> str | None:
    """One line saying the profile's figures were taken at another page size than the
    scenario runs at, or None (the same, or the profile does not say). Not an error: per-KiB
    costs scale by bytes and per-page costs are charged per page, so the profile applies, but
    a per-page figure measured at one page size is only an estimate at another."""
    if profile.page_size is None or profile.page_size == scenario_page_size:
        return None
    return (f"profile {profile.name} gives figures taken at {format_size(profile.page_size)} "
            f"pages, the scenario runs at {format_size(scenario_page_size)}: per-KiB costs "
            f"scale with the bytes, per-page costs are used as they are (an estimate)")


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
            raise InputError(where, f"{key}.{_shown(name)}",
                             f"unknown cost (expected one of: {', '.join(COST_INDEX)})")
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 <= val < 1e9:
            raise InputError(where, f"{key}.{name}",
                             f"expected nanoseconds (a number >= 0), got {show_value(val)}")
    return {k: float(v) for k, v in costs.items()}
