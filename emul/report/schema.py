"""The shape of results.json as emul writes it (emul/report/results.py, schema version 3), as
data, and the one check emul/report/io.py's load_results makes with it.

Every reader of a results document (`emul report`'s tables, CSV files and plots, `emul
compare`) indexes it freely. A hand-edited file ("median": "fast", a null time, a list where
an object goes, a key removed) would meet them as a TypeError or KeyError deep inside; so the
whole document is checked once, when it is read, and every reader downstream can trust the
types. The first problem is one InputError naming the key by its path: repeats[3].time_ns.

How to read the description below (RESULTS):
- a key ending in "?" is optional (replay and run documents differ, and readers take some
  keys with a default); every other key is required;
- an object may hold keys not listed (what a newer emul adds, what no reader reads): they are
  only checked for being no deeper than MAX_DEPTH;
- a number is an int or a float, never true / false, finite and within +-MAX_NUMBER, so no
  reader's arithmetic overflows; a whole number (counts, CPUs) may be written 3 or 3.0.
A few rules span several keys (CROSS_CHECKS): every variant of the summary has repeats, every
repeat has the same lock classes, a timeline has one value of each series per sample time.

A reader that starts to read a key must add it here. emul's own files must pass:
tests/test_results_reading.py reads a real run, replay, soak and matrix.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from emul.errors import InputError

MAX_NUMBER = 1e18     # far above any figure emul writes (ns since boot are ~1e14)
MAX_DEPTH = 32        # emul nests 6 levels; a deeper file would recurse in compare's diff


@dataclass(frozen=True)
class Leaf:
    kind: str         # a key of EXPECTED


@dataclass(frozen=True)
class Maybe:
    """The spec, or null."""
    spec: Spec


@dataclass(frozen=True)
class ListOf:
    item: Spec
    min_len: int = 0


@dataclass(frozen=True)
class MapOf:
    """An object whose keys are names (variants, workers, cost steps), each value one spec."""
    value: Spec


@dataclass(frozen=True)
class Obj:
    """An object with these keys ("name?": optional); same_length: its list values are series
    of one sample each per value of the first key (a timeline's t_ms)."""
    keys: Mapping[str, Spec]
    same_length: bool = False


Spec = Union[Leaf, Maybe, ListOf, MapOf, Obj]

EXPECTED = {"number": "a number", "whole": "a whole number", "text": "a string",
            "flag": "true or false", "any": "any value"}

NUM, WHOLE, TEXT, FLAG, ANY = (Leaf(k) for k in ("number", "whole", "text", "flag", "any"))
OPEN = Obj({})        # an object no reader looks into


# ---- the document ---------------------------------------------------------------------------

LOCK_CLASS = Obj({
    "class name": TEXT, "con-bounces": WHOLE, "contentions": WHOLE, "waittime-min": NUM,
    "waittime-max": NUM, "waittime-total": NUM, "waittime-avg?": NUM, "acq-bounces": WHOLE,
    "acquisitions": WHOLE, "holdtime-min": NUM, "holdtime-max": NUM, "holdtime-total": NUM,
    "holdtime-avg?": NUM})

# emul/kernel/lockstat.py merge_who: who waited on whom, buckets [lower bound ns, count]
LOCK_WHO = Obj({"class name": TEXT, "waiter": TEXT, "holder": TEXT, "waits": WHOLE,
                "waittime-total": NUM, "buckets": ListOf(ListOf(NUM, min_len=2))})

# emul/harness/record.py WorkerUse: the usage figures are null when the worker's were not read
WORKER = Obj({
    "role?": TEXT, "cpus_allowed": ListOf(WHOLE), "cpus_seen": ListOf(WHOLE),
    "cpu_s": Maybe(NUM), "wall_s": Maybe(NUM), "voluntary": Maybe(WHOLE),
    "involuntary": Maybe(WHOLE), "migrations?": Maybe(WHOLE), "runqueue_wait_s?": Maybe(NUM)})

TIME_SPLIT = Obj({
    "measured_ns": NUM, "costs_ns": MapOf(NUM), "machinery_ns": NUM, "overrun_ns": MapOf(NUM),
    "overrun_steps?": MapOf(Obj({"events": WHOLE, "machinery_ns": NUM, "target_ns": NUM})),
    "design_ns": NUM, "loops_ns": NUM, "repaid_ns?": NUM, "preempted_ns?": NUM,
    "lock_wait_ns": MapOf(NUM), "rest_ns": NUM})

TIMELINE = Obj({"t_ms": ListOf(NUM), "resident_mb": ListOf(NUM),
                "compressed_mb": ListOf(NUM), "gc_backlog": ListOf(NUM)}, same_length=True)

KILL = Obj({
    "name?": TEXT, "due_ms?": NUM, "start_ms": NUM, "reaper_cpu?": Maybe(WHOLE),
    "anon_freed_ms": NUM, "swap_freed_ms": Maybe(NUM), "slots?": WHOLE,
    "slots_never_freed?": WHOLE, "t_start?": WHOLE, "t_anon_done?": WHOLE,
    "t_swap_done?": WHOLE})

REPLAY = Obj({
    # the figure takes the median repeat by its last kill: a repeat has at least one
    "kills": ListOf(KILL, min_len=1),
    "timeline": Obj({"t_ms": ListOf(NUM), "returned_mb": ListOf(NUM),
                     "resident_freed_mb?": ListOf(NUM), "pool_mb?": ListOf(NUM),
                     "gc_backlog": ListOf(NUM)}, same_length=True)})

AUDIT = Obj({"ok": FLAG, "problems?": ListOf(TEXT), "counts?": MapOf(NUM)})

DISTURBANCE = Obj({"worker": TEXT, "cpus": ListOf(WHOLE), "cpu_share": NUM, "cause?": TEXT})

REPEAT = Obj({
    "variant": TEXT, "strategy?": TEXT, "repeat?": WHOLE, "group?": TEXT, "profile?": TEXT,
    "experiment?": TEXT, "time_ns": NUM, "other_actors_ns?": MapOf(NUM), "ptes": WHOLE,
    "ns_per_page": NUM, "lazy": WHOLE, "in_place?": WHOLE, "fallback": WHOLE,
    "miss_free?": WHOLE, "gc_freed?": WHOLE, "gc_passes?": WHOLE, "gc_skipped?": WHOLE,
    "gc_sleeps?": WHOLE, "gc_wakeups?": WHOLE, "gc_wake_polled?": WHOLE,
    "reused_queued?": WHOLE, "reclaimed?": WHOLE, "refaulted?": WHOLE, "batch_saved?": WHOLE,
    "gc_busy_ns?": NUM, "gc_drain_ns": NUM, "backlog_at_unmap_end?": WHOLE,
    "peak_backlog": WHOLE, "peak_backlog_bytes?": WHOLE, "pool_pages_before?": WHOLE,
    "pool_pages_after?": WHOLE, "zram_stats?": MapOf(WHOLE),
    "zram_stats_before?": MapOf(WHOLE), "lock_stat": ListOf(LOCK_CLASS),
    "workers": MapOf(WORKER), "audit?": AUDIT, "steal_s?": MapOf(NUM), "dilation?": NUM,
    "tries?": WHOLE, "disturbed?": ListOf(DISTURBANCE), "redone_for?": ListOf(TEXT),
    "timeline?": TIMELINE, "time_split?": MapOf(TIME_SPLIT), "replay?": REPLAY,
    "lock_who?": ListOf(LOCK_WHO),
    "shared_counters?": MapOf(Obj({"updates": WHOLE, "bounces": WHOLE})),
    "headline_ns?": MapOf(NUM)})

# emul/report/summary.py summarize: one per variant
SUMMARY = Obj({
    "variant": TEXT, "strategy?": TEXT, "group?": TEXT, "repeats": WHOLE,
    "time_ms_median": NUM, "time_ms_min?": NUM, "time_ms_max?": NUM, "spread_pct": NUM,
    "ns_per_page": NUM, "baseline?": TEXT, "speedup_vs?": TEXT, "speedup": NUM, "ratio?": NUM,
    "p_value?": NUM, "significant?": FLAG, "lazy": WHOLE, "in_place": WHOLE,
    "fallback": WHOLE, "gc_drain_ms": NUM, "gc_slots_per_s?": NUM, "peak_backlog": WHOLE,
    "peak_backlog_max?": WHOLE, "peak_backlog_bytes?": WHOLE, "peak_backlog_bytes_max?": WHOLE,
    "fallback_repeats": WHOLE, "fallback_min": WHOLE, "fallback_max": WHOLE,
    "batch_saved?": WHOLE, "class_lock_acq?": WHOLE, "miss_free": WHOLE,
    "audit_clean": WHOLE})

# emul/replay/report.py summarize_replay: one per strategy
REPLAY_SUMMARY = Obj({
    "strategy": TEXT, "repeats": WHOLE, "kills": WHOLE,
    **{f"{what}_freed_ms_{q}?": Maybe(NUM) for what in ("anon", "swap")
       for q in ("median", "max", "p50", "p90", "p99")},
    "swap_never_freed": WHOLE, "target_mb": NUM, "time_to_target_ms": Maybe(NUM),
    "all_freed_ms": NUM, "returned_mb_max?": NUM, "fallback?": WHOLE, "lazy?": WHOLE,
    "peak_backlog": WHOLE, "class_lock_contentions": WHOLE, "audit_clean": WHOLE})

# the resolved scenario (emul/config/spec.py to_dict): only what readers show is typed, the
# rest is compared key by key as it stands (emul compare's scenario diff)
SCENARIO = Obj({
    "name": TEXT, "description?": TEXT, "experiment": TEXT, "repeats?": WHOLE,
    "lockstat?": FLAG,
    "variants?": ListOf(Obj({"name": TEXT, "strategy?": TEXT, "cap_slots?": Maybe(WHOLE),
                             "cap_bytes?": Maybe(WHOLE), "group?": TEXT}))})

PROFILE = Obj({
    "name": TEXT, "description?": TEXT, "costs_ns?": MapOf(NUM), "source?": TEXT,
    "core_class?": TEXT, "classes?": MapOf(MapOf(NUM)), "derived_from?": ListOf(TEXT)})

MACHINE = Obj({
    "arch": TEXT, "cpu_model": TEXT, "cpus?": Maybe(WHOLE), "cpus_usable?": ListOf(WHOLE),
    "kernel?": TEXT, "python?": TEXT, "numba?": TEXT, "numpy?": TEXT, "hostname?": TEXT})

HOST = Obj({
    "load_before?": ListOf(NUM), "load_after?": ListOf(NUM), "measured_cpus?": ListOf(WHOLE),
    "wall_s?": NUM, "busy_s?": NUM, "emul_cpu_s?": NUM, "others_cpu_s?": NUM,
    "others_share?": NUM, "steal_s?": NUM, "steal_share?": NUM, "loaded?": FLAG,
    "emul?": Obj({"version?": TEXT, "code?": Maybe(TEXT), "git?": Maybe(TEXT)})})

MEASUREMENT = Obj({
    "warmup?": WHOLE, "redo_limit?": WHOLE, "cpu_share_min?": NUM, "nice?": MapOf(WHOLE),
    "redone?": WHOLE, "redone_for?": MapOf(WHOLE),
    "still_disturbed?": ListOf(Obj({"variant": TEXT, "repeat": WHOLE,
                                    "workers": ListOf(DISTURBANCE)}))})

TRACE = Obj({"where?": TEXT, "format?": TEXT, "kills?": WHOLE, "skipped_lines?": WHOLE,
             "malformed?": ListOf(OPEN), "victims?": ListOf(OPEN)})

REPLAY_OPTIONS = Obj({"strategies?": ListOf(TEXT), "time_scale?": Maybe(NUM),
                      "size_scale?": NUM, "target_mb?": NUM, "oom_swap_ratio?": NUM,
                      "base_scenario?": TEXT})

# emul/report/scaling.py scaling_doc: a sweep over the number of concurrent exits
SCALING_POINT = Obj({"group": TEXT, "exits": WHOLE, "cpus": ListOf(WHOLE),
                     "skipped": Maybe(TEXT), "needs_cpus?": WHOLE, "page_size?": WHOLE,
                     "gc_shares?": ListOf(WHOLE)})
SCALING = Obj({
    "key": TEXT, "points": ListOf(SCALING_POINT),
    "rows": ListOf(Obj({"design": TEXT, "exits": WHOLE, "group": TEXT, "cpus": ListOf(WHOLE),
                        "skipped": Maybe(TEXT), "needs_cpus?": WHOLE, "point?": TEXT,
                        "variant?": TEXT, "strategy?": TEXT, "gc_shares?": ListOf(WHOLE),
                        "time_ms?": NUM, "spread_pct?": NUM, "per_exit_ms?": NUM,
                        "mib_per_s?": NUM, "linear_pct?": NUM, "baseline?": TEXT,
                        "speedup?": NUM, "significant?": FLAG}))})

RESULTS = Obj({
    "schema": TEXT, "version": WHOLE, "status?": TEXT, "reason?": TEXT, "created?": TEXT,
    "command?": ListOf(TEXT), "scenario": SCENARIO, "scenario_source?": Maybe(TEXT),
    "vary?": ANY, "groups?": ListOf(SCENARIO), "machine": MACHINE, "profile": PROFILE,
    "profiles?": MapOf(PROFILE), "ticks_per_ns?": NUM, "repeats": ListOf(REPEAT),
    "summary": ListOf(SUMMARY), "control?": OPEN, "dilation?": NUM, "host_ticks_per_ns?": NUM,
    "machinery?": MapOf(OPEN), "measurement?": MEASUREMENT, "host?": Maybe(HOST),
    "chaos?": OPEN, "soak?": OPEN, "trace?": TRACE, "replay_options?": REPLAY_OPTIONS,
    "replay_summary?": ListOf(REPLAY_SUMMARY), "scaling?": SCALING})


# ---- the check ------------------------------------------------------------------------------

class Problem(Exception):
    """The first thing in the document that is not of its shape: where, and what."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def join(path: str, key: str | int) -> str:
    """repeats[3].time_ns; a key that is not a plain name quoted: lock_stat[0]["class name"]."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _NAME_RE.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key[:40])}]"


def expected(spec: Spec) -> str:
    if isinstance(spec, Leaf):
        return EXPECTED[spec.kind]
    if isinstance(spec, Maybe):
        return f"{expected(spec.spec)} or null"
    return "a list" if isinstance(spec, ListOf) else "an object"


def shown(value: Any) -> str:
    """A JSON value as a message names it (a long string or number cut short)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:g}" if math.isfinite(value) else ("-" if value < 0 else "") + "Infinity"
    if isinstance(value, int):
        digits = str(value)         # json.loads keeps ints to 4300 digits: str() can show them
        return digits if len(digits) <= 20 else f"{digits[:6]}… ({len(digits)} digits)"
    if isinstance(value, str):
        return f"a string {json.dumps(value if len(value) <= 40 else value[:40] + '…')}"
    return f"a list of {len(value)}" if isinstance(value, list) else "an object"


def _want(spec: Spec, nullable: bool) -> str:
    return expected(spec) + (" or null" if nullable else "")


def _leaf(spec: Leaf, value: Any, path: str, nullable: bool) -> None:
    kind = spec.kind
    if kind == "any":
        return
    if kind == "text":
        ok = isinstance(value, str)
    elif kind == "flag":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise Problem(path, f"expected {_want(spec, nullable)}, got {shown(value)}")
    if kind in ("number", "whole"):
        # a huge int is compared as it is: converting it to a float would overflow
        if isinstance(value, float) and not math.isfinite(value) or abs(value) > MAX_NUMBER:
            raise Problem(path, f"expected a finite number within ±{MAX_NUMBER:g}, got "
                          f"{shown(value)}")
        if kind == "whole" and isinstance(value, float) and not value.is_integer():
            raise Problem(path, f"expected a whole number, got {shown(value)}")


def check(spec: Spec, value: Any, path: str, nullable: bool = False) -> None:
    """Raise Problem at the first part of value that is not of spec's shape (nullable: null
    was allowed too, which the message says)."""
    if isinstance(spec, Maybe):
        if value is not None:
            check(spec.spec, value, path, nullable=True)
        return
    if isinstance(spec, Leaf):
        return _leaf(spec, value, path, nullable)
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            raise Problem(path, f"expected {_want(spec, nullable)}, got {shown(value)}")
        if len(value) < spec.min_len:
            raise Problem(path, f"expected a list of at least {spec.min_len}, got "
                          f"{shown(value)}")
        for i, item in enumerate(value):
            check(spec.item, item, join(path, i))
        return
    if not isinstance(value, dict):
        raise Problem(path, f"expected {_want(spec, nullable)}, got {shown(value)}")
    if isinstance(spec, MapOf):
        for k, v in value.items():
            check(spec.value, v, join(path, k))
        return
    for key, sub in spec.keys.items():
        name = key.removesuffix("?")
        if name in value:
            check(sub, value[name], join(path, name))
        elif name == key:
            raise Problem(join(path, name), f"missing; expected {expected(sub)}")
    if spec.same_length:
        _same_length(spec, value, path)


def _same_length(spec: Obj, value: dict, path: str) -> None:
    series = [k.removesuffix("?") for k in spec.keys if k.removesuffix("?") in value]
    if not series:
        return
    first, n = series[0], len(value[series[0]])
    for name in series[1:]:
        if len(value[name]) != n:
            raise Problem(join(path, name), f"expected one value per {first} ({n}), got "
                          f"{shown(value[name])}")


def check_depth(value: Any, path: str, depth: int = 0) -> None:
    """Nothing nested deeper than MAX_DEPTH (emul's documents nest 6 levels)."""
    if depth > MAX_DEPTH:
        shown_path = path if len(path) <= 60 else path[:60] + "…"
        raise Problem(shown_path, f"nested more than {MAX_DEPTH} levels deep; emul writes no "
                      f"such value")
    if isinstance(value, dict):
        for k, v in value.items():
            check_depth(v, join(path, k), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_depth(v, join(path, i), depth + 1)


# ---- rules across keys (run after the shape is known good) ----------------------------------

def summary_variants_have_repeats(doc: dict) -> None:
    """The summary is of the repeats: each variant it names has some (a plot divides by them)."""
    have = {r["variant"] for r in doc["repeats"]}
    for i, s in enumerate(doc["summary"]):
        if s["variant"] not in have:
            raise Problem(f"summary[{i}].variant", f"expected a variant of the repeats, got "
                          f"{shown(s['variant'])}, which no repeat names")


def lock_classes_agree(doc: dict) -> None:
    """Every repeat lists the same lock classes (the tables and plots index them by position)."""
    rows = doc["repeats"]
    for i, row in enumerate(rows[1:], start=1):
        if len(row["lock_stat"]) != len(rows[0]["lock_stat"]):
            raise Problem(f"repeats[{i}].lock_stat", f"expected the {len(rows[0]['lock_stat'])} "
                          f"lock classes of repeats[0], got {shown(row['lock_stat'])}")


CROSS_CHECKS: tuple[Callable[[dict], None], ...] = (summary_variants_have_repeats,
                                                     lock_classes_agree)


def check_results(doc: Any, where: str) -> None:
    """The results document doc (read from where) is of the shape emul writes; else one
    InputError naming the first key that is not."""
    try:
        check(RESULTS, doc, "")
        check_depth(doc, "")
        for rule in CROSS_CHECKS:
            rule(doc)
    except Problem as p:
        raise InputError(where, p.path or None, p.message) from None
