"""Results: the versioned JSON document of a run (results.json), built and written.

Schema history (``version``):
  1  first version: scenario, machine, profile, ticks_per_ns, every repeat's figures
     (time of the measured phase (unmap or swap-in), per-page cost, lazy / in-place / fallback
     counts, GC drain, backlog, zram counters, lock_stat rows, per-worker CPU use), per-variant
     summary, audit.
  2  matrices (``vary:``): ``groups`` (one scenario per structural group), ``profiles``; each
     repeat and variant names its ``group``; the summary gives each variant's ``baseline`` (sync
     of its group), ``ratio`` and a permutation test's ``p_value`` / ``significant``, GC
     throughput, peak queued bytes, batch savings and class-lock acquisitions.
  3  one convention and one statistic: a repeat's ``repeat`` is 1-based (as every table and
     message); the summary's ``peak_backlog`` and ``peak_backlog_bytes`` are medians over the
     repeats like every other summary figure (``*_max`` beside them), with ``fallback_repeats``
     / ``fallback_min`` / ``fallback_max``; each repeat has ``tries`` and ``disturbed``; the
     document has ``measurement`` (warm-up, priority, redone repeats) and ``host`` (load,
     steal, other tasks' CPU, governors, emul's version and git revision), and the run's
     ``dilation``, ``host_ticks_per_ns``, ``machinery`` (emul/report/results.py timing_doc).
     Added since, read as optional: ``lock_who`` and ``shared_counters`` per repeat (who
     waited on whom, counter bounces), ``headline_ns`` per repeat (each headline actor's own
     time) and, for a sweep over concurrent exits, ``scaling`` (emul/report/scaling.py).

Reading a document back is emul/report/io.py; its tables are emul/report/tables.py.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from emul.config.profiles import Profile
from emul.config.spec import Scenario
from emul.atomic import write_text
from emul.config.vary import scaling_key
from emul.report.scaling import scaling_doc
from emul.report.summary import summarize

if TYPE_CHECKING:
    from emul.config.vary import SkippedPoint
    from emul.harness.group import GroupState

SCHEMA = "emul-results"
SCHEMA_VERSION = 3


def machine_info() -> dict:
    """Where a run ran: what `emul compare` needs to tell two machines apart."""
    from emul.harness.hoststate import cpu_model
    model = cpu_model()
    import numba
    import numpy
    return {"arch": platform.machine(), "cpu_model": model, "cpus": os.cpu_count(),
            "cpus_usable": sorted(os.sched_getaffinity(0)), "kernel": platform.release(),
            "python": platform.python_version(), "numba": numba.__version__,
            "numpy": numpy.__version__, "hostname": platform.node()}


def build(groups: Scenario | Sequence[Scenario], profiles: Profile | Sequence[Profile],
          ticks_per_ns: float, rows: list[dict], status: str, reason: str = "",
          skipped: Sequence["SkippedPoint"] = ()) -> dict:
    """The results document of a run: ``groups`` are its scenarios (one unless it varies
    structural keys), ``profiles`` their cost profiles, in the same order; ``skipped`` the
    points of a scaling sweep not run here (emul/config/vary.py load_sweep)."""
    if isinstance(groups, Scenario):
        groups = [groups]
    if isinstance(profiles, Profile):
        profiles = [profiles]
    variants = [v.name for g in groups for v in g.variants]
    scenario = groups[0].to_dict()
    scenario["variants"] = [v for g in groups for v in g.to_dict()["variants"]]
    vary = groups[0].raw.get("vary") if isinstance(groups[0].raw, dict) else None
    summary = summarize(rows, variants)
    key = scaling_key(vary)
    doc = {
        "schema": SCHEMA, "version": SCHEMA_VERSION, "status": status, "reason": reason,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv,
        "scenario": scenario, "scenario_source": groups[0].source, "vary": vary,
        "groups": [g.to_dict() for g in groups] if len(groups) > 1 else [],
        "machine": machine_info(), "profile": profiles[0].to_json(),
        "profiles": {p.name: p.to_json() for p in profiles}, "ticks_per_ns": ticks_per_ns,
        "repeats": rows, "summary": summary,
    }
    if key is not None:
        doc["scaling"] = scaling_doc(key, groups, skipped, rows, summary)
    return doc


def timing_doc(groups: Sequence["GroupState"]) -> dict:
    """What results.json says of the timing model: the dilation, the host's clock, and the
    machinery figures each variant's costs were reduced by."""
    return {"dilation": groups[0].sc.dilate,
            "host_ticks_per_ns": max(g.host_ticks_per_ns for g in groups),
            "machinery": {v: m.to_report() for g in groups for v, m in g.machinery.items()}}


def write(outdir: Path, doc: dict) -> Path:
    """Write results.json atomically: a reader never sees a half-written file."""
    outdir.mkdir(parents=True, exist_ok=True)
    return write_text(outdir / "results.json", json.dumps(doc, indent=1))
