"""Results: the versioned JSON file of a run, the per-variant summary, and the terminal table.

Schema history (``version``):
  1  first version: scenario, machine, profile, ticks_per_ns, every repeat's figures
     (time of the measured phase (unmap or swap-in), per-page cost, lazy / in-place / fallback
     counts, GC drain, backlog, zram counters, lock_stat rows, per-worker CPU use), per-variant
     summary, audit.
  2  matrices (``vary:``): ``groups`` (one scenario per structural group), ``profiles``; each
     repeat and variant names its ``group``; the summary gives each variant's ``baseline`` (sync
     of its group), ``ratio`` and a permutation test's ``p_value`` / ``significant``, GC
     throughput, peak queued bytes, batch savings and class-lock acquisitions.
"""
from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

SCHEMA = "emul-results"
SCHEMA_VERSION = 2
SIGNIFICANCE = 0.05      # two-sided p-value below which a difference is marked significant


def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "cpu model", "hardware")):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba
    import numpy
    return {"arch": platform.machine(), "cpu_model": model, "cpus": os.cpu_count(),
            "cpus_usable": sorted(os.sched_getaffinity(0)), "kernel": platform.release(),
            "python": platform.python_version(), "numba": numba.__version__,
            "numpy": numpy.__version__, "hostname": platform.node()}


def permutation_p(a: list[float], b: list[float], rounds: int = 4000) -> float:
    """Two-sided p-value of a difference in means between samples a and b: exact over every
    split when there are few, else from ``rounds`` random splits (fixed seed: reproducible).

    Distribution-free, so it suits a handful of repeats of a noisy timing, where a t-test's
    normality would be assumed rather than known.
    """
    import itertools
    import random
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
            "peak_backlog": max(r["peak_backlog"] for r in rs),
            "peak_backlog_bytes": max(r.get("peak_backlog_bytes", 0) for r in rs),
            "batch_saved": int(statistics.median(r.get("batch_saved", 0) for r in rs)),
            "class_lock_acq": int(statistics.median(_class_lock_acq(r) for r in rs)),
            "miss_free": sum(r["miss_free"] for r in rs),
            "audit_clean": sum(1 for r in rs if r["audit"]["ok"]),
        })
    return out


def build(groups, profiles, ticks_per_ns: float, rows: list[dict], status: str,
          reason: str = "") -> dict:
    """The results document of a run: ``groups`` are its scenarios (one unless it varies
    structural keys), ``profiles`` their cost profiles, in the same order."""
    if not isinstance(groups, (list, tuple)):
        groups, profiles = [groups], [profiles]
    variants = [v.name for g in groups for v in g.variants]
    scenario = groups[0].to_dict()
    scenario["variants"] = [v for g in groups for v in g.to_dict()["variants"]]
    vary = groups[0].raw.get("vary") if isinstance(groups[0].raw, dict) else None
    return {
        "schema": SCHEMA, "version": SCHEMA_VERSION, "status": status, "reason": reason,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv,
        "scenario": scenario, "scenario_source": groups[0].source, "vary": vary,
        "groups": [g.to_dict() for g in groups] if len(groups) > 1 else [],
        "machine": machine_info(), "profile": profiles[0].to_json(),
        "profiles": {p.name: p.to_json() for p in profiles}, "ticks_per_ns": ticks_per_ns,
        "repeats": rows, "summary": summarize(rows, variants),
    }


def write(outdir: Path, doc: dict) -> Path:
    """Write results.json atomically: a reader never sees a half-written file."""
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)
    return path


def table(doc: dict):
    """The summary as a rich Table (what the terminal shows)."""
    from rich.table import Table
    summary = doc["summary"]
    profiles = ", ".join(doc.get("profiles") or [doc["profile"]["name"]])
    t = Table(title=f"{doc['scenario']['name']} — profile {profiles}, "
                    f"{doc['machine']['arch']} ({doc['machine']['cpu_model'] or '?'})",
              caption=f"ratio: median time of the baseline (sync of the same group) / the "
                      f"variant's, above 1 is faster; * significant (permutation test over the "
                      f"repeats, p < {SIGNIFICANCE})")
    what = "swap-in" if doc["scenario"]["experiment"] == "swapin" else "unmap"
    batch = any(s.get("batch_saved") for s in summary)
    locks = any(s.get("class_lock_acq") for s in summary)
    cols = [("variant", "left"), (f"{what} (median ±spread)", "right"),
            ("ns/page", "right"), ("ratio", "right"),
            ("lazy / in place", "right"), ("GC drain", "right"),
            ("GC slots/s", "right"), ("peak backlog", "right")]
    if batch:
        cols.append(("batch saved", "right"))
    if locks:
        cols.append(("class-lock acq", "right"))
    cols += [("miss_free", "right"), ("audit", "left")]
    for col, just in cols:
        t.add_column(col, justify=just, no_wrap=True)
    for s in summary:
        audit = ("clean" if s["audit_clean"] == s["repeats"]
                 else f"FAILED {s['repeats'] - s['audit_clean']}/{s['repeats']}")
        lazy = f"{s['lazy']:,} / {s['in_place']:,}"
        if s["fallback"]:
            lazy += f" ({s['fallback']:,} capped)"
        base = s.get("baseline", s.get("speedup_vs"))
        ratio = ("baseline" if base == s["variant"] else
                 f"{s['speedup']:.2f}×{'*' if s.get('significant') else ' '}")
        peak = f"{s['peak_backlog']:,}"
        if s.get("peak_backlog_bytes"):
            peak += f" ({s['peak_backlog_bytes'] / 2**20:.1f} MiB)"
        cells = [s["variant"], f"{s['time_ms_median']:.2f} ms (±{s['spread_pct']:.1f}%)",
                 f"{s['ns_per_page']:.0f}", ratio, lazy, f"{s['gc_drain_ms']:.2f} ms",
                 f"{s.get('gc_slots_per_s', 0) / 1e6:.2f} M" if s.get("gc_slots_per_s") else "-",
                 peak]
        if batch:
            cells.append(f"{s.get('batch_saved', 0):,}")
        if locks:
            cells.append(f"{s.get('class_lock_acq', 0):,}")
        cells += [f"{s['miss_free']:,}", audit]
        t.add_row(*cells)
    return t


def worker_table(doc: dict):
    """Where each worker ran and what it used, over the measured phases of every repeat."""
    from rich.table import Table

    from emul.config.topology import migrations_at_least
    agg: dict[str, dict] = {}
    for row in doc["repeats"]:
        for name, w in row["workers"].items():
            a = agg.setdefault(name, {"allowed": set(), "seen": set(), "cpu_s": 0.0,
                                      "wall_s": 0.0, "voluntary": 0, "involuntary": 0,
                                      "migrations": 0, "measured": True})
            a["allowed"].update(w["cpus_allowed"])
            a["seen"].update(w["cpus_seen"])
            # measured when the row has it; else at least one per extra CPU it was seen on
            a["migrations"] += migrations_at_least(w)
            a["measured"] &= isinstance(w.get("migrations"), int)
            for k in ("cpu_s", "wall_s", "voluntary", "involuntary"):
                a[k] += w[k]
    t = Table(title="workers (measured phases, all repeats)")
    for col in ("worker", "CPUs allowed", "ran on", "migrations", "CPU time / wall",
                "ctx switches vol / invol"):
        t.add_column(col, no_wrap=True)
    for name, a in agg.items():
        share = f"{a['cpu_s']:.2f} s / {a['wall_s']:.2f} s"
        moved = f"{a['migrations']:,}" if a["measured"] else f"≥ {a['migrations']:,}"
        t.add_row(name, _cpus(a["allowed"]), _cpus(a["seen"]), moved, share,
                  f"{a['voluntary']:,} / {a['involuntary']:,}")
    return t


def lock_table(doc: dict):
    """lock_stat columns per variant and lock class, summed over repeats (times in us)."""
    from rich.table import Table
    t = Table(title="lock_stat (per variant, summed over repeats, times in µs)")
    t.add_column("variant", no_wrap=True)
    for col in ("class name", "con-bounces", "contentions", "waittime-min", "waittime-max",
                "waittime-total", "waittime-avg", "acq-bounces", "acquisitions", "holdtime-min",
                "holdtime-max", "holdtime-total", "holdtime-avg"):
        t.add_column(col, justify="left" if col == "class name" else "right", no_wrap=True)
    for v in [s["variant"] for s in doc["summary"]]:
        rows = [r["lock_stat"] for r in doc["repeats"] if r["variant"] == v]
        for k, first in enumerate(rows[0]):
            cls = [r[k] for r in rows]
            cont = sum(c["contentions"] for c in cls)
            acq = sum(c["acquisitions"] for c in cls)
            wtot = sum(c["waittime-total"] for c in cls)
            htot = sum(c["holdtime-total"] for c in cls)
            t.add_row(v, first["class name"], f"{sum(c['con-bounces'] for c in cls):,}",
                      f"{cont:,}", f"{min(c['waittime-min'] for c in cls):.2f}",
                      f"{max(c['waittime-max'] for c in cls):.2f}", f"{wtot:.2f}",
                      f"{wtot / cont if cont else 0:.2f}",
                      f"{sum(c['acq-bounces'] for c in cls):,}", f"{acq:,}",
                      f"{min(c['holdtime-min'] for c in cls):.2f}",
                      f"{max(c['holdtime-max'] for c in cls):.2f}", f"{htot:.2f}",
                      f"{htot / acq if acq else 0:.2f}")
    return t


def _cpus(cpus) -> str:
    return ",".join(str(c) for c in sorted(cpus)) or "-"
