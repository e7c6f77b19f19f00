"""``emul machinery``'s table: emul's own work per kernel step on this host beside the
profile's target for it (emul/harness/machinery.py says how the probe measures it)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from emul.config.costs import COST_NAMES, PER_UNIT
from emul.harness.group import GroupState
from emul.report.textout import set_key_columns

if TYPE_CHECKING:
    from rich.table import Table


def machinery_rows(groups: Sequence[GroupState]) -> list[dict[str, Any]]:
    """One row per variant, role and step the role did in the probe, in host ns: the target
    (the profile's figure for the role's emulated core class, times the dilation) and emul's
    machinery; per-unit costs compare per page or KiB with the machinery per step."""
    rows = []
    for g in groups:
        for v in g.sc.variants:
            m = g.machinery[v.name]
            for role, rm in sorted(m.roles.items()):
                core = next(g.core_classes[v.name][w.name] for w in g.plan.of_role(role))
                targets = g.profile.costs_of(core)
                targets.update(dict(v.costs))
                for i, step in enumerate(COST_NAMES):
                    if not rm.events[i]:
                        continue
                    base = float(targets.get(step, 0.0))
                    rows.append({"group": v.group or g.sc.name, "variant": v.name, "role": role,
                                 "core": core, "step": step, "events": rm.events[i],
                                 "unit": PER_UNIT.get(step, "step"),
                                 "target_ns": base * g.sc.dilate, "profile_ns": base,
                                 "machinery_ns": rm.step[i] / m.ticks_per_ns,
                                 "wait_overhead_ns": m.wait_overhead(role) / m.ticks_per_ns,
                                 "dilate": g.sc.dilate})
    return rows


def overruns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-step rows whose machinery exceeds the target."""
    return [r for r in rows if r["unit"] == "step" and r["machinery_ns"] > r["target_ns"]]


def smallest_dilation(rows: list[dict[str, Any]]) -> float:
    """The dilation at which no per-step target is below its machinery (1: none is)."""
    need = [r["machinery_ns"] / r["profile_ns"] for r in rows
            if r["unit"] == "step" and r["profile_ns"] > 0]
    return max([1.0] + need)


def machinery_table(rows: list[dict[str, Any]]) -> "Table":
    from rich.table import Table
    t = Table(title="emul's machinery per kernel step on this host (host ns; uncontended, "
                    "each role alone)",
              caption="target: the profile's figure for the role's core class x the dilation; "
                      "left: what a step busy-waits (target - machinery - the wait's own "
                      "overhead); N/page, N/KiB: the target is per unit, the machinery per step")
    set_key_columns(t, 3)      # a row is a variant's role's step
    for col in ("variant", "role", "step", "events", "target", "machinery", "left", "note"):
        t.add_column(col, justify="left" if col in ("variant", "role", "step", "note")
                     else "right")
    for r in rows:
        per = "" if r["unit"] == "step" else f"/{r['unit']}"
        left = r["target_ns"] - r["machinery_ns"] - r["wait_overhead_ns"]
        note = ("overrun" if r["unit"] == "step" and r["machinery_ns"] > r["target_ns"]
                else "no wait" if r["unit"] == "step" and left <= 0 else "")
        role = f"{r['role']} ({r['core']})" if r["core"] else r["role"]
        t.add_row(escape(r["variant"]), escape(role), escape(r["step"]), f"{r['events']:,}",
                  f"{r['target_ns']:,.0f}{per}",
                  f"{r['machinery_ns']:,.0f}", "-" if per else f"{max(0.0, left):,.0f}", note)
    return t
