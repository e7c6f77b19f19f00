"""The values a scenario file's keys may hold, one checker per kind of value.

Each checker takes the value as written and returns it as emul uses it, or raises
``ValueError("expected ..., got ...")`` and nothing else: pydantic reports that text as it is
(emul.config.scenario strips its "Value error, " prefix), so it is the message the user sees.
The input models in emul.config.scenario use the ``Annotated`` types at the bottom.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union

from pydantic import PlainValidator, ValidationInfo

from emul.config.costs import COST_NAMES
from emul.config.sizes import SizeError, classify_count_or_size, show_value, size_bytes
from emul.config.spec import PAGE_SIZES, Experiment
from emul.config.topology import Topology, resolve_cpus

MAX_DISKSIZE = 1 << 40          # 1T: keeps per-slot tables a sane size
MAX_SEED = (1 << 64) - 1
_INT64 = (-(1 << 63), (1 << 63) - 1)

_SCENARIO_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_ITEM_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+= -]{0,99}")
_CPU_RE = re.compile(r"cpu([0-9]{1,6})", re.IGNORECASE)


def _ctx(info: ValidationInfo, name: str) -> Any:
    """What scenario_from_dict passed in the validation context (None when validated without)."""
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
    """The CPUs a ``cpu:`` value names: a number, "cpuN" or a role (topology.resolve_cpus),
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


_CLASS_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
CORE_ROLES = ("killer", "swapin", "gc", "reclaim")   # the workers whose costs are modelled


def _v_core_class(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and _CLASS_RE.fullmatch(value):
        return value
    raise ValueError(f"expected a core class of the profile (a lower-case name such as little "
                     f"or big), got {show_value(value)}")


def _v_cost_overrides(value: Any) -> tuple[tuple[str, float], ...]:
    """variants[].costs: {name: ns}, names from emul.config.costs, as sorted pairs."""
    if value is None or value == ():
        return ()
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of cost name to nanoseconds, got {show_value(value)}")
    out = []
    for name, ns in value.items():
        if name not in COST_NAMES:
            raise ValueError(f"expected cost names from: {', '.join(COST_NAMES)}; got "
                             f"{show_value(name)}")
        if isinstance(ns, bool) or not isinstance(ns, (int, float)) or not 0 <= ns < 1e9:
            raise ValueError(f"expected nanoseconds (a number >= 0) for {name}, got {show_value(ns)}")
        out.append((name, float(ns)))
    return tuple(sorted(out))


def _v_core_overrides(value: Any) -> tuple[tuple[str, str], ...]:
    """variants[].core: {role: class}, the emulated core class of a worker role."""
    if value is None or value == ():
        return ()
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of worker role to core class, got {show_value(value)}")
    out: list[tuple[str, str]] = []
    for role, cls in value.items():
        name = _v_core_class(cls)
        if role not in CORE_ROLES or name is None:
            raise ValueError(f"expected worker roles from: {', '.join(CORE_ROLES)}, each with a "
                             f"core class; got {show_value(role)}: {show_value(cls)}")
        out.append((role, name))
    return tuple(sorted(out))


# The types the input models in emul.config.scenario declare their keys with.
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
Size = Annotated[int, PlainValidator(_v_size(MAX_DISKSIZE))]         # bytes, 1 .. 1T
Ratio = Annotated[float, PlainValidator(_v_number(1.0, 64.0))]      # compression_ratio
StepWork = Annotated[int, PlainValidator(_v_int(0, 1_000_000))]     # debug: ns per step
Dilation = Annotated[float, PlainValidator(_v_number(1.0, 1000.0, "a time dilation factor"))]
CoreClass = Annotated[Union[str, None], PlainValidator(_v_core_class)]
CostOverrides = Annotated[tuple, PlainValidator(_v_cost_overrides)]
CoreOverrides = Annotated[tuple, PlainValidator(_v_core_overrides)]
Repeats = Annotated[int, PlainValidator(_v_int(1, 1000))]
Seed = Annotated[int, PlainValidator(_v_int(0, MAX_SEED))]
Duration = Annotated[int, PlainValidator(_v_duration)]              # nanoseconds
PageSize = Annotated[int, PlainValidator(_v_page_size)]
ExperimentName = Annotated[Experiment, PlainValidator(_v_experiment)]
ProfileName = Annotated[str, PlainValidator(_v_profile)]
StrategyName = Annotated[str, PlainValidator(_v_strategy)]
Zsmalloc = Annotated[tuple[str, ...], PlainValidator(_v_zsmalloc)]
Patterns = Annotated[tuple[str, ...], PlainValidator(_v_patterns)]
KillerCount = Annotated[Union[int, None], PlainValidator(_v_optional_count)]
GcCount = Annotated[Union[int, None], PlainValidator(_v_gc_count)]
Fallback = Annotated[str, PlainValidator(_v_fallback)]
