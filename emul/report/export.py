"""CSV export of a results document, for spreadsheets, pandas and R.

One file per kind of record, each self-describing (a header row, one record per line):

  repeats.csv         one row per repeat: every scalar figure of the row; nested dicts of
                      figures flattened with dots (zram_stats.pages_stored, audit.counts.queued)
  summary.csv         one row per variant, as in results.json's "summary"
  lock_stat.csv       one row per repeat and lock class (only when lock_stat was collected)
  workers.csv         one row per repeat and worker: CPUs, CPU time, context switches
  kills.csv           (replay) one row per repeat and kill
  replay_summary.csv  (replay) one row per strategy
  timeline.csv        one row per repeat and sample of every timeline: a row's "timeline" or
                      its "replay"'s, any dict of equal-length lists (t_ms first). If a document
                      holds both kinds, the replay's go to replay_timeline.csv.

Values are written as Python prints them (floats in full precision), None as an empty cell,
lists of numbers joined by spaces (cpus_seen "0 1"), lists of text by "; ".
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable

from emul.atomic import atomic

# row keys exported as their own files, not flattened into repeats.csv
_OWN_FILES = ("lock_stat", "workers", "replay", "timeline")
_KEY = ("variant", "strategy", "group", "repeat")


def _scalar(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        # numbers (CPU lists) by spaces; sentences (audit problems) by "; " to keep them apart
        sep = "; " if any(isinstance(x, str) for x in v) else " "
        return sep.join(str(x) for x in v)
    return v


def _flat(d: dict, prefix: str = "", skip: Iterable[str] = ()) -> dict[str, Any]:
    """Scalars and lists of scalars as they are; nested dicts as dotted keys; lists of dicts
    left out (they have files of their own)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k in skip:
            continue
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, name + "."))
        elif isinstance(v, (list, tuple)) and any(isinstance(x, (dict, list)) for x in v):
            continue
        else:
            out[name] = _scalar(v)
    return out


def _write(path: Path, records: list[dict[str, Any]], first: Iterable[str] = ()) -> Path:
    """A CSV of records whose keys may differ: the header is their union, first keys first."""
    present = {k for r in records for k in r}
    first = [k for k in first if k in present or not records]
    cols = list(dict.fromkeys([*first, *(k for r in records for k in r)]))
    with atomic(path) as tmp, open(tmp, "w", newline="", encoding="utf-8",
                                    errors="replace") as f:
        w = csv.DictWriter(f, fieldnames=cols, restval="")
        w.writeheader()
        w.writerows(records)
    return path


def _key(row: dict) -> dict[str, Any]:
    return {k: _scalar(row.get(k)) for k in _KEY}


def _timelines(row: dict) -> list[tuple[str, dict]]:
    """(kind, timeline) for each timeline a repeat carries: its own, its replay's."""
    out = []
    for kind, tl in (("timeline", row.get("timeline")),
                     ("replay", (row.get("replay") or {}).get("timeline"))):
        if isinstance(tl, dict) and tl and all(isinstance(v, list) for v in tl.values()):
            out.append((kind, tl))
    return out


def _timeline_records(row: dict, tl: dict) -> list[dict[str, Any]]:
    cols = ["t_ms", *[k for k in tl if k != "t_ms"]] if "t_ms" in tl else list(tl)
    n = max(len(tl[c]) for c in cols)
    return [{**_key(row), **{c: _scalar(tl[c][i]) if i < len(tl[c]) else "" for c in cols}}
            for i in range(n)]


def write_csv(outdir: Path, doc: dict) -> list[Path]:
    """Write the document's CSV files into outdir; returns the paths written."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = doc.get("repeats") or []
    written = [
        _write(outdir / "repeats.csv",
               [{**_key(r), **_flat(r, skip=(*_KEY, *_OWN_FILES))} for r in rows],
               first=(*_KEY, "time_ns", "ns_per_page", "lazy", "in_place", "fallback",
                      "miss_free", "gc_freed", "gc_drain_ns", "peak_backlog", "audit.ok")),
        _write(outdir / "summary.csv", [_flat(s) for s in doc.get("summary") or []],
               first=("variant", "strategy", "group")),
    ]
    locks = [{**_key(r), **_flat(c)} for r in rows for c in r.get("lock_stat") or []]
    # without lockstat every class reads zero acquisitions: not collected, not measured zeros
    if any(c.get("acquisitions") for c in locks):
        written.append(_write(outdir / "lock_stat.csv", locks, first=(*_KEY, "class name")))
    workers = [{**_key(r), "worker": name, **_flat(w)}
               for r in rows for name, w in (r.get("workers") or {}).items()]
    if workers:
        written.append(_write(outdir / "workers.csv", workers, first=(*_KEY, "worker")))
    kills = [{**_key(r), "kill": i, **_flat(k)}
             for r in rows for i, k in enumerate((r.get("replay") or {}).get("kills") or [])]
    if kills:
        written.append(_write(outdir / "kills.csv", kills, first=(*_KEY, "kill")))
    if doc.get("replay_summary"):
        written.append(_write(outdir / "replay_summary.csv",
                              [_flat(s) for s in doc["replay_summary"]], first=("strategy",)))
    series: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        for kind, tl in _timelines(r):
            series.setdefault(kind, []).extend(_timeline_records(r, tl))
    for kind, records in series.items():
        name = "replay_timeline.csv" if kind == "replay" and len(series) > 1 else "timeline.csv"
        written.append(_write(outdir / name, records, first=(*_KEY, "t_ms")))
    return written
