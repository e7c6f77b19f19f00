"""A repeat's timeline, sampled by the controller while the actors run and the GC drains.

Each sample reads a few words of shared memory and no more (memory held by the measured
processes, the pool's pages, the GC backlog), so that watching does not disturb the run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emul.harness.arena import Arena
from emul.harness.plan import ReplayPlan
from emul.kernel import context as C
from emul.kernel.clock import clock_now
from emul.kernel.replay import CTL_REPLAY_T0, kill_record
from emul.strategies import gc_backlog_now

SAMPLE_MS = 2          # replays: the memory-returned timeline's sampling interval
TIMELINE_MS = 5        # other runs: the memory-held timeline's
REPLAY_LEAD_NS = 200_000   # the storm starts this long after the gate opens


@dataclass(frozen=True)
class Sample:
    t: int          # ticks
    resident: int   # pages resident in the measured processes
    pool: int       # pages the zsmalloc pool holds
    backlog: int    # slots (or handles) queued for the GC


class PhaseSampler:
    """Memory held and GC backlog over one repeat."""

    def __init__(self, arena: Arena, freeing: list[int], faulting: list[int],
                 resident_pages: int, ticks_per_ns: float, page_size: int,
                 interval_ms: float = TIMELINE_MS) -> None:
        self.arena, self.freeing, self.faulting = arena, freeing, faulting
        self.resident_pages = resident_pages
        self.ticks_per_ns, self.page_size = ticks_per_ns, page_size
        self.interval_ticks = int(interval_ms * 1e6 * ticks_per_ns)
        self.samples: list[Sample] = []
        self.t0 = self.last = 0
        self.pool_start = 0

    def start(self) -> None:
        """Right before the gate opens: the first sample, and the timeline's zero."""
        self.pool_start = int(self.arena["pool_stat"][0])
        self.t0 = clock_now()
        self.sample()

    def __call__(self) -> None:
        if clock_now() - self.last >= self.interval_ticks:
            self.sample()

    def sample(self) -> None:
        ws = self.arena["wstat"]
        freed = sum(int(ws[i, C.W_RESIDENT_FREED]) for i in self.freeing)
        faulted = sum(int(ws[i, C.W_FAULTED]) for i in self.faulting)
        self.last = clock_now()
        self.samples.append(Sample(self.last, self.resident_pages - freed + faulted,
                                   int(self.arena["pool_stat"][0]),
                                   gc_backlog_now(self.arena)[0]))

    def ms(self, t: int) -> float:
        return (t - self.t0) / self.ticks_per_ns / 1e6

    def mib(self, pages: int) -> float:
        return pages * self.page_size / 2**20

    def timeline(self) -> dict[str, list]:
        return {"t_ms": [self.ms(s.t) for s in self.samples],
                "resident_mb": [self.mib(s.resident) for s in self.samples],
                "compressed_mb": [self.mib(s.pool) for s in self.samples],
                "gc_backlog": [s.backlog for s in self.samples]}


class ReplaySampler(PhaseSampler):
    """A replay's timeline: also the memory returned (resident pages the reapers freed, the
    pool's pages given back), and each kill's record. Its clock starts at the storm's start."""

    def __init__(self, replay: ReplayPlan, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replay = replay

    def start(self) -> None:
        super().start()
        # the schedule starts a little after the gate opens, so every reaper is waiting on it
        self.t0 += int(REPLAY_LEAD_NS * self.ticks_per_ns)
        self.arena["ctl"][CTL_REPLAY_T0] = self.t0

    def kill(self, i: int) -> dict[str, Any]:
        tpn = self.ticks_per_ns
        k = kill_record(self.arena["kills"], i)
        swap_done = k["swap_done"] if k["slots"] else k["anon_done"]
        return {"name": self.replay.names[i], "due_ms": self.replay.due_ms[i],
                "start_ms": self.ms(k["start"]), "reaper_cpu": k["reaper_cpu"],
                "anon_freed_ms": (k["anon_done"] - k["start"]) / tpn / 1e6,
                "swap_freed_ms": ((swap_done - k["start"]) / tpn / 1e6
                                  if swap_done and not k["slots_left"] else None),
                "slots": k["slots"], "slots_never_freed": k["slots_left"],
                "t_start": k["start"], "t_anon_done": k["anon_done"], "t_swap_done": swap_done}

    def result(self) -> dict[str, Any]:
        samples = [s for s in self.samples if s.t >= self.t0] or self.samples[-1:]
        start = self.resident_pages
        return {"kills": [self.kill(i) for i in range(len(self.replay.names))], "timeline": {
            "t_ms": [self.ms(s.t) for s in samples],
            "returned_mb": [self.mib((start - s.resident) + (self.pool_start - s.pool))
                            for s in samples],
            "resident_freed_mb": [self.mib(start - s.resident) for s in samples],
            "pool_mb": [self.mib(s.pool) for s in samples],
            "gc_backlog": [s.backlog for s in samples]}}
