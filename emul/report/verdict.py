"""The run's answer in one line per group: which design finished the measured work first, which
had everything freed first, which held the least memory back, and which contended least.

Computed from the repeats alone (so `emul report` gives it for any results file). A winner that
a permutation test cannot tell from the runner-up over the repeats is shown with "≈ runner-up":
on a shared machine the order of two close designs is not a finding.
"""
from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from rich.markup import escape

from emul.report.summary import SIGNIFICANCE, permutation_p
from emul.report.textout import set_key_columns

if TYPE_CHECKING:
    from rich.table import Table


def _by_variant(doc: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in doc["repeats"]:
        out.setdefault(r["variant"], []).append(r)
    return out


def _contentions(row: dict) -> int:
    return sum(int(c.get("contentions", 0)) for c in row.get("lock_stat", []))


def _best(samples: dict[str, list[float]], unit: str, fmt: str) -> str:
    """The variant with the lowest median, '≈ runner-up' if the repeats cannot separate them."""
    if not samples:
        return "-"
    ranked = sorted(samples, key=lambda v: statistics.median(samples[v]))
    best = ranked[0]
    text = f"{best} ({fmt.format(statistics.median(samples[best]))}{unit})"
    if len(ranked) > 1:
        second = ranked[1]
        a, b = samples[best], samples[second]
        if statistics.median(a) == statistics.median(b) or permutation_p(a, b) >= SIGNIFICANCE:
            text += f" ≈ {second}"
    return text


def verdicts(doc: dict) -> list[dict]:
    """One dict per group: its name and the four answers (texts)."""
    rows = _by_variant(doc)
    groups: dict[str, list[str]] = {}
    for s in doc["summary"]:
        groups.setdefault(s.get("group", ""), []).append(s["variant"])
    out = []
    for group, variants in groups.items():
        vs = [v for v in variants if rows.get(v)]
        done = {v: [r["time_ns"] / 1e6 for r in rows[v]] for v in vs}
        freed = {v: [(r["time_ns"] + r["gc_drain_ns"]) / 1e6 for r in rows[v]] for v in vs}
        lazy = [v for v in vs if any(r["lazy"] for r in rows[v])]
        held = {v: [r.get("peak_backlog_bytes", 0) / 2**20 for r in rows[v]] for v in lazy}
        # contentions are counted with or without lockstat (only acquisitions need it)
        contended = {v: [float(_contentions(r)) for r in rows[v]] for v in vs}
        out.append({
            "group": group or "-",
            "done_first": _best(done, " ms", "{:.2f}"),
            "freed_first": _best(freed, " ms", "{:.2f}"),
            "least_held": _best(held, " MiB", "{:.1f}"),
            "fewest_contentions": (_best(contended, "", "{:,.0f}")
                                   if any(any(x) for x in contended.values()) else "none"),
        })
    return out


def verdict_table(doc: dict) -> Table:
    """The verdicts as a rich Table."""
    from rich.table import Table
    what = "swap-in" if doc["scenario"]["experiment"] == "swapin" else "unmap"
    t = Table(title="verdict (medians over the repeats)",
              caption=f"{what} done: the measured actors' time; everything freed: that plus the "
                      f"GC's drain; held back: peak compressed memory queued, lazy designs only; "
                      f"contentions: all lock classes per repeat; ≈ X: not significantly ahead "
                      f"of X (p ≥ {SIGNIFICANCE})")
    groups = verdicts(doc)
    grouped = any(g["group"] != "-" for g in groups)
    set_key_columns(t, 1 if grouped else 0)   # cut into blocks, each keeps the group's name
    if grouped:
        t.add_column("group", no_wrap=True)
    for col in (f"{what} done first", "everything freed first", "least held back",
                "fewest lock contentions"):
        t.add_column(col, no_wrap=True)
    for g in groups:
        cells = [g["done_first"], g["freed_first"], g["least_held"], g["fewest_contentions"]]
        if len(t.columns) == 5:
            cells.insert(0, g["group"])
        t.add_row(*(escape(c) for c in cells))     # the texts name variants: no markup
    return t
