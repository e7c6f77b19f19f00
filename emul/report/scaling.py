"""The scaling report of a sweep over the number of concurrent exits (``vary: exits`` or
``killers``, emul/config/vary.py): will-it-scale's curve, one line per design.

At each point (N exits at once, one killer each) and for each design:

  time      the median over the repeats of the whole phase: first exit's start to last one's end
            (what the published 1 / 2 / 4-process rows give)
  per exit  the average exit's own time: the killers' own times summed, over the exits
  MiB/s     the pages the exits unmapped, per second of the phase: the total throughput
  linear    the throughput against N / N0 times the design's own at its smallest point N0
            (100 %: perfect scaling; will-it-scale's "linear" column)
  vs sync   the design's speedup over its group's baseline (sync) at the same point, marked
            significant as in the run's own table (emul/report/summary.py)

A point this machine cannot run (its killers would share a CPU) is a row of its own with the
reason, never a figure. A design is the variant's name without the point's label: "sync
zs=v6 exits=2" is design "sync zs=v6" at 2 exits; "sync exits=2 page=16K" is design "sync
page=16K", whose curve runs over the 16K groups only.

The rule counts the killers only: where a lazy design's GC must share a CPU with a killer
(two exits on two CPUs), the point runs, the CPUs cell says "GC on 1" and the run's
oversubscription warning gives the time it waited; the sync rows, whose GC has nothing to do,
are not affected.
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from emul.config.vary import concurrent_exits
from emul.report.textout import set_key_columns

if TYPE_CHECKING:
    from rich.table import Table

    from emul.config.spec import Scenario
    from emul.config.vary import SkippedPoint


def scaling_doc(key: str, groups: Sequence[Scenario], skipped: Sequence[SkippedPoint],
                rows: list[dict], summary: list[dict]) -> dict[str, Any]:
    """results.json's ``scaling``: the sweep's points (run or skipped) and one row per design
    and point."""
    points: list[dict[str, Any]] = []
    for sc in groups:
        n = concurrent_exits(sc)
        killers = sorted(set(sc.workers.killers[:n]))
        points.append({"group": sc.variants[0].group, "exits": n, "cpus": killers,
                       "skipped": None, "page_size": sc.page_size,
                       # a GC held until the exits are done (start: after) shares nothing
                       "gc_shares": sorted(set(sc.workers.gc.cpus) & set(killers))
                       if sc.workers.gc.start == "at-once" else []})
    points += [{"group": p.group, "exits": p.exits, "cpus": [], "skipped": p.reason,
                "needs_cpus": p.needs_cpus} for p in skipped]
    points.sort(key=lambda p: p["exits"])
    return {"key": key, "points": points, "rows": scaling_rows(key, points, rows, summary)}


def _without(name: str, key: str) -> str:
    """A variant's or group's name without the sweep's own label (``exits=2``)."""
    return " ".join(t for t in name.split() if not t.startswith(f"{key}="))


def design_of(variant: str, key: str) -> str:
    """The design a variant stands for: its name without the point's label; the labels of
    other varied keys stay (``sync page=16K``)."""
    return _without(variant, key) or variant


def _point_label(point: dict, key: str) -> str:
    """What else the point's group varies: its label without the sweep's own."""
    return _without(point["group"], key)


def scaling_rows(key: str, points: list[dict], rows: list[dict],
                 summary: list[dict]) -> list[dict]:
    """One row per design and point of its own kind (the other varied keys' values equal),
    in the order of the designs' first appearance and of the number of exits."""
    by_group: dict[str, dict] = {p["group"]: p for p in points}
    cells: dict[str, dict[str, dict]] = {}      # design -> group -> figures
    for s in summary:
        point = by_group.get(s.get("group", ""))
        if point is None or point.get("skipped"):
            continue
        n = point["exits"]
        rs = [r for r in rows if r["variant"] == s["variant"]]
        per_exit = statistics.median(
            sum(r.get("headline_ns", {}).values() or [r["time_ns"] * n]) / n for r in rs)
        mib_s = statistics.median([r["ptes"] * point.get("page_size", 4096) / 2**20
                                   / (r["time_ns"] / 1e9) for r in rs if r["time_ns"] > 0]
                                  or [0.0])
        cells.setdefault(design_of(s["variant"], key), {})[point["group"]] = {
            "variant": s["variant"], "strategy": s.get("strategy", ""),
            "time_ms": s["time_ms_median"], "spread_pct": s["spread_pct"],
            "per_exit_ms": per_exit / 1e6, "mib_per_s": mib_s,
            "baseline": s.get("baseline", s["variant"]), "speedup": s["speedup"],
            "significant": bool(s.get("significant"))}
    out = []
    for design, at in cells.items():
        kind = _point_label(by_group[next(iter(at))], key)
        mine = [p for p in points if _point_label(p, key) == kind]
        ran = [by_group[g] for g in at]
        first = min(ran, key=lambda p: p["exits"])
        for p in mine:
            value = next((t for t in p["group"].split() if t.startswith(f"{key}=")), "")
            row = {"design": design, "exits": p["exits"], "group": p["group"], "cpus": p["cpus"],
                   "skipped": p["skipped"], "needs_cpus": p.get("needs_cpus", p["exits"]),
                   # killers=3 over 2 processes: 2 exits at once, the third killer idle
                   "point": value if value != f"{key}={p['exits']}" else ""}
            cell = at.get(p["group"])
            if cell is not None:
                base = at[first["group"]]["mib_per_s"] * p["exits"] / first["exits"]
                row.update(cell, linear_pct=100.0 * cell["mib_per_s"] / base if base else 0.0,
                           gc_shares=p["gc_shares"] if cell["strategy"] != "sync" else [])
            out.append(row)
    return out


def scaling_table(doc: dict) -> Table | None:
    """The curve as a table, one block of rows per design (None: not a scaling sweep)."""
    sc = doc.get("scaling")
    if not sc or not sc.get("rows"):
        return None
    from rich.table import Table
    key = sc["key"]
    t = Table(title=f"scaling: {escape(doc['scenario']['name'])} — against the number of "
                    f"concurrent exits (vary: {escape(key)})",
              caption="time: first exit's start to last one's end; per exit: the average "
                      "exit's own time; MiB/s: pages unmapped per second of the phase; "
                      "linear: the throughput against N/N0 times the design's own at its "
                      "smallest point; vs sync: the baseline's time / the design's at the same "
                      "point (* significant)")
    for col, just in (("design", "left"), ("exits", "right"), ("CPUs", "left"),
                      ("time (±spread)", "right"), ("per exit", "right"), ("MiB/s", "right"),
                      ("linear", "right"), ("vs sync", "right")):
        t.add_column(col, justify=just, no_wrap=col != "vs sync")  # type: ignore[arg-type]
    set_key_columns(t, 2)       # a cut table repeats design and exits in every block
    previous = None
    for r in sc["rows"]:
        name = escape(r["design"])
        if previous is not None and r["design"] != previous:
            t.add_section()
        previous = r["design"]
        if r.get("skipped"):
            t.add_row(name, _exits(r), "-", f"needs {r['needs_cpus']} CPUs", "", "", "",
                      "not run")
            continue
        if "time_ms" not in r:       # the design has no variant at this point
            t.add_row(name, _exits(r), "-", "-", "-", "-", "-", "-")
            continue
        vs = ("baseline" if r["baseline"] == r["variant"] else
              f"{r['speedup']:.2f}×{'*' if r['significant'] else ' '}")
        cpus = ",".join(map(str, r["cpus"]))
        if r.get("gc_shares"):       # a lazy design's GC time-sliced against a killer
            cpus += f" (GC on {','.join(map(str, r['gc_shares']))})"
        t.add_row(name, _exits(r), cpus,
                  f"{r['time_ms']:.2f} ms (±{r['spread_pct']:.1f}%)", f"{r['per_exit_ms']:.2f} ms",
                  f"{r['mib_per_s']:,.0f}", f"{r['linear_pct']:.0f} %", vs)
    return t


def _exits(row: dict) -> str:
    return f"{row['exits']} ({escape(row['point'])})" if row.get("point") else str(row["exits"])


def skipped_lines(doc: dict) -> list[str]:
    """One line per point not run, for the run's progress and summary."""
    sc = doc.get("scaling") or {}
    return [f"{p['group']}: not run, {p['skipped']}" for p in sc.get("points", [])
            if p.get("skipped")]
