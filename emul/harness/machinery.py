"""emul's own machinery per kernel step on this host, so that a cost profile means the same
everywhere.

A profile's cost is what the kernel step costs on the target hardware (its *target*). emul does
part of every step physically (the real atomics, zsmalloc's bookkeeping, the page-table walk in
the arena) and that part costs what this host makes it cost. The probe measures it: once per
group and variant, before the first repeat, each measured worker runs its path alone (each
killer in turn, then the swap-in worker, then the GC draining what they queued, then reclaim
for a moment),
with every modelled cost at zero and every step timed exclusively (kernel/context.py:
step_enter / step_exit). A step's cost then pays only ``target - machinery`` (pay_target);
contention (lock waits, cache lines that another CPU holds) comes on top, as it would on the
board. Machinery above its target is an *overrun*, counted per step.

A wait between two steps costs more than its length: its clock reads, and the overlap it takes
away (out of order, one step's cache misses hide behind the next step's work; a spin in
between ends that). The probe measures this per role too: the same path once more with every
step waiting PROBE_WAIT_NS, untimed; what that span has beyond the plain span and the waits
themselves, per step event, is the role's ``wait_overhead``, which each wait then leaves out
(probe.py: per round against the plain pass just before it, the median of the rounds, never
less than a wait's own clock reads).

Figures are ticks per step event; the probe's own cost (an enter/exit pair) is measured on empty
regions and taken off. Results are cached per host, CPU model, emul source version, scenario
group and variant (~/.cache/emul/machinery), and re-measured when any of them changes.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emul.atomic import write_text
from emul.config.costs import COST_NAMES, NR_COSTS
from emul.kernel import context as C
from emul.kernel.clock import clock_now

if TYPE_CHECKING:
    from emul.config.scenario import Scenario, VariantSpec

CALIBRATE_N = 200_000      # empty regions timed for the probe's own cost
PROBE_VERSION = 7
PROBE_WAIT_NS = 200        # the wait after every step in the probe's third pass


@dataclass
class RoleMachinery:
    """One role's machinery, in ticks: per step event; the strategy's own work (DESIGN) per
    design unit (a call of its enqueue; for the GC, a slot its drain freed); work in no step
    (ROOT) per page zapped or faulted."""

    step: list[float] = field(default_factory=lambda: [0.0] * NR_COSTS)
    design: float = 0.0
    root_per_unit: float = 0.0
    events: list[int] = field(default_factory=lambda: [0] * NR_COSTS)
    wait_overhead: float = -1.0     # ticks a wait between steps costs beyond its length (-1: none)

    def row(self) -> list[int]:
        return [int(round(m)) for m in self.step]


@dataclass
class Machinery:
    """The probe's result for one variant: per role, and the figures it was measured with."""

    roles: dict[str, RoleMachinery]
    ticks_per_ns: float
    bias_in: float
    bias_out: float
    key: str = ""
    delay_overhead: int = 0       # ticks: what a busy-wait costs beyond its length

    def role(self, role: str) -> RoleMachinery:
        return self.roles.get(role) or RoleMachinery()

    def wait_overhead(self, role: str) -> int:
        """Ticks each of this role's waits leaves out: measured in its path, else the
        back-to-back figure (a role whose path has no span, such as reclaim)."""
        measured = self.role(role).wait_overhead
        return int(round(measured)) if measured >= 0 else self.delay_overhead

    def table_ns(self) -> dict[str, dict[str, float]]:
        """role -> step name -> ns per event (steps the role did), for reports."""
        out: dict[str, dict[str, float]] = {}
        for role, m in self.roles.items():
            row = {COST_NAMES[i]: m.step[i] / self.ticks_per_ns
                   for i in range(len(COST_NAMES)) if m.events[i]}
            row["(strategy's own work, per call)"] = m.design / self.ticks_per_ns
            out[role] = row
        return out

    def to_report(self) -> dict[str, Any]:
        """For results.json: host ns per step event, per role (and the probe's figures)."""
        return {"ns": self.table_ns(), "delay_overhead_ns": self.delay_overhead / self.ticks_per_ns,
                "wait_overhead_ns": {r: self.wait_overhead(r) / self.ticks_per_ns
                                     for r in self.roles},
                "probe_cost_ns": [self.bias_in / self.ticks_per_ns,
                                  self.bias_out / self.ticks_per_ns], "cache_key": self.key}

    def to_json(self) -> dict[str, Any]:
        return {"version": PROBE_VERSION, "ticks_per_ns": self.ticks_per_ns,
                "bias_in": self.bias_in, "bias_out": self.bias_out, "key": self.key,
                "delay_overhead": self.delay_overhead,
                "roles": {r: asdict(m) for r, m in self.roles.items()}}

    @classmethod
    def from_json(cls, doc: dict[str, Any], ticks_per_ns: float) -> "Machinery":
        scale = ticks_per_ns / float(doc["ticks_per_ns"])   # the cache holds another run's ticks
        roles = {}
        for role, m in doc["roles"].items():
            wait = float(m["wait_overhead"])
            roles[role] = RoleMachinery([float(x) * scale for x in m["step"]],
                                        float(m["design"]) * scale,
                                        float(m["root_per_unit"]) * scale,
                                        [int(x) for x in m["events"]],
                                        wait * scale if wait >= 0 else wait)
        return cls(roles, ticks_per_ns, doc["bias_in"] * scale, doc["bias_out"] * scale,
                   doc["key"], int(doc["delay_overhead"] * scale))


# --- reading a worker's probe area --------------------------------------------------------------

def region_ticks(row: np.ndarray, region: int) -> tuple[int, int, int]:
    return (int(row[C.W_PROBE_TICKS + region]), int(row[C.W_PROBE_CALLS + region]),
            int(row[C.W_PROBE_KIDS + region]))


def per_call(row: np.ndarray, region: int, bias_in: float, bias_out: float) -> float:
    """A region's exclusive ticks per call, less the probe's own cost."""
    ticks, calls, kids = region_ticks(row, region)
    if calls == 0:
        return 0.0
    return max(0.0, (ticks - calls * bias_in - kids * bias_out) / calls)


def span(rows: list[np.ndarray], role: str) -> int:
    """The ticks a role's workers worked: the measured actors from start to end, the GC while
    it drained; 0 where there is no such span (reclaim runs for as long as it is let)."""
    if role == "gc":
        return sum(int(r[C.W_GC_BUSY]) for r in rows)
    if role in ("killer", "swapin"):
        return sum(int(r[C.W_T_END] - r[C.W_T_START]) for r in rows)
    return 0


def role_machinery(rows: list[np.ndarray], role: str, bias_in: float, bias_out: float,
                   plain_span: int) -> RoleMachinery:
    """Sum the timed rows of one role's workers into its per-event figures, scaled so that
    they add up to ``plain_span``, the same path's span when nothing was timed."""
    total = np.sum(rows, axis=0)
    m = RoleMachinery()
    for i in range(len(COST_NAMES)):
        m.step[i] = per_call(total, i, bias_in, bias_out)
        m.events[i] = int(total[C.W_PROBE_CALLS + i])
    calls = int(total[C.W_PROBE_CALLS + C.REGION_DESIGN])
    design = per_call(total, C.REGION_DESIGN, bias_in, bias_out) * calls
    steps = sum(m.step[i] * m.events[i] for i in range(len(COST_NAMES)))
    units = int(total[C.W_PTES])
    timed_span = span(rows, role)
    inside = sum(int(total[C.W_PROBE_TICKS + i]) for i in range(C.REGION_ROOT))
    inside += int(total[C.W_PROBE_TICKS + C.REGION_DESIGN])
    root = max(0.0, timed_span - inside) if units else 0.0
    scale = plain_span / (steps + design + root) if plain_span and steps + design + root else 1.0
    scale = min(1.0, max(0.2, scale))      # timing only ever adds; guard against a bad round
    m.step = [x * scale for x in m.step]
    freed = int(total[C.W_GC_FREED])
    # the strategy's own work: per call of its enqueue; for the GC, per slot its drain freed
    m.design = design * scale / (freed if freed else max(1, calls))
    m.root_per_unit = root * scale / units if units else 0.0
    return m


def wait_overhead(rows: list[np.ndarray], role: str, plain_span: int) -> float:
    """Per step event, what the waits of the third pass cost beyond their length: that pass's
    span less the waits and less the plain span (-1 where the role has no span or waits)."""
    waited_span = span(rows, role)
    total = np.sum(rows, axis=0)
    events = int(total[C.W_STEP_EVENTS:C.W_STEP_EVENTS + NR_COSTS].sum())
    waited = int(total[C.W_STEP_WAITED:C.W_STEP_WAITED + NR_COSTS].sum())
    if not plain_span or not waited_span or not events:
        return -1.0
    return max(0.0, (waited_span - waited - plain_span) / events)


TYPICAL_WAIT_NS = 200      # most steps' busy-waits are a few hundred ns


def delay_overhead(ticks_per_ns: float) -> int:
    """Ticks a busy-wait spends beyond its length (its own clock reads, and whatever the host
    takes from a spin of a typical length), taken off each wait."""
    wait = max(1, int(TYPICAL_WAIT_NS * ticks_per_ns))
    C.delay_calibrate(10, wait)
    n = 20_000
    return max(0, int(C.delay_calibrate(n, wait) / n) - wait)


def arm_probe(wstat: np.ndarray, index: int) -> None:
    """Start timing worker index's regions (from the controller, before its phase)."""
    row = wstat[index]
    for base in (C.W_PROBE_TICKS, C.W_PROBE_CALLS, C.W_PROBE_KIDS):
        row[base:base + C.NR_REGIONS] = 0
    row[C.W_PROBE_DEPTH] = 0
    row[C.W_PROBE_TOP] = C.REGION_ROOT
    row[C.W_PROBE_LAST] = clock_now()
    row[C.W_PROBE] = 1


def calibrate(ctx: C.Ctx) -> tuple[float, float]:
    """The probe's own cost per enter/exit pair: (ticks left inside, ticks left outside)."""
    for n in (1000, CALIBRATE_N):     # the first round compiles (or loads) all three
        C.probe_start(ctx)
        C.probe_calibrate(ctx, n)
        C.probe_stop(ctx)
    inside = ctx.stat[C.W_PROBE_TICKS + C.REGION_EMPTY] / CALIBRATE_N
    outside = ctx.stat[C.W_PROBE_TICKS + C.REGION_ROOT] / CALIBRATE_N
    return float(inside), float(outside)


# --- the cache -------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.lower().startswith(("model name", "cpu part", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_key(scenario: "Scenario", workers: list[tuple[str, list[int]]],
              variant: "VariantSpec") -> str:
    """What the figures depend on: host, CPU, emul's sources, the group's scenario and workers
    (role, CPUs), the variant (costs, repeats and the dilation do not change the machinery)."""
    sc = scenario.to_dict()
    for k in ("repeats", "profile", "name", "variants", "dilate"):   # host figures: no dilation
        sc.pop(k, None)
    parts = {"host": platform.node(), "cpu": cpu_model(), "arch": platform.machine(),
             "source": Path(os.environ.get("NUMBA_CACHE_DIR", "")).name,
             "scenario": sc, "variant": [variant.strategy, variant.cap_slots, variant.cap_bytes,
                                         list(variant.zsmalloc), variant.step_work_ns],
             "workers": workers, "version": PROBE_VERSION}
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:20]


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emul" / "machinery"


def load_cached(key: str, ticks_per_ns: float) -> Machinery | None:
    try:
        doc = json.loads((cache_dir() / f"{key}.json").read_text())
        if doc.get("version") != PROBE_VERSION or doc.get("key") != key:
            return None
        return Machinery.from_json(doc, ticks_per_ns)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(m: Machinery) -> None:
    """Keep the figures for the next run; a cache that cannot be written only costs a probe."""
    try:
        d = cache_dir()
        d.mkdir(parents=True, exist_ok=True)
        write_text(d / f"{m.key}.json", json.dumps(m.to_json()))
    except OSError:
        pass
