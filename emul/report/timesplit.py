"""Where the time went: each measured actor's time split the way ``perf report`` would show it.

The record of each repeat (emul/harness/collect.py, ``time_split``) gives, per worker, the
busy-waits per modelled cost (the target less emul's own machinery), emul's machinery inside the
steps, the strategy's own work, the loops around the steps, lock waits per class, the time it was
preempted, and the rest (what none of these explains: cache lines other CPUs held, time a
hypervisor took). Here they are medians over the repeats, per variant and worker, in ns per
page of the headline actors.
"""
from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from emul.report.textout import set_key_columns

if TYPE_CHECKING:
    from rich.table import Table

PARTS = ("costs", "machinery", "design", "loops", "lock waits", "preempted", "rest")


def parts(split: dict[str, Any]) -> dict[str, float]:
    """One worker's split as the table's columns (ns)."""
    return {"costs": sum(split["costs_ns"].values()), "machinery": split["machinery_ns"],
            "design": split["design_ns"], "loops": split["loops_ns"],
            "lock waits": sum(split["lock_wait_ns"].values()),
            "preempted": split.get("preempted_ns", 0.0), "rest": split["rest_ns"],
            "overrun": sum(split["overrun_ns"].values()), "measured": split["measured_ns"]}


def split_rows(doc: dict) -> list[dict[str, Any]]:
    """variant, worker, and the median of each part per page over the variant's repeats."""
    out = []
    variants = [s["variant"] for s in doc["summary"]]
    for v in variants:
        reps = [r for r in doc["repeats"] if r["variant"] == v and r.get("time_split")]
        workers = list(dict.fromkeys(w for r in reps for w in r["time_split"]))
        for w in workers:
            per = [{k: x / max(1, r["ptes"]) for k, x in parts(r["time_split"][w]).items()}
                   for r in reps if w in r["time_split"]]
            row = {k: statistics.median(p[k] for p in per) for k in per[0]}
            out.append({"variant": v, "worker": w, **row})
    return out


def overruns(doc: dict) -> dict[tuple[str, str], dict[str, float]]:
    """(worker role, step) -> the largest machinery and the smallest target per event seen
    where emul's machinery on this host exceeded the step's target."""
    found: dict[tuple[str, str], dict[str, float]] = {}
    for r in doc["repeats"]:
        for w, split in (r.get("time_split") or {}).items():
            for step, o in (split.get("overrun_steps") or {}).items():
                key = (w, step)
                seen = found.setdefault(key, {"machinery_ns": 0.0, "target_ns": float("inf"),
                                              "events": 0})
                seen["machinery_ns"] = max(seen["machinery_ns"], o["machinery_ns"])
                seen["target_ns"] = min(seen["target_ns"], max(0.0, o["target_ns"]))
                seen["events"] += o["events"]
    return found


def overrun_warning(doc: dict) -> str | None:
    """One line naming the worst overrun and the smallest dilation that removes them all."""
    found = overruns(doc)
    if not found:
        return None
    ratio = {k: o["machinery_ns"] / o["target_ns"] if o["target_ns"] > 0 else float("inf")
             for k, o in found.items()}
    (worker, step), worst = max(ratio.items(), key=lambda kv: kv[1])
    o = found[(worker, step)]
    dil = doc.get("dilation", 1.0)
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    hint = (f"; --dilate {dil * worst * 1.1:.1f} would remove every overrun"
            if worst != float("inf") else "")
    over, repaid = made_up(doc)
    if over > 0 and repaid >= 0.99 * over:
        effect = ("the next steps' waits made it up, so the paths keep the profile's totals, "
                  "but those steps end later within them")
    else:
        effect = (f"the next steps' waits made up {repaid / over:.0%} of it; the rest makes "
                  f"the paths longer than the profile says" if over > 0 else
                  "those steps take longer than the profile says")
    return (f"emul's own machinery exceeds the profile's target on this host: {step} in "
            f"{worker}, {o['machinery_ns']:.0f} ns against {o['target_ns']:.0f} ns a step"
            f"{more}; {effect}{hint}")


def made_up(doc: dict) -> tuple[float, float]:
    """(ns of overrun, ns of it that later waits made up), over every repeat and worker."""
    over = repaid = 0.0
    for r in doc["repeats"]:
        for split in (r.get("time_split") or {}).values():
            over += sum(split.get("overrun_ns", {}).values())
            repaid += split.get("repaid_ns", 0.0)
    return over, repaid


def split_table(doc: dict) -> "Table | None":
    """The split as a table (None when the run recorded none)."""
    rows = split_rows(doc)
    if not rows:
        return None
    from rich.table import Table
    dil = doc.get("dilation", 1.0)
    t = Table(title="where the time went (ns per page, medians over the repeats"
                    + (f"; time dilated x{dil:g}" if dil != 1 else "") + ")",
              caption="costs: busy-waits for the modelled costs (their targets less emul's own "
                      "machinery); machinery: emul's physical work in the steps (over target: "
                      "overrun); design: the strategy's own work; loops: around the steps; "
                      "preempted: runnable while another task had the CPU; rest: what none "
                      "explains (cache lines other CPUs held, time the hypervisor took)")
    set_key_columns(t, 2)   # the plain format repeats variant and the second key in blocks
    for col in ("variant", "worker", "measured", *PARTS, "overrun"):
        t.add_column(col, justify="left" if col in ("variant", "worker") else "right")
    for r in rows:
        # names from the document: literal, not markup
        t.add_row(escape(r["variant"]), escape(r["worker"]), f"{r['measured']:,.0f}",
                  *(f"{r[p]:,.0f}" for p in PARTS), f"{r['overrun']:,.0f}")
    return t
