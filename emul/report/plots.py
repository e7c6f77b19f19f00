"""PNG plots of a run, from its results document alone (so `emul report` can redraw them).

``figures(doc)`` builds the matplotlib figures (tests read their series back from the objects);
``render_all(doc, outdir)`` writes them as PNG files and returns the paths:

  memory.png    memory held over time per variant: resident pages of the measured processes,
                and zsmalloc's compressed pages (first repeat of each variant)
  latency.png   the measured time of every repeat per variant (and of the other actors)
  backlog.png   the GC backlog over time per variant
  locks.png     contentions and wait time per lock class and variant
  workers.png   where each worker ran: repeats in which it was seen on each CPU
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen first)
from matplotlib.figure import Figure  # noqa: E402


def _variants(doc: dict) -> list[str]:
    return [s["variant"] for s in doc["summary"]]


def _first_rows(doc: dict) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in doc["repeats"]:
        if "timeline" in r and r["timeline"]["t_ms"]:
            out.setdefault(r["variant"], r)
    return out


def _title(doc: dict, what: str) -> str:
    m = doc["machine"]
    return (f"{doc['scenario']['name']}: {what} — {m['arch']}, "
            f"profile {', '.join(doc.get('profiles') or [doc['profile']['name']])}")


def memory_figure(doc: dict) -> Figure:
    """memory.png: resident and compressed memory held over the phase, per variant."""
    rows = _first_rows(doc)
    fig, (ax_r, ax_c) = plt.subplots(1, 2, figsize=(13, 4.5), sharex=True)
    for v, r in rows.items():
        tl = r["timeline"]
        ax_r.plot(tl["t_ms"], tl["resident_mb"], label=v)
        ax_c.plot(tl["t_ms"], tl["compressed_mb"], label=v)
    ax_r.set(title="resident memory held", xlabel="ms since the phase began", ylabel="MB")
    ax_c.set(title="compressed memory held (zsmalloc pages)", xlabel="ms since the phase began",
             ylabel="MB")
    for ax in (ax_r, ax_c):
        ax.grid(alpha=0.3)
    ax_r.legend(fontsize="small")
    fig.suptitle(_title(doc, "memory held, first repeat of each variant"))
    fig.tight_layout()
    return fig


def latency_figure(doc: dict) -> Figure:
    """latency.png: every repeat's measured time per variant, the other actors' beside it."""
    variants = _variants(doc)
    what = "swap-in" if doc["scenario"]["experiment"] == "swapin" else "unmap"
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(variants) + 3), 4.5))
    for n, v in enumerate(variants):
        times = [r["time_ns"] / 1e6 for r in doc["repeats"] if r["variant"] == v]
        ax.scatter([n] * len(times), times, s=18, alpha=0.7, label=v)
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
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for v, r in rows.items():
        ax.plot(r["timeline"]["t_ms"], r["timeline"]["gc_backlog"], label=v)
    ax.set(title=_title(doc, "GC backlog, first repeat of each variant"),
           xlabel="ms since the phase began", ylabel="slots queued")
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
    classes = [c["class name"] for c in doc["repeats"][0]["lock_stat"]] if doc["repeats"] else []
    fig, (ax_n, ax_w) = plt.subplots(1, 2, figsize=(14, 4.5))
    width = 0.8 / max(1, len(variants))
    for n, v in enumerate(variants):
        rs = [r for r in doc["repeats"] if r["variant"] == v]
        cont = [sum(r["lock_stat"][k]["contentions"] for r in rs) / len(rs)
                for k in range(len(classes))]
        wait = [sum(r["lock_stat"][k]["waittime-total"] for r in rs) / len(rs)
                for k in range(len(classes))]
        xs = [k + n * width for k in range(len(classes))]
        ax_n.bar(xs, cont, width, label=v)
        ax_w.bar(xs, wait, width, label=v)
    for ax, what in ((ax_n, "contentions per repeat"), (ax_w, "wait time per repeat (µs)")):
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(classes))], classes, rotation=20,
                      ha="right")
        ax.set(title=what)
        ax.grid(alpha=0.3, axis="y")
    ax_n.legend(fontsize="small")
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


FIGURES = {"memory": memory_figure, "latency": latency_figure, "backlog": backlog_figure,
           "locks": locks_figure, "workers": workers_figure, "timesplit": timesplit_figure}


def figures(doc: dict) -> dict[str, Figure]:
    """Every figure this document can show (those needing timelines only if it has them)."""
    out = {}
    for name, make in FIGURES.items():
        if name in ("memory", "backlog") and not _first_rows(doc):
            continue
        if name == "timesplit" and not any(r.get("time_split") for r in doc["repeats"]):
            continue
        if not doc["repeats"]:
            continue
        out[name] = make(doc)
    return out


def render_all(doc: dict, outdir: Path) -> list[Path]:
    """Write every figure of the document as outdir/<name>.png; the paths written."""
    paths = []
    for name, fig in figures(doc).items():
        path = Path(outdir) / f"{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
