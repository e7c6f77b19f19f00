"""One repeat's figures, as the harness measured them: the typed record behind results.json.

The harness fills a :class:`RepeatRecord` from the arena after each repeat (emul/harness/
collect.py); ``to_json`` gives the row that results.json stores under ``repeats`` (schema in
emul/report/results.py), which is what the report modules read back.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from emul.kernel import context as C

# the per-repeat counters summed over every worker's row: record field -> wstat word
WORKER_COUNTERS: dict[str, int] = {
    "lazy": C.W_LAZY, "in_place": C.W_IN_PLACE, "fallback": C.W_FALLBACK,
    "miss_free": C.W_MISS_FREE, "gc_freed": C.W_GC_FREED, "gc_passes": C.W_GC_PASSES,
    "gc_skipped": C.W_GC_SKIPPED, "gc_sleeps": C.W_GC_SLEEPS, "gc_wakeups": C.W_WAKEUPS,
    "gc_wake_polled": C.W_WAKE_POLLED, "reused_queued": C.W_REUSED_QUEUED,
    "reclaimed": C.W_RECLAIMED, "refaulted": C.W_REFAULTED, "batch_saved": C.W_BATCH_SAVED,
}


@dataclass(frozen=True)
class WorkerUse:
    """Where one worker ran during the repeat's measured phases, and what it cost it."""

    role: str
    cpus_allowed: list[int]
    cpus_seen: list[int]
    cpu_s: float | None
    wall_s: float | None
    voluntary: int | None
    involuntary: int | None
    migrations: int | None
    runqueue_wait_s: float | None = None


@dataclass
class RepeatRecord:
    """Every figure of one repeat of one variant."""

    variant: str
    strategy: str
    repeat: int                        # 1-based, as in every table and message
    group: str
    profile: str
    experiment: str
    time_ns: float                     # the headline actors, first start to last end
    other_actors_ns: dict[str, float]  # every other measured actor's own time
    ptes: int
    ns_per_page: float
    counters: dict[str, int]           # WORKER_COUNTERS, summed over the workers
    gc_busy_ns: float
    gc_drain_ns: float
    backlog_at_unmap_end: int
    peak_backlog: int
    peak_backlog_bytes: int
    pool_pages_before: int
    pool_pages_after: int
    zram_stats: dict[str, int]
    zram_stats_before: dict[str, int]
    lock_stat: list[dict[str, Any]]
    workers: dict[str, WorkerUse]
    audit: dict[str, Any]
    steal_s: dict[str, float] = field(default_factory=dict)  # measured CPU -> hypervisor's time
    dilation: float = 1.0              # emulated times are host times / this
    tries: int = 1                     # runs of this repeat: 1 + the disturbed ones redone
    disturbed: list[dict[str, Any]] = field(default_factory=list)  # of the kept run (disturbance.py)
    redone_for: list[str] = field(default_factory=list)   # each redone try's cause(s)
    timeline: dict[str, list] = field(default_factory=dict)
    time_split: dict[str, dict[str, Any]] = field(default_factory=dict)   # worker -> where it went
    replay: dict[str, Any] | None = None
    # who waited on whom: (class, waiter, holder) with waits, wait time and a log2 histogram
    # (emul/kernel/lockstat.py merge_who)
    lock_who: list[dict[str, Any]] = field(default_factory=list)
    # the shared counters standing for kernel atomics: updates and bounces (lockstat.py)
    shared_counters: dict[str, dict[str, int]] = field(default_factory=dict)
    # each headline actor's own time, its start to its end (a killer's: its exits, in turn)
    headline_ns: dict[str, float] = field(default_factory=dict)

    @property
    def audit_ok(self) -> bool:
        return bool(self.audit["ok"])

    def to_json(self) -> dict[str, Any]:
        """The row of results.json (flat: the counters sit beside the other figures)."""
        row = asdict(self)
        counters = row.pop("counters")
        if row["replay"] is None:
            del row["replay"]
        keys = list(row)
        at = keys.index("gc_busy_ns")
        ordered = {k: row[k] for k in keys[:at]}
        ordered.update(counters)
        ordered.update({k: row[k] for k in keys[at:]})
        return ordered
