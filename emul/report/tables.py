"""The rich tables of a run, each rendered from its results document alone (so `emul report`
re-renders them for any results.json); printing them is the command line's.

  variant_table  one row per variant: time, ns/page, ratio to its baseline, lazy frees, GC
  worker_table   where each worker ran and what it used
  lock_table     lock_stat per variant and lock class
  scaling_table  (a sweep over concurrent exits) emul/report/scaling.py
  replay_table   (replay) one row per strategy: kill latencies, time to N MB returned
  summary_tables the tables `emul run` / `emul replay` / `emul report` print for a document
  summary_warnings the warnings printed after them

A cell or title given as a string is rich markup: every name taken from a document (variant,
worker, lock class, profile, trace file) is escaped, so "[red]x[/red]" shows as written and
"[/]" cannot break the table.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from rich.markup import escape

from emul.report.scaling import scaling_table
from emul.report.summary import SIGNIFICANCE
from emul.report.textout import set_key_columns
from emul.report.timesplit import split_table
from emul.report.verdict import verdict_table

if TYPE_CHECKING:
    from rich.table import Table


def is_replay(doc: dict) -> bool:
    """A document `emul replay` wrote (its summary is per strategy, not per variant)."""
    return "replay_summary" in doc


def summary_tables(doc: dict) -> list[Table]:
    """The rich tables `emul run` / `emul replay` print for this document, from it alone."""
    if is_replay(doc):
        trace = doc.get("trace") or {}
        title = (f"replay of {escape(str(trace.get('where', '?')))} — {trace.get('kills', '?')} "
                 f"kills, profile {escape(doc['profile']['name'])}, "
                 f"{escape(doc['machine']['arch'])}")
        return [replay_table(doc["replay_summary"], title), worker_table(doc), lock_table(doc)]
    tables = [variant_table(doc), verdict_table(doc), worker_table(doc)]
    split = split_table(doc)
    if split is not None:
        tables.insert(2, split)
    scaling = scaling_table(doc)
    if scaling is not None:
        tables.insert(1, scaling)
    if doc["scenario"].get("lockstat") or any(g.get("lockstat") for g in doc.get("groups") or []):
        tables.append(lock_table(doc))
        who = who_table(doc)
        if who is not None:
            tables.append(who)
    return tables


def summary_warnings(doc: dict) -> list[str]:
    """What the reader of a run's tables must know, printed after them and kept in
    summary.txt (emul run, and emul report again from the document alone)."""
    if is_replay(doc):
        return []
    from emul.config.topology import oversubscription_warning
    from emul.report.scaling import skipped_lines
    from emul.report.stability import stability_warnings
    from emul.report.timesplit import overrun_warning
    found = [oversubscription_warning(doc), overrun_warning(doc), *stability_warnings(doc),
             *skipped_lines(doc)]
    return [w for w in found if w]


def variant_table(doc: dict) -> Table:
    """The summary as a rich Table (what the terminal shows)."""
    from rich.table import Table
    summary = doc["summary"]
    profiles = escape(", ".join(doc.get("profiles") or [doc["profile"]["name"]]))
    m = doc["machine"]
    t = Table(title=f"{escape(doc['scenario']['name'])} — profile {profiles}, "
                    f"{escape(m['arch'])} ({escape(m['cpu_model'] or '?')})",
              caption=f"medians over the repeats (±half their range); ratio: the baseline's "
                      f"(sync of the same group) time / the variant's, above 1 is faster; * "
                      f"significant (permutation test over the repeats, p < {SIGNIFICANCE}); "
                      f"lazy / in place: k/n fell back: in k of n repeats the cap made some "
                      f"frees fall back to in place (min-max)")
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
        t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for s in summary:
        audit = ("clean" if s["audit_clean"] == s["repeats"]
                 else f"FAILED {s['repeats'] - s['audit_clean']}/{s['repeats']}")
        lazy = f"{s['lazy']:,} / {s['in_place']:,}"
        if s.get("fallback_repeats"):
            lazy += (f" ({s['fallback_repeats']}/{s['repeats']} fell back: "
                     f"{s['fallback_min']:,}-{s['fallback_max']:,})")
        elif s["fallback"]:
            lazy += f" ({s['fallback']:,} capped)"
        base = s.get("baseline", s.get("speedup_vs"))
        ratio = ("baseline" if base == s["variant"] else
                 f"{s['speedup']:.2f}×{'*' if s.get('significant') else ' '}")
        peak = f"{s['peak_backlog']:,}"
        if s.get("peak_backlog_bytes"):
            peak += f" ({s['peak_backlog_bytes'] / 2**20:.1f} MiB)"
        cells = [escape(s["variant"]), f"{s['time_ms_median']:.2f} ms (±{s['spread_pct']:.1f}%)",
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


def worker_table(doc: dict) -> Table:
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
                a[k] += w[k] or 0      # null: the worker's usage could not be read
    t = Table(title="workers (measured phases, all repeats)")
    for col in ("worker", "CPUs allowed", "ran on", "migrations", "CPU time / wall",
                "ctx switches vol / invol"):
        t.add_column(col, no_wrap=True)
    for name, a in agg.items():
        share = f"{a['cpu_s']:.2f} s / {a['wall_s']:.2f} s"
        moved = f"{a['migrations']:,}" if a["measured"] else f"≥ {a['migrations']:,}"
        t.add_row(escape(name), _cpus(a["allowed"]), _cpus(a["seen"]), moved, share,
                  f"{a['voluntary']:,} / {a['involuntary']:,}")
    return t


def lock_table(doc: dict) -> Table:
    """lock_stat columns per variant and lock class, summed over repeats (times in us)."""
    from rich.table import Table
    t = Table(title="lock_stat (per variant, summed over repeats, times in µs)")
    set_key_columns(t, 2)      # a row is a variant's lock class
    t.add_column("variant", no_wrap=True)
    for col in ("class name", "con-bounces", "contentions", "waittime-min", "waittime-max",
                "waittime-total", "waittime-avg", "acq-bounces", "acquisitions", "holdtime-min",
                "holdtime-max", "holdtime-total", "holdtime-avg"):
        t.add_column(col, justify="left" if col == "class name" else "right", no_wrap=True)
    for v in [s["variant"] for s in doc["summary"]]:
        rows = [r["lock_stat"] for r in doc["repeats"] if r["variant"] == v]
        for k, first in enumerate(rows[0] if rows else []):
            cls = [r[k] for r in rows]
            cont = sum(c["contentions"] for c in cls)
            acq = sum(c["acquisitions"] for c in cls)
            wtot = sum(c["waittime-total"] for c in cls)
            htot = sum(c["holdtime-total"] for c in cls)
            t.add_row(escape(v), escape(first["class name"]),
                      f"{sum(c['con-bounces'] for c in cls):,}", f"{cont:,}",
                      f"{min(c['waittime-min'] for c in cls):.2f}",
                      f"{max(c['waittime-max'] for c in cls):.2f}", f"{wtot:.2f}",
                      f"{wtot / cont if cont else 0:.2f}",
                      f"{sum(c['acq-bounces'] for c in cls):,}", f"{acq:,}",
                      f"{min(c['holdtime-min'] for c in cls):.2f}",
                      f"{max(c['holdtime-max'] for c in cls):.2f}", f"{htot:.2f}",
                      f"{htot / acq if acq else 0:.2f}")
    return t


TOP_WAITS = 12      # who_table's rows per variant: the (class, waiter, holder) with most wait


def who_waits(doc: dict, variant: str) -> list[dict]:
    """A variant's (class, waiter, holder) records summed over its repeats, most wait first."""
    out: dict[tuple[str, str, str], dict] = {}
    for r in doc["repeats"]:
        if r["variant"] != variant:
            continue
        for w in r.get("lock_who") or []:
            key = (w["class name"], w["waiter"], w["holder"])
            acc = out.setdefault(key, {"class name": key[0], "waiter": key[1], "holder": key[2],
                                       "waits": 0, "waittime-total": 0.0, "buckets": {}})
            acc["waits"] += w["waits"]
            acc["waittime-total"] += w["waittime-total"]
            for pair in w["buckets"]:
                lower, n = pair[0], pair[1]
                acc["buckets"][lower] = acc["buckets"].get(lower, 0) + n
    return sorted(out.values(), key=lambda a: -a["waittime-total"])


def median_bucket(buckets: dict[float, int]) -> float:
    """The lower bound (ns) of the bucket that holds the median wait."""
    total, seen = sum(buckets.values()), 0
    for lower in sorted(buckets):
        seen += buckets[lower]
        if 2 * seen >= total:
            return lower
    return 0.0


def who_table(doc: dict) -> Table | None:
    """Who waited on whom: per variant, the (lock class, waiter → holder) pairs with the most
    wait time (perf lock contention's view, from emul's exact holders); None without any."""
    from rich.table import Table
    variants = [s["variant"] for s in doc["summary"]]
    rows = {v: who_waits(doc, v) for v in variants}
    if not any(rows.values()):
        return None
    t = Table(title=f"who waited on whom (per variant, summed over repeats, the {TOP_WAITS} "
                    f"pairs with most wait)",
              caption="holder: the worker that held the lock when the waiter first failed to "
                      "take it (?: an rwlock's readers); median: the log2 bucket (ns) holding "
                      "the median wait")
    set_key_columns(t, 3)
    for col in ("variant", "class name", "waiter → holder", "waits", "wait total µs",
                "wait avg µs", "median ≥ ns", "share of class"):
        t.add_column(col, justify="left" if col in ("variant", "class name", "waiter → holder")
                     else "right", no_wrap=True)
    for v in variants:
        per_class: dict[str, float] = {}
        for w in rows[v]:
            per_class[w["class name"]] = per_class.get(w["class name"], 0.0) + w["waittime-total"]
        for w in rows[v][:TOP_WAITS]:
            whole = per_class[w["class name"]]
            share = w["waittime-total"] / whole if whole else 0.0
            avg = w["waittime-total"] / w["waits"] if w["waits"] else 0.0
            t.add_row(escape(v), escape(w["class name"]),
                      f"{escape(w['waiter'])} → {escape(w['holder'])}", f"{w['waits']:,}",
                      f"{w['waittime-total']:.2f}", f"{avg:.2f}",
                      f"{median_bucket(w['buckets']):,.0f}", f"{share:.0%}")
    return t


def _tail(s: dict, what: str) -> str:
    """p50 / p90 / p99 of a latency (older results: median / max); "-": none (every kill's
    swap never freed)."""
    for keys in (("p50", "p90", "p99"), ("median", "max")):
        got = [s.get(f"{what}_freed_ms_{q}") for q in keys]
        if all(x is not None for x in got):
            return " / ".join(f"{x:.2f}" for x in got) + " ms"
    return "-"


def replay_table(summary: list[dict], title: str) -> Table:
    """A replay's summary (results.json's "replay_summary"), one row per strategy; title is
    markup (the caller escapes the names in it)."""
    from rich.table import Table
    t = Table(title=title, caption="per kill, p50 / p90 / p99 over every kill and repeat; times "
              "from the kill's start (swap: until the last of its slots was freed); lazy / "
              "fallback: slots handed to the GC / refused by the strategy (over its cap, a full "
              "or busy queue) and freed in place, median per repeat; peak backlog: median")
    for col in ("strategy", "kills", "kill → anon freed", "kill → swap freed",
                f"time to {summary[0]['target_mb']:g} MiB returned" if summary else "to N MiB",
                "all freed", "lazy / fallback", "peak backlog", "zs_class_lock contentions",
                "audit"):
        t.add_column(col, justify="left" if col in ("strategy", "audit") else "right",
                     no_wrap=True)
    for s in summary:
        swap = _tail(s, "swap")
        if s["swap_never_freed"]:
            swap += f" ({s['swap_never_freed']} never)"
        target = ("never" if s["time_to_target_ms"] is None
                  else f"{s['time_to_target_ms']:.1f} ms")
        audit = ("clean" if s["audit_clean"] == s["repeats"]
                 else f"FAILED {s['repeats'] - s['audit_clean']}/{s['repeats']}")
        lazy = (f"{s['lazy']:,} / {s['fallback']:,}" if "fallback" in s and "lazy" in s
                else "-")
        t.add_row(escape(s["strategy"]), str(s["kills"]), _tail(s, "anon"), swap, target,
                  f"{s['all_freed_ms']:.1f} ms", lazy, f"{s['peak_backlog']:,}",
                  f"{s['class_lock_contentions']:,}", audit)
    return t


def _cpus(cpus: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus)) or "-"
