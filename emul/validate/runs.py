"""Run one of the record's scenarios the way ``emul run`` would, and return its results document.

Each scenario runs at the smallest dilation its paths need on this host: first emul's
machinery is probed (or loaded from the cache), then each measured role's machinery over all
its steps is set against the profile's targets for them; where the machinery needs more time
than the board takes, every target is stretched by that factor (and 15 % room), as
``--dilate`` would. A per-step overrun alone does not need it: the next steps' waits make it
up (kernel/context.py, pay_target). What dilation distorts: contention (real cache-line and
lock hand-off costs) does not dilate, so it shrinks by the factor in reported time.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any

from emul.config.profiles import builtin_names, load_profile
from emul.config.scenario import read_yaml, scenario_from_dict
from emul.config.sizes import size_bytes
from emul.config.spec import Scenario
from emul.errors import AuditFailed
from emul.harness.controller import Group, probe_groups, run_groups
from emul.harness.plan import debug_bits
from emul.report import results
from emul.report.machinery import machinery_rows
from emul.report.results import timing_doc
from emul.strategies import strategy_names

ROOM = 1.15          # dilation beyond the bare need: the probe's figures are medians of noise


def scenario_of(path: str, vma: str | None, repeats: int | None, scale: float = 1.0) -> Scenario:
    """The scenario file, with row 6's VMA size (the device grown to hold it), every VMA and
    the device scaled by ``scale`` (whole MiB), and repeats."""
    raw = copy.deepcopy(read_yaml(path, path))
    if isinstance(raw, dict) and (vma is not None or scale != 1.0):
        procs = raw.get("processes") or []
        for proc in procs:
            size = size_bytes(vma if vma is not None else proc.get("vma", "1M"))
            proc["vma"] = f"{max(1, int(size * scale) >> 20)}M"
        need = 2 * sum(size_bytes(p["vma"]) for p in procs)
        zram = raw.setdefault("zram", {})
        scaled = int(size_bytes(zram.get("disksize", "1M")) * scale)
        zram["disksize"] = f"{max(need, scaled) >> 20}M"
    sc = scenario_from_dict(raw, where=path, cpus=os.sched_getaffinity(0),
                            strategies=strategy_names(), profiles=builtin_names())
    if repeats is not None:
        sc = dataclasses.replace(sc, repeats=repeats)
    debug_bits(sc)
    return sc


def path_dilation(rows: list[dict[str, Any]]) -> float:
    """The smallest dilation at which every role's machinery over its per-event steps fits in
    their targets (1 when it already does), with ROOM, rounded up to a tenth."""
    need = 1.0
    sums: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if r["unit"] != "step":
            continue
        s = sums.setdefault((r["variant"], r["role"]), [0.0, 0.0])
        s[0] += r["machinery_ns"] * r["events"]
        s[1] += r["profile_ns"] * r["events"]
    for machinery, target in sums.values():
        if target > 0 and machinery > target / ROOM:
            need = max(need, machinery * ROOM / target)
    return math.ceil(need * 10) / 10


def run_scenario(sc: Scenario, progress: Callable[[str], None]) -> dict[str, Any]:
    """Probe, choose the dilation, run every repeat; the results document."""
    profile = load_profile(sc.profile)
    probe = Group(sc, profile, progress)
    probe_groups([probe])
    sc = dataclasses.replace(sc, dilate=path_dilation(machinery_rows([probe])))
    group = Group(sc, profile, progress)
    rows: list[dict] = []
    run_groups([group], lambda rec: rows.append(rec.to_json()))
    bad = [r for r in rows if not r["audit"]["ok"]]
    doc = results.build([sc], [profile], group.ticks_per_ns, rows,
                        "audit-failed" if bad else "ok")
    doc.update(timing_doc([group]))
    if bad:
        raise AuditFailed(f"the audit failed in {len(bad)} of {len(rows)} repeats: "
                          + "; ".join(bad[0]["audit"]["problems"]))
    return doc
