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
from collections.abc import Callable, Sequence
from typing import Any

from emul.config.profiles import builtin_names, load_profile
from emul.config.scenario import read_yaml
from emul.config.sizes import size_bytes
from emul.config.spec import Scenario
from emul.config.vary import SkippedPoint, sweep_from_dict
from emul.errors import AuditFailed
from emul.harness.controller import Group, probe_groups, run_groups
from emul.harness.plan import debug_bits
from emul.report import results
from emul.report.machinery import machinery_rows
from emul.report.results import timing_doc
from emul.strategies import strategy_names

ROOM = 1.15          # dilation beyond the bare need: the probe's figures are medians of noise


def scenarios_of(path: str, vma: str | None, repeats: int | None, scale: float = 1.0,
                 ) -> tuple[list[Scenario], list[SkippedPoint]]:
    """The scenario file's groups, with row 6's VMA size (the device grown to hold it), every
    VMA and the device scaled by ``scale`` (whole MiB), and repeats; and the points of a
    scaling sweep (rows 3 and 4: 1, 2, 4 exits) this machine cannot run."""
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
    groups, skipped = sweep_from_dict(raw, path, cpus=os.sched_getaffinity(0),
                                      strategies=strategy_names(), profiles=builtin_names())
    if repeats is not None:
        groups = [dataclasses.replace(sc, repeats=repeats) for sc in groups]
    for sc in groups:
        debug_bits(sc)
    return groups, skipped


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


def run_scenario(scenarios: list[Scenario], progress: Callable[[str], None],
                 skipped: Sequence[SkippedPoint] = ()) -> dict[str, Any]:
    """Probe, choose one dilation for every group, run every repeat; the results document."""
    profiles = [load_profile(sc.profile) for sc in scenarios]
    probes = [Group(sc, p, progress) for sc, p in zip(scenarios, profiles)]
    probe_groups(probes)
    dilate = path_dilation(machinery_rows(probes))
    scenarios = [dataclasses.replace(sc, dilate=dilate) for sc in scenarios]
    groups = [Group(sc, p, progress) for sc, p in zip(scenarios, profiles)]
    rows: list[dict] = []
    run_groups(groups, lambda rec: rows.append(rec.to_json()))
    bad = [r for r in rows if not r["audit"]["ok"]]
    doc = results.build(scenarios, profiles, max(g.ticks_per_ns for g in groups), rows,
                        "audit-failed" if bad else "ok", skipped=skipped)
    doc.update(timing_doc(groups))
    if bad:
        raise AuditFailed(f"the audit failed in {len(bad)} of {len(rows)} repeats: "
                          + "; ".join(bad[0]["audit"]["problems"]))
    return doc
