"""Disturbed repeats: a measured worker that lost its CPU to a task emul does not emulate.

After each repeat every measured worker (the actors, the GC workers that served the variant,
reclaim) is judged by its share of the phase it spent on its CPU: 1 - run-queue wait / wall,
the run-queue wait read from /proc/self/schedstat (time runnable while another task had the
CPU). Below CPU_SHARE_MIN the repeat is disturbed: its figures measure the other task as much
as the design (a killer with half its CPU unmaps at half speed; a GC with half its CPU lets the
cap bind and the killer falls back), and the controller runs it again, up to REDO_LIMIT times
(emul bench and emul calibrate do the same with their batches). Where every try was disturbed
the least disturbed one is kept and the run says so.

Workers the scenario itself pins to one CPU preempt each other by design: that wait is part of
what is emulated, so they are not judged. Where the kernel has no schedstat the share falls back
to CPU time / wall (psutil: 10 ms ticks, so only for phases of a second or more).

Time the hypervisor takes (steal) is not a run-queue wait, and it hurts as much: a vCPU stopped
while its GC holds a class lock leaves the killer spinning for the whole stall. So the steal
time of each measured CPU over the repeat (/proc/stat, read by the controller before and after)
counts as well, with the cause "the hypervisor": above STEAL_SHARE_MAX of the repeat. That is
higher than for another task because /proc/stat counts steal in 10 ms ticks (one tick is 16 % of
a 60 ms repeat) and because on a shared VM some steal is steady (the host's warning reports it):
a repeat run again meets the same steady share, so only a stall beyond it is redone.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from emul.harness.record import RepeatRecord, WorkerUse

CPU_SHARE_MIN = 0.95      # a measured worker on its CPU less than this share of its phase
STEAL_SHARE_MAX = 0.20    # the hypervisor took more than this share of a measured CPU
REDO_LIMIT = 2            # tries after the first, per repeat
FALLBACK_MIN_WALL_S = 1.0  # psutil's CPU time is in 10 ms ticks: judge only phases this long


@dataclass(frozen=True)
class Disturbance:
    """One measured worker that had too little of its CPU in one repeat."""

    worker: str
    cpus: list[int]
    cpu_share: float          # of its phase's wall time, on its CPU
    cause: str = "another task"     # or "the hypervisor" (steal)

    def describe(self) -> str:
        where = ",".join(str(c) for c in self.cpus)
        return f"{self.worker} had {self.cpu_share:.0%} of CPU {where}, {self.cause} took the rest"

    def to_json(self) -> dict:
        return asdict(self)


def cpu_share(use: WorkerUse) -> float | None:
    """The share of the phase this worker was on its CPU, or None where it cannot be told."""
    if not use.wall_s:
        return None
    if use.runqueue_wait_s is not None:
        return max(0.0, 1.0 - use.runqueue_wait_s / use.wall_s)
    if use.cpu_s is not None and use.wall_s >= FALLBACK_MIN_WALL_S and use.role != "gc":
        return min(1.0, use.cpu_s / use.wall_s)   # the GC sleeps when idle: not comparable
    return None


def sharing_by_design(rec: RepeatRecord) -> set[str]:
    """The measured workers the scenario pins to a CPU another measured worker has too."""
    shared: set[str] = set()
    names = list(rec.workers)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if set(rec.workers[a].cpus_allowed) & set(rec.workers[b].cpus_allowed):
                shared.update((a, b))
    return shared


def disturbances(rec: RepeatRecord) -> list[Disturbance]:
    """The measured workers of this repeat that had less than CPU_SHARE_MIN of their CPU:
    another task had it, or the hypervisor."""
    shared = sharing_by_design(rec)
    out = []
    span_s = (rec.time_ns + rec.gc_drain_ns) / 1e9 * rec.dilation
    for name, use in rec.workers.items():
        share = cpu_share(use)
        if name not in shared and share is not None and share < CPU_SHARE_MIN:
            out.append(Disturbance(name, use.cpus_allowed, share))
            continue
        stolen = sum(rec.steal_s.get(str(c), 0.0) for c in use.cpus_allowed)
        if span_s > 0 and stolen / span_s > STEAL_SHARE_MAX:
            out.append(Disturbance(name, use.cpus_allowed, max(0.0, 1 - stolen / span_s),
                                   "the hypervisor"))
    return out


def least_disturbed(tries: list[tuple[RepeatRecord, list[Disturbance]]]
                    ) -> tuple[RepeatRecord, list[Disturbance]]:
    """Of tries that were all disturbed, the one whose worst worker had the most CPU."""
    return max(tries, key=lambda t: min(d.cpu_share for d in t[1]))
