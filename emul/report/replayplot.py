"""replay.png: a replay's figure, from its results document alone (`emul report` redraws it).

Four panels, per strategy:
  memory returned over the storm (the median repeat by all-freed time; kills as grey lines, the
      --target-mb level dotted);
  the GC backlog over the storm, the strategy's cap dotted where it has one;
  every kill's latency over every repeat: kill → anon freed (dots, the RFC's headline: anon
      memory given back without waiting for slot_free) and kill → swap freed (crosses);
  the CDF of both latencies (solid: anon, dashed: swap).
"""
from __future__ import annotations

from pathlib import Path

from typing import TYPE_CHECKING

from emul.atomic import atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def printable(text: str) -> str:
    """A file name as a title can carry it: undecodable bytes shown as \\x escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _median_repeat(rows: list[dict]) -> dict:
    from emul.report.timeline import kill_freed_ms
    ranked = sorted(rows, key=lambda r: max(kill_freed_ms(k) for k in r["replay"]["kills"]))
    return ranked[(len(ranked) - 1) // 2]


def _cdf(ax, values: list[float], colour, style: str, label: str) -> None:
    if not values:
        return
    xs = sorted(values)
    ys = [(i + 1) / len(xs) for i in range(len(xs))]
    ax.step(xs, ys, where="post", color=colour, linestyle=style, label=label)


def plot_replay(doc: dict, path: Path) -> Path:
    """Draw replay.png from the document; its path."""
    import textwrap

    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False     # names are text (emul/report/plots.py)
    import matplotlib.pyplot as plt

    rows = [r for r in doc["repeats"] if "replay" in r]
    strategies = list(dict.fromkeys(r["variant"] for r in rows))
    caps = {v["name"]: v.get("cap_slots") for v in doc["scenario"].get("variants", [])}
    target = (doc.get("replay_options") or {}).get("target_mb")
    fig, axes = plt.subplots(2, 2, figsize=(15, 9))
    (ax_mem, ax_backlog), (ax_kill, ax_cdf) = axes
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, s in enumerate(strategies):
        c = colours[n % len(colours)]
        mine = [x for x in rows if x["variant"] == s]
        tl = _median_repeat(mine)["replay"]["timeline"]
        ax_mem.plot(tl["t_ms"], tl["returned_mb"], color=c, label=s)
        ax_backlog.plot(tl["t_ms"], tl["gc_backlog"], color=c, label=s)
        if caps.get(s):
            ax_backlog.axhline(caps[s], color=c, linestyle=":", label=f"{s} cap")
        kills = [k for x in mine for k in x["replay"]["kills"]]
        anon = [k["anon_freed_ms"] for k in kills]
        swap = [k["swap_freed_ms"] for k in kills if k["swap_freed_ms"] is not None]
        ax_kill.scatter([n - 0.12] * len(anon), anon, color=c, alpha=0.5, s=12, marker="o",
                        label=f"{s}: anon" if n == 0 else None)
        ax_kill.scatter([n + 0.12] * len(swap), swap, color=c, alpha=0.5, s=16, marker="x",
                        label=f"{s}: swap" if n == 0 else None)
        _cdf(ax_cdf, anon, c, "-", f"{s}: kill → anon freed")
        _cdf(ax_cdf, swap, c, "--", f"{s}: kill → swap freed")
    for k in rows[0]["replay"]["kills"] if rows else []:
        ax_mem.axvline(k["start_ms"], color="0.85", lw=0.6, zorder=0)
    if target:
        ax_mem.axhline(target, color="0.3", linestyle=":", label=f"{target:g} MiB (--target-mb)")
    ax_mem.set(title="memory returned (resident freed + pool pages given back), median repeat",
               xlabel="ms since the storm began", ylabel="MiB")
    ax_backlog.set(title="GC backlog (slots queued), median repeat",
                   xlabel="ms since the storm began", ylabel="slots")
    ax_kill.set(title="per kill: kill → anon freed (o) and kill → swap freed (x)", ylabel="ms",
                xticks=range(len(strategies)), xticklabels=strategies)
    ax_cdf.set(title="CDF over every kill and repeat (solid: anon, dashed: swap)",
               xlabel="ms after the kill", ylabel="share of kills")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    ax_mem.legend(fontsize="small")
    ax_backlog.legend(fontsize="small")
    ax_cdf.legend(fontsize="small")
    trace = doc.get("trace") or {}
    fig.suptitle("\n".join(textwrap.wrap(
        f"{printable(str(trace.get('where', '?')))} ({trace.get('format', '?')}, "
        f"{len(rows[0]['replay']['kills']) if rows else 0} kills) — "
        f"{doc['machine']['arch']}, profile {doc['profile']['name']}", 110)))
    fig.tight_layout()
    return save(fig, path)


def save(fig: "Figure", path: Path) -> Path:
    """The figure written atomically (emul/atomic.py), and closed whatever happens."""
    import matplotlib.pyplot as plt
    try:
        with atomic(path) as tmp:
            fig.savefig(tmp, dpi=90)
    finally:
        plt.close(fig)
    return path
