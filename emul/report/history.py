"""This host's history of runs: what identical runs of a scenario differ by here (the A/A floor).

Every finished `emul run` appends one line to ``$XDG_CACHE_HOME/emul/history.jsonl`` (default
``~/.cache``): the host, the scenario's key (a hash of the resolved scenario without its file
name and repeat count), the code's hash (every source file of emul and its workers), and each
variant's medians of the metrics `emul compare` shows. Runs with the same scenario key and the
same code hash are A/A runs: nothing differs between them but the host's state, so the spread
of their medians is the noise floor a difference between two designs must exceed.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MAX_LINES = 5000        # the file is trimmed to the newest this many runs
METRICS = ("time_ms_median", "ns_per_page", "gc_drain_ms", "peak_backlog", "fallback")


def history_path() -> Path:
    """EMUL_HISTORY when set (a test's own file), else the cache's history.jsonl."""
    if os.environ.get("EMUL_HISTORY"):
        return Path(os.environ["EMUL_HISTORY"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "emul" / "history.jsonl"


def scenario_key(doc: dict) -> str:
    sc = {k: v for k, v in doc["scenario"].items() if k not in ("source", "repeats")}
    return hashlib.sha1(json.dumps(sc, sort_keys=True, default=str).encode()).hexdigest()[:12]


def code_of(doc: dict) -> str | None:
    return ((doc.get("host") or {}).get("emul") or {}).get("code")


def record(doc: dict) -> None:
    """Append this run (status ok only) to the history; never fails the run."""
    if doc.get("status") != "ok" or code_of(doc) is None:
        return
    entry = {"host": doc["machine"].get("hostname"), "scenario": scenario_key(doc),
             "code": code_of(doc), "created": doc.get("created"),
             "medians": {s["variant"]: {m: s.get(m) for m in METRICS} for s in doc["summary"]}}
    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if path.stat().st_size > MAX_LINES * 2000:
            lines = path.read_text().splitlines()[-MAX_LINES:]
            path.write_text("\n".join(lines) + "\n")
    except OSError:
        pass


def aa_runs(host: str | None, scenario: str) -> dict[str, list[dict]]:
    """This host's earlier runs of the scenario, grouped by code hash."""
    out: dict[str, list[dict]] = {}
    try:
        lines = history_path().read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and e.get("host") == host and e.get("scenario") == scenario:
            out.setdefault(str(e.get("code")), []).append(e)
    return out


def aa_spread(groups: dict[str, list[dict]], variant: str, metric: str) -> tuple[float, int]:
    """(largest relative difference between identical runs' medians, runs it rests on): per
    code version with two runs or more, max / min - 1 of the variant's median; the largest."""
    worst, used = 0.0, 0
    for entries in groups.values():
        vals = [e["medians"].get(variant, {}).get(metric) for e in entries]
        vals = [float(v) for v in vals if isinstance(v, (int, float)) and v > 0]
        if len(vals) >= 2:
            worst = max(worst, max(vals) / min(vals) - 1.0)
            used += len(vals)
    return worst, used


def history_note(groups: dict[str, list[dict]]) -> str | None:
    n = sum(len(v) for v in groups.values() if len(v) >= 2)
    if not n:
        return None
    return (f"A/A floor measured: {n} earlier runs of this scenario on this host, grouped by "
            f"identical code (emul/report/history.py)")
