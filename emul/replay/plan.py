"""`emul replay`: a low-memory-killer storm from a log, replayed against each GC strategy.

The trace (emul/replay/traces.py reads lmkd, kernel OOM, CSV and JSON Lines) gives the victims: each
becomes one emulated process whose rss is resident and whose swap is written through zram's
write path before the replay. The base scenario gives the device, data, CPUs, background load
and cost profile. lmkd's reaper threads (the scenario's killers, two by default) take the kills
in order at their recorded times (scaled) or back to back, several exits in flight when the
times overlap (emul/kernel/replay.py). Per strategy it reports each kill's latency (kill to all
anon memory freed, kill to all its swap slots freed), the time until N MB had been returned, the
memory-returned and GC-backlog timelines, lock statistics and the audit.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any

from emul.errors import InputError
from emul.config.sizes import format_size

DEFAULT_BASE = "scenarios/replay-base.yaml"
DEFAULT_STRATEGIES = ("sync", "bitmap", "percpu-zsfree")


def _page_round(kb: int, page: int) -> int:
    return int(math.ceil(kb * 1024 / page)) * page


def build_scenario_doc(base: dict[str, Any], kills, strategies: list[str], page: int,
                       size_scale: float) -> dict[str, Any]:
    """The replay's scenario mapping: the base with the trace's victims and the strategies."""
    doc = {k: v for k, v in base.items() if k not in ("variants", "vary")}
    apps = [p for p in base.get("processes") or [] if isinstance(p, dict) and p.get("role") == "app"]
    victims = []
    seen: dict[str, int] = {}
    for i, k in enumerate(kills):
        rss = _page_round(int(k.rss_kb * size_scale), page)
        swap = _page_round(int(k.swap_kb * size_scale), page)
        if rss + swap == 0:
            rss = page          # a victim with nothing to free still has a page table to walk
        base_name = "".join(c if (c.isascii() and c.isalnum()) or c in "._+-" else "_"
                            for c in k.name)[:60].lstrip("._+-") or "victim"
        n = seen.get(base_name, 0) + 1
        seen[base_name] = n
        victims.append({"name": f"{i + 1:03d}-{base_name}" + (f"-{n}" if n > 1 else ""),
                        "vma": rss + swap, "swapped": swap / (rss + swap), "role": "victim"})
    doc["processes"] = victims + apps
    doc["experiment"] = "mixed" if apps else "unmap"
    doc["variants"] = [{"name": s, "strategy": s} for s in strategies]
    return doc


def check_fits(doc: dict[str, Any], disksize: int, page: int, reclaim_vma: int,
               where: str) -> None:
    """Refuse a population whose swap does not fit the device, saying how much it needs."""
    swap = sum(int(round(p["swapped"] * (p["vma"] // page))) * page for p in doc["processes"])
    need = swap + reclaim_vma
    if need > disksize:
        extra = f" plus {format_size(reclaim_vma)} for the reclaim worker" if reclaim_vma else ""
        raise InputError(where, "zram.disksize",
                         f"expected room for the storm: its victims and apps swap "
                         f"{format_size(swap)}{extra}, but the device holds "
                         f"{format_size(disksize)}; use a base scenario with zram.disksize >= "
                         f"{format_size(_round_up(need, 1 << 20))}, or --size-scale "
                         f"{max(0.01, disksize / need * 0.95):.2f}")


def _round_up(n: int, unit: int) -> int:
    return (n + unit - 1) // unit * unit


def due_times(kills, time_scale: float | None) -> tuple[float, ...]:
    """Each kill's time in ms after the replay's start: recorded times scaled, or all 0."""
    if time_scale is None:
        return tuple(0.0 for _ in kills)
    return tuple(k.t_ms * time_scale for k in kills)


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
        all_freed = [max((k["start_ms"] + (k["swap_freed_ms"] if k["swap_freed_ms"] is not None
                                           else k["anon_freed_ms"])) for k in r["replay"]["kills"])
                     for r in rs]
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


def time_to_returned(timeline: dict, target_mb: float) -> float | None:
    """The first sampled time at which target_mb had been returned (None: never)."""
    for t, mb in zip(timeline["t_ms"], timeline["returned_mb"]):
        if mb >= target_mb:
            return t
    return None


def replay_table(summary: list[dict], title: str):
    from rich.table import Table
    t = Table(title=title, caption="per kill, median / max over kills and repeats; "
              "times from the kill's start (swap: until the last of its slots was freed)")
    for col in ("strategy", "kills", "kill → anon freed", "kill → swap freed",
                f"time to {summary[0]['target_mb']:g} MB returned" if summary else "to N MB",
                "all freed", "peak backlog", "zs_class_lock contentions", "audit"):
        t.add_column(col, justify="left" if col in ("strategy", "audit") else "right",
                     no_wrap=True)
    for s in summary:
        swap = ("-" if s["swap_freed_ms_median"] is None else
                f"{s['swap_freed_ms_median']:.2f} / {s['swap_freed_ms_max']:.2f} ms")
        if s["swap_never_freed"]:
            swap += f" ({s['swap_never_freed']} never)"
        target = ("never" if s["time_to_target_ms"] is None
                  else f"{s['time_to_target_ms']:.1f} ms")
        audit = ("clean" if s["audit_clean"] == s["repeats"]
                 else f"FAILED {s['repeats'] - s['audit_clean']}/{s['repeats']}")
        t.add_row(s["strategy"], str(s["kills"]),
                  f"{s['anon_freed_ms_median']:.2f} / {s['anon_freed_ms_max']:.2f} ms", swap,
                  target, f"{s['all_freed_ms']:.1f} ms", f"{s['peak_backlog']:,}",
                  f"{s['class_lock_contentions']:,}", audit)
    return t


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
               xlabel="ms since the storm began", ylabel="MB")
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


def replay_doc_extra(trace, args_dict: dict, summary: list[dict]) -> dict:
    return {"trace": {"where": trace.where, "format": trace.format, "kills": len(trace.kills),
                      "skipped_lines": trace.skipped,
                      "victims": [dataclasses.asdict(k) for k in trace.kills]},
            "replay_options": args_dict, "replay_summary": summary}
