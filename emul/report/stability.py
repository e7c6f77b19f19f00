"""Whether a run's figures can be quoted: disturbed repeats, spread, and a loaded host.

pyperf's rule: warn, never silently accept. Three checks, each one line after the tables:

- repeats that stayed disturbed after every try (a measured worker without its CPU, see
  emul/harness/disturbance.py), naming the worker and its CPU share;
- a variant whose times spread widely over its repeats: standard deviation above
  UNSTABLE_STDEV of the mean (pyperf's threshold, 10 %);
- a loaded host: other tasks took more than 5 % of the measured CPUs, or the hypervisor did
  (steal), over the run (emul/harness/hoststate.py);
- actors off their targets: the time split's ``rest`` below -10 % of their time means the
  machinery subtracted from the targets (measured once and cached) is more than what this run's
  machinery took, so the host is faster now than when it was measured; above +10 %, slower (or
  something the split does not name took the time).
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from emul.harness.disturbance import CPU_SHARE_MIN

if TYPE_CHECKING:
    from emul.harness.group import GroupState

UNSTABLE_STDEV = 0.10
STALE_REST = 0.10       # actors off their targets by more than this: stale machinery


def measurement_doc(groups: Sequence["GroupState"], rows: list[dict]) -> dict[str, Any]:
    """results.json's ``measurement``: warm-up, priority, the host, the disturbed repeats."""
    g = groups[0]
    kept = [r for r in rows if r.get("disturbed")]
    return {"measurement": {
        "warmup": g.warmup, "redo_limit": g.redo_limit, "cpu_share_min": CPU_SHARE_MIN,
        "nice": {name: n for grp in groups for name, n in grp.sup.nice.items()},
        "redone": sum(r.get("tries", 1) - 1 for r in rows),
        "redone_for": {c: sum(r.get("redone_for", []).count(c) for r in rows)
                       for c in sorted({c for r in rows for c in r.get("redone_for", [])})},
        "still_disturbed": [{"variant": r["variant"], "repeat": r["repeat"],
                             "workers": r["disturbed"]} for r in kept]},
        "host": g.host_state}


def unstable(doc: dict) -> list[tuple[str, float]]:
    """(variant, stdev / mean) of each variant whose times spread beyond UNSTABLE_STDEV."""
    out = []
    for v in doc["summary"]:
        t = [r["time_ns"] for r in doc["repeats"] if r["variant"] == v["variant"]]
        if len(t) >= 2 and statistics.mean(t) > 0:
            cv = statistics.stdev(t) / statistics.mean(t)
            if cv > UNSTABLE_STDEV:
                out.append((v["variant"], cv))
    return out


def off_their_targets(doc: dict) -> list[tuple[str, float]]:
    """(variant, rest / measured) where the headline actors' median ``rest`` is more than
    STALE_REST of their time either way: below zero, the probe's machinery (cached) is larger
    than this run's; above (judged only where no GC ran beside them), the run's machinery, or
    something unnamed, took longer."""
    out = []
    for v in doc["summary"]:
        shares = [split["rest_ns"] / split["measured_ns"]
                  for r in doc["repeats"] if r["variant"] == v["variant"]
                  for name, split in (r.get("time_split") or {}).items()
                  if r["workers"].get(name, {}).get("role") not in ("gc", "reclaim")
                  and split.get("measured_ns")]
        # with a GC beside them the actors' rest holds the cache lines it takes (real time),
        # so only a variant without one says the host got slower
        alone = all(not r.get("gc_busy_ns") for r in doc["repeats"]
                    if r["variant"] == v["variant"])
        if shares and (statistics.median(shares) < -STALE_REST
                       or alone and statistics.median(shares) > STALE_REST):
            out.append((v["variant"], statistics.median(shares)))
    return out


def stability_warnings(doc: dict) -> list[str]:
    """One line per problem; none when the run is steady."""
    out = []
    m = doc.get("measurement") or {}
    still = m.get("still_disturbed") or []
    if still:
        worst = min((w for s in still for w in s["workers"]), key=lambda w: w["cpu_share"])
        out.append(f"{len(still)} of {len(doc['repeats'])} repeats stayed disturbed after "
                   f"{m.get('redo_limit', 0) + 1} tries: {worst['worker']} had "
                   f"{worst['cpu_share']:.0%} of CPU "
                   f"{','.join(str(c) for c in worst['cpus'])} "
                   f"({worst.get('cause', 'another task')} took the rest); "
                   f"their figures include that share"
                   + ("; the workers ran at normal priority (no right to raise it, or "
                      "--no-boost)" if m.get("nice") and max(m["nice"].values()) > -20 else ""))
    spread = unstable(doc)
    if spread:
        names = ", ".join(f"{v} ±{cv:.0%}" for v, cv in spread)
        out.append(f"unstable: the times spread widely over the repeats ({names}; standard "
                   f"deviation / mean above {UNSTABLE_STDEV:.0%}); more repeats or a quieter "
                   f"host narrow it")
    drift = off_their_targets(doc)
    for word, rows, why in (
            ("faster", [(v, -x) for v, x in drift if x < 0],
             "the machinery figures subtracted from the targets were measured when this host "
             "was slower"),
            ("slower", [(v, x) for v, x in drift if x > 0],
             "this host is slower now than when the machinery was measured, or something the "
             "split does not name took the time (the host line says if other tasks did)")):
        if rows:
            names = ", ".join(f"{v} {share:.0%}" for v, share in rows)
            out.append(f"the measured actors ran {word} than their targets ({names} of their "
                       f"time unexplained): {why}; `emul machinery --fresh` measures it again")
    host = doc.get("host") or {}
    beside = host.get("other_emul_runs") or []
    if beside:
        what = "; ".join(f"pid {r['pid']} on CPU {', '.join(map(str, r['cpus']))}"
                         for r in beside)
        out.append(f"another emul run was live on this run's CPUs ({what}): the two disturbed "
                   f"each other's figures; run one at a time, or pin them to different CPUs")
    nothing = measured_nothing(doc)
    if nothing:
        out.append(nothing)
    if host.get("loaded"):
        out.append(f"the host was loaded: other tasks took {host['others_share']:.0%} of the "
                   f"measured CPUs and the hypervisor {host['steal_share']:.0%} (load average "
                   f"{host['load_before'][0]:.2f} before, {host['load_after'][0]:.2f} after)")
    return out


def measured_nothing(doc: dict) -> str | None:
    """A run whose measured phases moved no slot: every ratio compares empty work."""
    rows = [r for r in doc.get("repeats", []) if isinstance(r, dict)]
    if not rows or doc.get("replay_summary") is not None:
        return None
    # a slot stored before the measured phase is one it could free or read
    stored = sum((r.get("zram_stats_before") or {}).get("pages_stored", 0) for r in rows)
    if stored:
        return None
    return ("no repeat had a single slot in zram when its measured phase began: the figures "
            "compare empty phases and mean nothing (are the processes' swapped shares all but "
            "0?)")
