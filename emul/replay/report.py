"""`emul replay`'s results: the per-strategy summary of its repeats, the keys it adds to the
results document, and replay.png.

Each repeat row carries ``replay``: its kills (start, kill → anon freed, kill → swap freed,
the reaper's CPU) and a timeline (memory returned, GC backlog). Per strategy the summary gives
the median and worst kill latency, the time until N MB had been returned and until everything
was freed. The summary's table is emul/report/tables.py's replay_table, as `emul report` renders
it again from results.json alone.
"""
from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from emul.report.timeline import kill_freed_ms, time_to_returned

if TYPE_CHECKING:
    from emul.replay.traces import Trace


def summarize_replay(rows: list[dict], strategies: list[str], target_mb: float) -> list[dict]:
    """Per strategy, over repeats: median kill latencies, time to target_mb returned, etc."""
    out = []
    for s in strategies:
        rs = [r for r in rows if r["variant"] == s and "replay" in r]
        if not rs:
            continue
        anon = [k["anon_freed_ms"] for r in rs for k in r["replay"]["kills"]]
        swap = [k["swap_freed_ms"] for r in rs for k in r["replay"]["kills"]
                if k["swap_freed_ms"] is not None]
        never = sum(1 for r in rs for k in r["replay"]["kills"] if k["swap_freed_ms"] is None)
        to_target = [time_to_returned(r["replay"]["timeline"], target_mb) for r in rs]
        all_freed = [max(kill_freed_ms(k) for k in r["replay"]["kills"]) for r in rs]
        reached = [t for t in to_target if t is not None]
        out.append({
            "strategy": s, "repeats": len(rs), "kills": len(rs[0]["replay"]["kills"]),
            "anon_freed_ms_median": statistics.median(anon), "anon_freed_ms_max": max(anon),
            "swap_freed_ms_median": statistics.median(swap) if swap else None,
            "swap_freed_ms_max": max(swap) if swap else None,
            "swap_never_freed": never,
            "target_mb": target_mb,
            "time_to_target_ms": statistics.median(reached) if len(reached) == len(rs) else None,
            "all_freed_ms": statistics.median(all_freed),
            "returned_mb_max": statistics.median(max(r["replay"]["timeline"]["returned_mb"] or [0])
                                                 for r in rs),
            "peak_backlog": max(r["peak_backlog"] for r in rs),
            "class_lock_contentions": int(statistics.median(
                sum(c["contentions"] for c in r["lock_stat"] if c["class name"] == "zs_class_lock")
                for r in rs)),
            "audit_clean": sum(1 for r in rs if r["audit"]["ok"]),
        })
    return out


def plot_replay(doc: dict, path: Path) -> Path:
    """replay.png: memory returned and GC backlog over time, per-kill latencies, per strategy."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc["repeats"] if "replay" in r]
    strategies = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    ax_mem, ax_backlog, ax_kill = axes
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, s in enumerate(strategies):
        c = colours[n % len(colours)]
        r = next(x for x in rows if x["variant"] == s)   # the first repeat of each
        tl = r["replay"]["timeline"]
        ax_mem.plot(tl["t_ms"], tl["returned_mb"], color=c, label=s)
        ax_backlog.plot(tl["t_ms"], tl["gc_backlog"], color=c, label=s)
        lat = [k["swap_freed_ms"] for x in rows if x["variant"] == s
               for k in x["replay"]["kills"] if k["swap_freed_ms"] is not None]
        ax_kill.scatter([n] * len(lat), lat, color=c, alpha=0.5, s=12, label=s)
    for k in rows[0]["replay"]["kills"] if rows else []:
        ax_mem.axvline(k["start_ms"], color="0.85", lw=0.6, zorder=0)
    ax_mem.set(title="memory returned (resident freed + pool pages given back)",
               xlabel="ms since the storm began", ylabel="MiB")
    ax_backlog.set(title="GC backlog (slots queued)", xlabel="ms since the storm began",
                   ylabel="slots")
    ax_kill.set(title="kill → all of its swap slots freed", ylabel="ms",
                xticks=range(len(strategies)), xticklabels=strategies)
    for ax in axes:
        ax.grid(alpha=0.3)
    ax_mem.legend()
    fig.suptitle(f"{doc['trace']['where']} ({doc['trace']['format']}, "
                 f"{len(rows[0]['replay']['kills']) if rows else 0} kills) — "
                 f"{doc['machine']['arch']}, profile {doc['profile']['name']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def replay_doc_extra(trace: Trace, args_dict: dict, summary: list[dict]) -> dict:
    """What a replay adds to its results document: the trace, the options, the summary."""
    return {"trace": {"where": trace.where, "format": trace.format, "kills": len(trace.kills),
                      "skipped_lines": trace.skipped,
                      "victims": [dataclasses.asdict(k) for k in trace.kills]},
            "replay_options": args_dict, "replay_summary": summary}
