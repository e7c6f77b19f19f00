"""`emul replay`'s results: the per-strategy summary of its repeats and the keys it adds to the
results document (replay.png is emul/report/replayplot.py's, so that `emul report` redraws it).

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

from emul.report.replayplot import plot_replay  # noqa: F401  (emul replay draws it)
from emul.report.timeline import kill_freed_ms, time_to_returned

if TYPE_CHECKING:
    from emul.replay.traces import Trace


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, numpy's (linear between the closest ranks)."""
    import numpy as np
    return float(np.percentile(values, q))


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
        tails = {f"{what}_freed_ms_p{q}": percentile(vals, q) if vals else None
                 for what, vals in (("anon", anon), ("swap", swap)) for q in (50, 90, 99)}
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
            **tails,
            # the strategy refused (over its cap, a full or busy queue): freed in place, so the
            # kill's swap is freed before its anon is given back
            "fallback": int(statistics.median(r["fallback"] for r in rs)),
            "lazy": int(statistics.median(r["lazy"] for r in rs)),
            "peak_backlog": int(statistics.median(r["peak_backlog"] for r in rs)),
            "class_lock_contentions": int(statistics.median(
                sum(c["contentions"] for c in r["lock_stat"] if c["class name"] == "zs_class_lock")
                for r in rs)),
            "audit_clean": sum(1 for r in rs if r["audit"]["ok"]),
        })
    return out


def replay_doc_extra(trace: Trace, args_dict: dict, summary: list[dict]) -> dict:
    """What a replay adds to its results document: the trace, the options, the summary."""
    return {"trace": {"where": trace.where, "format": trace.format, "kills": len(trace.kills),
                      "skipped_lines": trace.skipped,
                      "malformed": [dataclasses.asdict(m) for m in trace.malformed],
                      "victims": [dataclasses.asdict(k) for k in trace.kills]},
            "replay_options": args_dict, "replay_summary": summary}
