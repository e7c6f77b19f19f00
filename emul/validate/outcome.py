"""One figure's outcome: emul's time beside the published one, labelled in- or out-of-sample,
and the mechanism that decides it, read from the run's results document."""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from emul.validate.record import Figure

# another variant of the same run worth naming beside a figure: (variant, what it is)
ALSO = {"1.bitmap": ("bitmap GC-A76", "GC on an A76"),
        "3.1p.base": ("base-65", "zs_free 65 % of slot_free"),
        "4.1p.base": ("base-65", "zs_free 65 % of slot_free")}
BAND = 0.15           # the goal: every out-of-sample figure within ±15 % of the published one


@dataclass
class Outcome:
    key: str
    row: int
    board: str
    experiment: str
    published_ms: float
    status: str                  # ran, skipped, error
    emul_ms: float | None = None
    spread_pct: float | None = None
    sample: str = ""             # in-sample, out-of-sample
    profile: str = ""
    dilation: float = 1.0
    mechanism: str = ""
    reason: str = ""             # why it was skipped, or the error
    unit: str = "ms"             # ms, or x for a ratio (row 8: k exits at once against one)

    @property
    def ratio(self) -> float | None:
        return self.emul_ms / self.published_ms if self.emul_ms and self.published_ms else None

    @property
    def in_band(self) -> bool | None:
        r = self.ratio
        return None if r is None else abs(r - 1) <= BAND

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "in_band": self.in_band}


def not_run(f: Figure, status: str, reason: str) -> Outcome:
    return Outcome(f.key, f.row, f.board, f.experiment, f.published_ms, status, reason=reason)


def sample_of(key: str, derived_from: list[str] | tuple[str, ...]) -> str:
    """In-sample: the profile the figure runs with was derived from it."""
    return "in-sample" if key in derived_from else "out-of-sample"


def from_run(f: Figure, doc: dict[str, Any], scale: float = 1.0) -> Outcome:
    """The figure's outcome in a finished run's document (run at ``scale`` of its size: the
    time is scaled back, per page it is the same)."""
    by = {s["variant"]: s for s in doc["summary"]}
    s = by.get(f.run_variant)
    point = next((p for p in (doc.get("scaling") or {}).get("points", [])
                  if p["group"] == f.group and p.get("skipped")), None)
    if point is not None:
        return not_run(f, "skipped", point["skipped"])
    if s is None:
        return not_run(f, "error", f"the run has no variant {f.run_variant!r}")
    profile = doc["profile"]
    sample = sample_of(f.key, profile.get("derived_from", []))
    dil = float(doc.get("dilation", 1.0))
    why = mechanism(f, s, doc, sample, by, scale)
    if scale != 1.0:
        why = f"run at {scale:g} of the size, time scaled back; " + why
    return Outcome(f.key, f.row, f.board, f.experiment, f.published_ms, "ran",
                   s["time_ms_median"] / scale, s["spread_pct"], sample, profile["name"], dil,
                   why)


def mechanism(f: Figure, s: dict, doc: dict, sample: str, by: dict[str, dict],
              scale: float = 1.0) -> str:
    """What decides the figure, in the run's own numbers."""
    parts = []
    if sample == "in-sample":
        parts.append(f"{doc['profile']['name']} was derived from it")
    if s["lazy"]:
        rate = s.get("gc_slots_per_s") or 0.0
        cap = (f"cap binds: {s['fallback']:,} fallbacks" if s["fallback"]
               else "cap never binds")
        wakes = statistics.median(r.get("gc_wakeups", 0) + r.get("gc_wake_polled", 0)
                                  for r in doc["repeats"] if r["variant"] == f.run_variant)
        parts.append(f"{s['lazy']:,} lazy / {s['in_place']:,} in place, {cap}"
                     + (f", GC {rate / 1e6:.2f} M slots/s" if rate else "")
                     + f", {int(wakes):,} GC wake-ups")
    parts += lock_contention(doc, f.run_variant)
    also = ALSO.get(f.key)
    other = also and (f"{also[0]} {f.group}" if f.group else also[0])
    if also and other in by:
        parts.append(f"{also[1]}: {by[other]['time_ms_median'] / scale:.1f} ms")
    if float(doc.get("dilation", 1.0)) > 1:
        parts.append(f"dilated x{float(doc['dilation']):g} (contention shrinks by it)")
    return "; ".join(parts)


def lock_contention(doc: dict, variant: str) -> list[str]:
    """The contended lock classes of the variant, medians over its repeats."""
    rows = [r for r in doc["repeats"] if r["variant"] == variant and r.get("lock_stat")]
    if not rows:
        return []
    out = []
    for cls in ("zs_pool_lock", "zs_class_lock", "zone_lock"):
        con = [next((x["contentions"] for x in r["lock_stat"] if x["class name"] == cls), 0)
               for r in rows]
        wait = [next((x["waittime-total"] for x in r["lock_stat"] if x["class name"] == cls),
                     0.0) for r in rows]
        if statistics.median(con) > 0:
            out.append(f"{cls}: {int(statistics.median(con)):,} contentions, "
                       f"{statistics.median(wait) / 1e3:,.0f} us waited")
    return out
