"""trace.json: a run as Trace Event JSON, for Perfetto (ui.perfetto.dev) and chrome://tracing.

One process per group of workers (one unless the scenario varies structural keys), one thread
track per worker named by role and CPU, plus the controller's track with the phases of every
repeat. Spans ("X" events): the phases, each worker's measured work, GC passes (work items) and,
in replays, each kill on its reaper's track until its anon memory is freed, and as an async span
("b"/"e") until its swap is freed. A repeat that was run again (disturbed) shows its kept try
only. Counter tracks ("C"): memory held (resident and
compressed) and the GC backlog, as the controller sampled them. Timestamps are the emulator's own
clock (the cycle counter every worker reads), in microseconds since the run's first tick.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emul.atomic import write_text
from emul.harness.sampler import Sample
from emul.harness.supervisor import WorkerProc
from emul.kernel import context as C



class TraceRecorder:
    """Collects spans and counters in ticks; ``write`` converts them to Trace Event JSON."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.names: dict[tuple[int, int], str] = {}
        self.process_names: dict[int, str] = {}
        self.origin: int | None = None
        self.ticks_per_ns = 1.0

    def take(self, other: "TraceRecorder") -> None:
        """Add another recorder's events (a repeat's kept try) to this one."""
        self.events.extend(other.events)
        if other.origin is not None:
            self._origin(other.origin)

    def name_process(self, pid: int, name: str) -> None:
        self.process_names[pid] = name

    def name_track(self, pid: int, tid: int, name: str) -> None:
        self.names[(pid, tid)] = name

    def span(self, pid: int, tid: int, name: str, t0: int, t1: int, **args) -> None:
        if t0 <= 0 or t1 < t0:
            return   # a worker that never started its part
        self._origin(t0)
        self.events.append({"ph": "X", "name": name, "pid": pid, "tid": tid, "t": t0,
                            "d": t1 - t0, "args": args})

    def async_span(self, pid: int, name: str, t0: int, t1: int, ident: int, **args) -> None:
        """A span that may overlap others (Trace Event async "b"/"e" with an id): a kill's
        swap being freed goes on while the reaper takes the next kill."""
        if t0 <= 0 or t1 < t0:
            return
        self._origin(t0)
        self.events.append({"ph": "b", "name": name, "pid": pid, "t": t0, "id": ident,
                            "args": args})
        self.events.append({"ph": "e", "name": name, "pid": pid, "t": t1, "id": ident,
                            "args": {}})

    def counter(self, pid: int, name: str, t: int, **values) -> None:
        self._origin(t)
        self.events.append({"ph": "C", "name": name, "pid": pid, "t": t, "args": values})

    def _origin(self, t: int) -> None:
        if self.origin is None or t < self.origin:
            self.origin = t

    def to_json(self) -> dict:
        us = 1.0 / (self.ticks_per_ns * 1000.0)
        origin = self.origin or 0
        out: list[dict] = []
        for pid, name in self.process_names.items():
            out.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                        "args": {"name": name}})
        for (pid, tid), name in self.names.items():
            out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                        "args": {"name": name}})
            out.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                        "args": {"sort_index": tid}})
        for e in self.events:
            ev = {"ph": e["ph"], "name": e["name"], "pid": e["pid"],
                  "ts": round((e["t"] - origin) * us, 3), "args": e["args"]}
            if e["ph"] == "X":
                ev["tid"] = e["tid"]
                ev["dur"] = round(e["d"] * us, 3)
            elif e["ph"] in ("b", "e"):
                ev.update(cat="kill", id=e["id"], tid=0)
            out.append(ev)
        return {"traceEvents": out, "displayTimeUnit": "ms",
                "otherData": {"clock": "emul cycle counter", "ticks_per_ns": self.ticks_per_ns}}

    def write(self, path: Path) -> Path:
        return write_text(path, json.dumps(self.to_json()))


def name_tracks(rec: TraceRecorder, pid: int, label: str, workers: list[WorkerProc]) -> None:
    """One process per group, the controller's track 0, one track per worker."""
    rec.name_process(pid, f"emul {label}")
    rec.name_track(pid, 0, "controller (phases)")
    for w in workers:
        rec.name_track(pid, w.index + 1, f"{w.name} (CPU {','.join(map(str, w.cpus))})")


def record_repeat(rec: TraceRecorder, pid: int, variant: str, repeat: int,
                  marks: dict[str, int], workers: list[WorkerProc], wstat: np.ndarray,
                  samples: list[Sample], page_size: int) -> None:
    """One repeat (1-based): its phases (marks: phase name -> start tick, ending with "end"),
    each worker's measured work, every GC pass, and the sampled counters."""
    title = f"{variant} #{repeat}"
    names = list(marks)
    for a, b in zip(names, names[1:]):
        rec.span(pid, 0, f"{a}: {title}", marks[a], marks[b], variant=variant, repeat=repeat)
    for w in workers:
        if w.role == "swapout":
            continue
        row = wstat[w.index]
        if w.role != "gc":
            rec.span(pid, w.index + 1, f"{w.role}: {title}", int(row[C.W_T_START]),
                     int(row[C.W_T_END]), pages=int(row[C.W_PTES]))
            continue
        n = int(row[C.W_NEVENTS])
        events = row[C.W_EVENTS:C.W_EVENTS + n * C.EVENT_WORDS].reshape(n, C.EVENT_WORDS)
        for t0, t1, freed in events:
            rec.span(pid, w.index + 1, "GC pass", int(t0), int(t1), freed=int(freed))
    mib = page_size / 2**20
    for s in samples:
        rec.counter(pid, "memory held (MiB)", s.t, resident=s.resident * mib,
                    compressed=s.pool * mib)
        rec.counter(pid, "GC backlog (slots)", s.t, slots=s.backlog)


def record_kills(rec: TraceRecorder, pid: int, reapers: list[WorkerProc],
                 kills: list[dict]) -> None:
    """A replay's kills: on the track of the reaper whose CPU took it, a span from the kill to
    all of its anon memory freed; and, as an async span (the reaper is on to its next kill by
    then), one from the kill to all of its swap slots freed."""
    for i, k in enumerate(kills):
        tid = next((w.index + 1 for w in reapers if k["reaper_cpu"] in w.cpus),
                   min(w.index for w in reapers) + 1)
        rec.span(pid, tid, f"kill {k['name']}: anon freed", k["t_start"], k["t_anon_done"],
                 anon_freed_ms=k["anon_freed_ms"])
        if k.get("t_swap_done"):
            rec.async_span(pid, f"kill {k['name']}: swap freed", k["t_start"],
                           k["t_swap_done"], pid * 100_000 + len(rec.events) + i,
                           swap_freed_ms=k["swap_freed_ms"])
