"""Results: the versioned JSON file of a run, the per-variant summary, and the terminal table.

Schema history (``version``):
  1  first version: scenario, machine, profile, ticks_per_ns, every repeat's figures
     (time of the measured phase (unmap or swap-in), per-page cost, lazy / in-place / fallback counts, GC drain, backlog,
     zram counters, lock_stat rows, per-worker CPU use), per-variant summary, audit.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

SCHEMA = "emul-results"
SCHEMA_VERSION = 1


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


def summarize(rows: list[dict], variants: list[str]) -> list[dict]:
    """Median and spread per variant; speedup is the baseline's median over the variant's."""
    out = []
    by = {v: [r for r in rows if r["variant"] == v] for v in variants}
    base_name = next((v for v in variants if by[v] and by[v][0]["strategy"] == "sync"),
                     variants[0])
    base = statistics.median(r["time_ns"] for r in by[base_name]) if by[base_name] else 0.0
    for v in variants:
        rs = by[v]
        if not rs:
            continue
        t = [r["time_ns"] for r in rs]
        med = statistics.median(t)
        out.append({
            "variant": v, "strategy": rs[0]["strategy"], "repeats": len(rs),
            "time_ms_median": med / 1e6, "time_ms_min": min(t) / 1e6,
            "time_ms_max": max(t) / 1e6,
            "spread_pct": 100.0 * (max(t) - min(t)) / 2 / med if med else 0.0,
            "ns_per_page": statistics.median(r["ns_per_page"] for r in rs),
            "speedup_vs": base_name, "speedup": base / med if med else 0.0,
            "lazy": int(statistics.median(r["lazy"] for r in rs)),
            "in_place": int(statistics.median(r["in_place"] for r in rs)),
            "fallback": int(statistics.median(r["fallback"] for r in rs)),
            "gc_drain_ms": statistics.median(r["gc_drain_ns"] for r in rs) / 1e6,
            "peak_backlog": max(r["peak_backlog"] for r in rs),
            "miss_free": sum(r["miss_free"] for r in rs),
            "audit_clean": sum(1 for r in rs if r["audit"]["ok"]),
        })
    return out


def build(scenario, profile, ticks_per_ns: float, rows: list[dict], status: str,
          reason: str = "") -> dict:
    variants = [v.name for v in scenario.variants]
    return {
        "schema": SCHEMA, "version": SCHEMA_VERSION, "status": status, "reason": reason,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv,
        "scenario": scenario.to_dict(), "scenario_source": scenario.source,
        "machine": machine_info(), "profile": profile.to_json(), "ticks_per_ns": ticks_per_ns,
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
    t = Table(title=f"{doc['scenario']['name']} — profile {doc['profile']['name']}, "
                    f"{doc['machine']['arch']} ({doc['machine']['cpu_model'] or '?'})")
    what = "swap-in" if doc["scenario"]["experiment"] == "swapin" else "unmap"
    for col, just in (("variant", "left"), (f"{what} time (median ±spread)", "right"),
                      ("ns/page", "right"), ("speedup vs sync", "right"),
                      ("freed lazily / in place", "right"), (f"GC drain after {what}", "right"),
                      ("peak GC backlog", "right"), ("miss_free", "right"), ("audit", "left")):
        t.add_column(col, justify=just, no_wrap=True)
    for s in doc["summary"]:
        audit = ("clean" if s["audit_clean"] == s["repeats"]
                 else f"FAILED {s['repeats'] - s['audit_clean']}/{s['repeats']}")
        lazy = f"{s['lazy']:,} / {s['in_place']:,}"
        if s["fallback"]:
            lazy += f" ({s['fallback']:,} over cap)"
        t.add_row(s["variant"], f"{s['time_ms_median']:.2f} ms (±{s['spread_pct']:.1f}%)",
                  f"{s['ns_per_page']:.0f}", f"{s['speedup']:.2f}×", lazy,
                  f"{s['gc_drain_ms']:.2f} ms", f"{s['peak_backlog']:,}", f"{s['miss_free']:,}",
                  audit)
    return t


def worker_table(doc: dict):
    """Where each worker ran and what it used, over the measured phases of every repeat."""
    from rich.table import Table
    agg: dict[str, dict] = {}
    for row in doc["repeats"]:
        for name, w in row["workers"].items():
            a = agg.setdefault(name, {"allowed": set(), "seen": set(), "cpu_s": 0.0,
                                      "wall_s": 0.0, "voluntary": 0, "involuntary": 0})
            a["allowed"].update(w["cpus_allowed"])
            a["seen"].update(w["cpus_seen"])
            for k in ("cpu_s", "wall_s", "voluntary", "involuntary"):
                a[k] += w[k]
    t = Table(title="workers (measured phases, all repeats)")
    for col in ("worker", "CPUs allowed", "ran on", "CPU time / wall", "ctx switches vol / invol"):
        t.add_column(col, no_wrap=True)
    for name, a in agg.items():
        share = f"{a['cpu_s']:.2f} s / {a['wall_s']:.2f} s"
        t.add_row(name, _cpus(a["allowed"]), _cpus(a["seen"]), share,
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
