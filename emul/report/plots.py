"""PNG plots of a run, from its results document alone (so `emul report` can redraw them).

``figures(doc)`` builds the matplotlib figures (tests read their series back from the objects);
``render_all(doc, outdir)`` writes them as PNG files and returns the paths:

  memory.png    memory held over time per variant: resident pages of the measured processes
                (a panel only when any are resident), and zsmalloc's compressed pages; the
                median repeat of each variant (by its measured time), a dashed line where its
                measured phase ended and the GC's drain began
  latency.png   the measured time of every repeat per variant (and of the other actors)
  backlog.png   the GC backlog over time per variant (median repeat), its cap as a dotted line
  locks.png     contentions and wait time per lock class and variant
  workers.png   where each worker ran: repeats in which it was seen on each CPU
  timesplit.png where the measured workers' time went, per page
  waits.png     wait-time histograms of the (class, waiter, holder) pairs with the most wait
  scaling.png   (a sweep over concurrent exits) time per exit and throughput against the
                number of exits, per design, with the linear line (emul/report/scaling.py)
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# names from user files (profiles, traces, hand-edited results) are text: "$x$" is not math
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen first)
from matplotlib.figure import Figure  # noqa: E402

from emul.report.replayplot import save  # noqa: E402



def _variants(doc: dict) -> list[str]:
    return [s["variant"] for s in doc["summary"]]


def _first_rows(doc: dict) -> dict[str, dict]:
    """Per variant, its median repeat (by measured time) among those with a timeline."""
    by: dict[str, list[dict]] = {}
    for r in doc["repeats"]:
        if "timeline" in r and r["timeline"]["t_ms"]:
            by.setdefault(r["variant"], []).append(r)
    return {v: sorted(rs, key=lambda r: r["time_ns"])[(len(rs) - 1) // 2] for v, rs in by.items()}


def _title(doc: dict, what: str) -> str:
    """A title that wraps rather than running off the figure."""
    import textwrap
    m = doc["machine"]
    text = (f"{doc['scenario']['name']}: {what} — {m['arch']}, "
            f"profile {', '.join(doc.get('profiles') or [doc['profile']['name']])}")
    return "\n".join(textwrap.wrap(text, 90))


def _colours(n: int) -> list:
    """Distinct colours for n series: matplotlib's ten, then tab20 and beyond, a colormap."""
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    cmap = plt.get_cmap("tab20" if n <= 20 else "turbo")
    return [cmap(i / max(1, n - 1)) if n > 20 else cmap(i) for i in range(n)]


def _phase_end(ax, r: dict, colour) -> None:
    """A dashed line where the repeat's measured phase ended (the GC drain goes on after)."""
    ax.axvline(r["time_ns"] / 1e6, color=colour, linestyle="--", linewidth=0.8, alpha=0.7)


def memory_figure(doc: dict) -> Figure:
    """memory.png: resident and compressed memory held over the phase, per variant."""
    rows = _first_rows(doc)
    resident = any(any(r["timeline"]["resident_mb"]) for r in rows.values())
    if resident:
        fig, (ax_r, ax_c) = plt.subplots(1, 2, figsize=(13, 4.8), sharex=True)
        axes: tuple = (ax_r, ax_c)
    else:       # every page was swapped out: the resident panel would be empty
        fig, ax_c = plt.subplots(figsize=(9, 4.8))
        axes = (ax_c,)
    for (v, r), colour in zip(rows.items(), _colours(len(rows))):
        tl = r["timeline"]
        if resident:
            ax_r.plot(tl["t_ms"], tl["resident_mb"], label=v, color=colour)
            _phase_end(ax_r, r, colour)
        ax_c.plot(tl["t_ms"], tl["compressed_mb"], label=v, color=colour)
        _phase_end(ax_c, r, colour)
    if resident:
        ax_r.set(title="resident memory held", xlabel="ms since the phase began", ylabel="MiB")
    ax_c.set(title="compressed memory held (zsmalloc pages)", xlabel="ms since the phase began",
             ylabel="MiB")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle(_title(doc, "memory held, median repeat of each variant; dashed: the measured "
                        "phase ends, the GC drain goes on"))
    fig.tight_layout()
    return fig


def latency_figure(doc: dict) -> Figure:
    """latency.png: every repeat's measured time per variant, the other actors' beside it."""
    variants = _variants(doc)
    what = "swap-in" if doc["scenario"]["experiment"] == "swapin" else "unmap"
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(variants) + 3), 4.5))
    for n, (v, colour) in enumerate(zip(variants, _colours(len(variants)))):
        times = [r["time_ns"] / 1e6 for r in doc["repeats"] if r["variant"] == v]
        ax.scatter([n] * len(times), times, s=18, alpha=0.7, label=v, color=colour)
    others = sorted({k for r in doc["repeats"] for k in r.get("other_actors_ns", {})})
    for k in others:
        for n, v in enumerate(variants):
            t = [r["other_actors_ns"][k] / 1e6 for r in doc["repeats"]
                 if r["variant"] == v and k in r.get("other_actors_ns", {})]
            ax.scatter([n + 0.2] * len(t), t, s=14, marker="x", color="0.4",
                       label=k if n == 0 else None)
    ax.set_xticks(range(len(variants)), variants, rotation=20, ha="right")
    ax.set(title=_title(doc, f"{what} time of every repeat"), ylabel="ms")
    return _finish(fig, ax)


def backlog_figure(doc: dict) -> Figure:
    """backlog.png: slots queued for the GC over the phase, per variant."""
    rows = _first_rows(doc)
    caps = {v["name"]: v.get("cap_slots") for v in doc["scenario"].get("variants", [])}
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for (v, r), colour in zip(rows.items(), _colours(len(rows))):
        ax.plot(r["timeline"]["t_ms"], r["timeline"]["gc_backlog"], label=v, color=colour)
        _phase_end(ax, r, colour)
        if caps.get(v):
            ax.axhline(caps[v], color=colour, linestyle=":", linewidth=1.0,
                       label=f"{v} cap ({caps[v]:,} slots)")
    ax.set(title=_title(doc, "GC backlog, median repeat of each variant; dashed: the measured "
                        "phase ends"), xlabel="ms since the phase began", ylabel="slots queued")
    return _finish(fig, ax)


def _finish(fig: Figure, ax) -> Figure:
    """A single-panel figure's grid and legend, laid out."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def locks_figure(doc: dict) -> Figure:
    """locks.png: contentions and wait time per lock class and variant."""
    variants = _variants(doc)
    names = [c["class name"] for c in doc["repeats"][0]["lock_stat"]] if doc["repeats"] else []
    # a class no variant ever contended or waited on is left out
    keep = [k for k in range(len(names)) if any(
        r["lock_stat"][k]["contentions"] or r["lock_stat"][k]["waittime-total"]
        for r in doc["repeats"])]
    classes = [names[k] for k in keep]
    fig, (ax_n, ax_w) = plt.subplots(1, 2, figsize=(14, 4.8))
    width = 0.8 / max(1, len(variants))
    for n, (v, colour) in enumerate(zip(variants, _colours(len(variants)))):
        rs = [r for r in doc["repeats"] if r["variant"] == v]
        cont = [sum(r["lock_stat"][k]["contentions"] for r in rs) / len(rs) for k in keep]
        wait = [sum(r["lock_stat"][k]["waittime-total"] for r in rs) / len(rs) for k in keep]
        xs = [i + n * width for i in range(len(keep))]
        ax_n.bar(xs, cont, width, label=v, color=colour)
        ax_w.bar(xs, wait, width, label=v, color=colour)
    for ax, what in ((ax_n, "contentions per repeat"), (ax_w, "wait time per repeat (µs)")):
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(classes))], classes, rotation=20,
                      ha="right")
        ax.set(title=what)
        ax.grid(alpha=0.3, axis="y")
    if classes:
        ax_n.legend(fontsize="small")
    else:
        ax_n.text(0.5, 0.5, "no lock class was contended", ha="center", va="center",
                  transform=ax_n.transAxes)
    fig.suptitle(_title(doc, "lock contention by lock class"))
    fig.tight_layout()
    return fig


def workers_figure(doc: dict) -> Figure:
    """workers.png: in how many repeats each worker was seen on each CPU."""
    names = sorted({n for r in doc["repeats"] for n in r["workers"]})
    cpus = sorted({c for r in doc["repeats"] for w in r["workers"].values()
                   for c in w["cpus_seen"]} | {0})
    grid = [[sum(1 for r in doc["repeats"] if n in r["workers"]
                 and c in r["workers"][n]["cpus_seen"]) for c in cpus] for n in names]
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(cpus) + 3), 0.5 * len(names) + 2))
    im = ax.imshow(grid, cmap="Blues", aspect="auto", vmin=0)
    ax.set_xticks(range(len(cpus)), [f"CPU {c}" for c in cpus])
    ax.set_yticks(range(len(names)), names)
    for i, row in enumerate(grid):
        for j, val in enumerate(row):
            ax.text(j, i, str(val), ha="center", va="center", fontsize="small")
    fig.colorbar(im, ax=ax, label="repeats seen there")
    ax.set(title=_title(doc, "where each worker ran"))
    fig.tight_layout()
    return fig


def timesplit_figure(doc: dict) -> Figure:
    """timesplit.png: where each measured worker's time went, a stacked bar per variant and
    worker (ns per page, medians over the repeats)."""
    from emul.report.timesplit import PARTS, split_rows
    rows = split_rows(doc)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows) + 3), 4.5))
    labels = [f"{r['variant']}\n{r['worker']}" for r in rows]
    bottom = [0.0] * len(rows)
    for part in PARTS:
        values = [max(0.0, r[part]) for r in rows]
        ax.bar(range(len(rows)), values, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(rows)), labels, fontsize="small")
    ax.set(title=_title(doc, "where the time went"), ylabel="ns per page")
    return _finish(fig, ax)


TOP_PAIRS = 6      # waits.png: the (variant, class, waiter → holder) with the most wait


def waits_figure(doc: dict) -> Figure:
    """waits.png: the wait-time histograms (log2 buckets) of the pairs with the most wait."""
    from emul.report.tables import who_waits
    pairs = [(v, w) for v in _variants(doc) for w in who_waits(doc, v)]
    pairs.sort(key=lambda p: -p[1]["waittime-total"])
    fig, ax = plt.subplots(figsize=(10, 4.8))
    for (v, w), colour in zip(pairs[:TOP_PAIRS], _colours(min(len(pairs), TOP_PAIRS))):
        bounds = sorted(w["buckets"])
        ax.step([max(b, 1.0) for b in bounds], [w["buckets"][b] for b in bounds], where="post",
                color=colour, label=f"{v}: {w['class name']} {w['waiter']} → {w['holder']} "
                f"({w['waits']:,} waits)")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="wait (ns, log2 buckets)", ylabel="waits", title="who waited on whom")
    ax.grid(alpha=0.3)
    if pairs:
        ax.legend(fontsize="small")
    fig.suptitle(_title(doc, "lock waits by waiter and holder"))
    fig.tight_layout()
    return fig


def scaling_figure(doc: dict) -> Figure:
    """scaling.png: will-it-scale's curve. Left, the average exit's time against the number
    of concurrent exits; right, the total throughput, each design's linear line dotted from
    its smallest point. Points not run are named under the axes."""
    sc = doc["scaling"]
    designs = list(dict.fromkeys(r["design"] for r in sc["rows"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    for design, colour in zip(designs, _colours(len(designs))):
        rows = [r for r in sc["rows"] if r["design"] == design and "time_ms" in r]
        if not rows:
            continue
        n = [r["exits"] for r in rows]
        left.plot(n, [r["per_exit_ms"] for r in rows], marker="o", color=colour, label=design)
        right.plot(n, [r["mib_per_s"] for r in rows], marker="o", color=colour, label=design)
        right.plot(n, [rows[0]["mib_per_s"] * k / n[0] for k in n], linestyle=":",
                   color=colour, linewidth=0.9)
    ran = sorted({r["exits"] for r in sc["rows"] if "time_ms" in r})
    for ax, ylabel in ((left, "per exit (ms)"), (right, "MiB/s unmapped (dotted: linear)")):
        ax.set(xlabel="concurrent exits", ylabel=ylabel)
        ax.set_xticks(ran)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    left.legend(fontsize="small")
    skipped = [f"{p['exits']} exits: {p['skipped']}" for p in sc["points"] if p.get("skipped")]
    if skipped:
        fig.text(0.01, 0.01, "not run: " + "; ".join(skipped), fontsize="small")
    fig.suptitle(_title(doc, "scaling with the number of concurrent exits"))
    fig.tight_layout(rect=(0, 0.05 if skipped else 0, 1, 1))
    return fig


FIGURES = {"memory": memory_figure, "latency": latency_figure, "backlog": backlog_figure,
           "locks": locks_figure, "workers": workers_figure, "timesplit": timesplit_figure,
           "waits": waits_figure, "scaling": scaling_figure}


def figures(doc: dict) -> dict[str, Figure]:
    """Every figure this document can show (those needing timelines only if it has them)."""
    out = {}
    for name, make in FIGURES.items():
        if name in ("memory", "backlog") and not _first_rows(doc):
            continue
        if name == "timesplit" and not any(r.get("time_split") for r in doc["repeats"]):
            continue
        if name == "waits" and not any(r.get("lock_who") for r in doc["repeats"]):
            continue
        if name == "scaling" and not (doc.get("scaling") or {}).get("rows"):
            continue
        if not doc["repeats"]:
            continue
        out[name] = make(doc)
    return out


def render_all(doc: dict, outdir: Path) -> list[Path]:
    """Write every figure of the document as outdir/<name>.png; the paths written. A replay's
    document has one figure of its own, replay.png (emul/report/replayplot.py)."""
    if "replay_summary" in doc:
        from emul.report.replayplot import plot_replay
        return [plot_replay(doc, Path(outdir) / "replay.png")]
    paths = []
    for name, fig in figures(doc).items():
        paths.append(save(fig, Path(outdir) / f"{name}.png"))
    return paths
