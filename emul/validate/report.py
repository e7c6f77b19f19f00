"""emul validate's table, results.json and plot."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from emul.report import results
from emul.report.results import machine_info
from emul.validate.outcome import BAND, Outcome

if TYPE_CHECKING:
    from rich.table import Table

SCHEMA = "emul-validate"
SCHEMA_VERSION = 1


def table(outcomes: list[Outcome]) -> "Table":
    from rich.table import Table
    t = Table(title="emul validate: the published record beside emul (medians over the repeats)",
              caption=f"emul / published inside ±{BAND:.0%} is the goal for out-of-sample "
                      "figures; in-sample figures are what a profile was derived from",
              show_lines=False)
    for col in ("figure", "board", "experiment", "published", "emul", "emul / pub.", "sample",
                "mechanism"):
        t.add_column(col, justify="right" if col in ("published", "emul", "emul / pub.")
                     else "left", overflow="fold")
    for o in outcomes:
        pub = (("-" if not o.published_ms else f"{o.published_ms:,.1f} ms") if o.unit == "ms"
               else f"{o.published_ms:.2f}x")
        if o.status == "ran":
            emul = (f"{o.emul_ms:,.1f} ms ±{o.spread_pct:.0f}%" if o.unit == "ms"
                    else f"{o.emul_ms:.2f}x")
            ratio = f"{o.ratio:.2f}" + ("" if o.in_band or o.sample == "in-sample" else " !")
            why = o.mechanism
        else:
            emul, ratio, why = o.status, "-", o.reason
        t.add_row(o.key, o.board, o.experiment, pub, emul, ratio, o.sample, escape(why))
    return t


def headline(outcomes: list[Outcome]) -> str:
    ran = [o for o in outcomes if o.status == "ran" and o.sample == "out-of-sample"]
    inside = [o for o in ran if o.in_band]
    skipped = sum(1 for o in outcomes if o.status == "skipped")
    errors = sum(1 for o in outcomes if o.status == "error")
    return (f"{len(inside)} of {len(ran)} out-of-sample figures within ±{BAND:.0%}; "
            f"{sum(1 for o in outcomes if o.sample == 'in-sample')} in-sample; "
            f"{skipped} skipped (CPUs), {errors} errors")


def write(outdir: Path, outcomes: list[Outcome], status: str, quick: bool) -> Path:
    doc: dict[str, Any] = {"schema": SCHEMA, "version": SCHEMA_VERSION, "status": status,
                           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": quick,
                           "machine": machine_info(), "band": BAND,
                           "figures": [o.to_json() for o in outcomes]}
    return results.write(outdir, doc)


def plot(outdir: Path, outcomes: list[Outcome]) -> Path | None:
    """Published against emulated, one point per figure, the ±15 % band drawn."""
    ran = [o for o in outcomes if o.status == "ran" and o.emul_ms and o.unit == "ms"]
    if not ran:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 6))
    lo = min(min(o.published_ms, o.emul_ms or 0) for o in ran) * 0.7
    hi = max(max(o.published_ms, o.emul_ms or 0) for o in ran) * 1.4
    xs = [lo, hi]
    ax.plot(xs, xs, color="black", lw=0.8)
    ax.fill_between(xs, [x * (1 - BAND) for x in xs], [x * (1 + BAND) for x in xs],
                    color="tab:green", alpha=0.15, label=f"±{BAND:.0%}")
    for sample, marker, color in (("in-sample", "s", "tab:gray"),
                                  ("out-of-sample", "o", "tab:blue")):
        pts = [o for o in ran if o.sample == sample]
        ax.scatter([o.published_ms for o in pts], [o.emul_ms or 0.0 for o in pts], marker=marker,
                   color=color, label=sample, zorder=3)
        for o in pts:
            ax.annotate(o.key, (o.published_ms, o.emul_ms or 0), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("published (ms)")
    ax.set_ylabel("emul (ms, median)")
    ax.set_title("emul validate")
    ax.legend(loc="upper left")
    path = outdir / "validate.png"
    tmp = outdir / "validate.tmp.png"
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path
