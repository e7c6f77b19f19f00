"""The per-variant summary of a run's repeats, and the significance test it marks ratios with.

Each variant's ratio is against its baseline: the first sync variant of its structural group
(else the group's first), so a matrix compares designs within a group, never across groups.
The same permutation test serves `emul run` (variant against baseline), the verdict (winner
against runner-up) and `emul compare` (run against the first run).
"""
from __future__ import annotations

import itertools
import math
import random
import statistics

SIGNIFICANCE = 0.05      # two-sided p-value below which a difference is marked significant


def permutation_p(a: list[float], b: list[float], rounds: int = 4000) -> float:
    """Two-sided p-value of a difference in means between samples a and b: exact over every
    split when there are few, else from ``rounds`` random splits (fixed seed: reproducible).

    Distribution-free, so it suits a handful of repeats of a noisy timing, where a t-test's
    normality would be assumed rather than known.
    """
    if len(a) < 2 or len(b) < 2:
        return 1.0
    pooled = list(a) + list(b)
    n, total = len(a), sum(pooled)
    observed = abs(sum(a) / n - (total - sum(a)) / len(b))
    eps = 1e-9 * max(1.0, observed)

    def extreme(sum_a: float) -> bool:
        return abs(sum_a / n - (total - sum_a) / len(b)) >= observed - eps

    if math.comb(len(pooled), n) <= 20000:
        hits = count = 0
        for idx in itertools.combinations(range(len(pooled)), n):
            count += 1
            hits += extreme(sum(pooled[i] for i in idx))
        return hits / count
    rng = random.Random(1)
    hits = sum(extreme(sum(rng.sample(pooled, n))) for _ in range(rounds))
    return (hits + 1) / (rounds + 1)


def _baselines(rows: list[dict], variants: list[str]) -> dict[str, str]:
    """Each variant's baseline: the first sync variant of its group, else the group's first."""
    group_of = {r["variant"]: r.get("group", "") for r in rows}
    strat_of = {r["variant"]: r["strategy"] for r in rows}
    present = [v for v in variants if v in group_of]
    out = {}
    for v in present:
        same = [u for u in present if group_of[u] == group_of[v]]
        out[v] = next((u for u in same if strat_of[u] == "sync"), same[0])
    return out


def _class_lock_acq(row: dict) -> int:
    return sum(c["acquisitions"] for c in row.get("lock_stat", [])
               if c["class name"] == "zs_class_lock")


def summarize(rows: list[dict], variants: list[str]) -> list[dict]:
    """Median and spread per variant; ratio is the baseline's median time over the variant's
    (above 1: faster than the baseline), marked significant by a permutation test."""
    out = []
    by = {v: [r for r in rows if r["variant"] == v] for v in variants}
    base_of = _baselines(rows, variants)
    for v in variants:
        rs = by[v]
        if not rs:
            continue
        t = [r["time_ns"] for r in rs]
        med = statistics.median(t)
        base_name = base_of[v]
        bt = [r["time_ns"] for r in by[base_name]]
        base = statistics.median(bt)
        p = 1.0 if base_name == v else permutation_p(t, bt)
        busy = sum(r["gc_busy_ns"] for r in rs)
        out.append({
            "variant": v, "strategy": rs[0]["strategy"], "group": rs[0].get("group", ""),
            "repeats": len(rs),
            "time_ms_median": med / 1e6, "time_ms_min": min(t) / 1e6,
            "time_ms_max": max(t) / 1e6,
            "spread_pct": 100.0 * (max(t) - min(t)) / 2 / med if med else 0.0,
            "ns_per_page": statistics.median(r["ns_per_page"] for r in rs),
            "baseline": base_name, "speedup_vs": base_name,
            "speedup": base / med if med else 0.0, "ratio": base / med if med else 0.0,
            "p_value": p, "significant": p < SIGNIFICANCE,
            "lazy": int(statistics.median(r["lazy"] for r in rs)),
            "in_place": int(statistics.median(r["in_place"] for r in rs)),
            "fallback": int(statistics.median(r["fallback"] for r in rs)),
            "gc_drain_ms": statistics.median(r["gc_drain_ns"] for r in rs) / 1e6,
            "gc_slots_per_s": (sum(r["gc_freed"] for r in rs) / busy * 1e9) if busy else 0.0,
            # medians, as every other figure here and the verdict; the max beside them
            "peak_backlog": int(statistics.median(r["peak_backlog"] for r in rs)),
            "peak_backlog_max": max(r["peak_backlog"] for r in rs),
            "peak_backlog_bytes": int(statistics.median(r.get("peak_backlog_bytes", 0)
                                                        for r in rs)),
            "peak_backlog_bytes_max": max(r.get("peak_backlog_bytes", 0) for r in rs),
            # fallbacks are bimodal (the cap binds in some repeats only): say in how many
            "fallback_repeats": sum(1 for r in rs if r["fallback"]),
            "fallback_min": min(r["fallback"] for r in rs),
            "fallback_max": max(r["fallback"] for r in rs),
            "batch_saved": int(statistics.median(r.get("batch_saved", 0) for r in rs)),
            "class_lock_acq": int(statistics.median(_class_lock_acq(r) for r in rs)),
            "miss_free": sum(r["miss_free"] for r in rs),
            "audit_clean": sum(1 for r in rs if r["audit"]["ok"]),
        })
    return out
