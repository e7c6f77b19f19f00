"""The machine's state over a run, as mmtests and pyperf record it: what else the host was doing.

Read from /proc and /sys before the first repeat and after the last: the load average, each
CPU's busy and steal time (/proc/stat), the CPU frequency governor where cpufreq exists, and
emul's own processes' CPU time (the controller and every worker, /proc/<pid>/stat), so that the
CPU time other tasks took on the measured CPUs is the busy time there less emul's. Plus what
emul itself is: its package version and, run from a git checkout, the revision (``+dirty`` when
the tree has changes).
"""
from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from emul import PACKAGE_ROOT
from emul.harness.leftovers import other_runs

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOADED_SHARE = 0.05     # other tasks took this share of a measured CPU: the host was loaded


def cpu_ticks() -> dict[int, tuple[int, int]]:
    """Per CPU: (busy, steal) in clock ticks since boot (/proc/stat)."""
    out = {}
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            name, *f = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            v = [int(x) for x in f[:8]] + [0] * (8 - len(f[:8]))
            user, nice, system, idle, iowait, irq, softirq, steal = v
            out[int(name[3:])] = (user + nice + system + irq + softirq, steal)
    except (OSError, ValueError):
        pass
    return out


def governors(cpus: list[int]) -> dict[int, str]:
    out = {}
    for c in cpus:
        try:
            out[c] = Path(f"/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor"
                          ).read_text().strip()
        except OSError:
            pass
    return out


def process_cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except (psutil.Error, OSError):
            pass
    return total


def cpu_model() -> str:
    """The CPU's model as /proc/cpuinfo names it (x86's model name, arm64's Hardware or CPU
    model line); "" when it says none. What results.json's machine and emul farm compare."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "cpu model", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def emul_version() -> dict[str, str]:
    """emul's package version, and the git revision when it runs from a checkout."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        v = version("emul")
    except PackageNotFoundError:
        v = "unknown"
    out = {"version": v, "code": code_hash()}
    if (PACKAGE_ROOT / ".git").exists():
        try:
            rev = subprocess.run(["git", "-C", str(PACKAGE_ROOT), "rev-parse", "--short=12",
                                  "HEAD"], capture_output=True, text=True, timeout=5).stdout
            dirty = subprocess.run(["git", "-C", str(PACKAGE_ROOT), "status", "--porcelain",
                                    "--untracked-files=no"], capture_output=True, text=True,
                                   timeout=5).stdout
            if rev.strip():
                out["git"] = rev.strip() + ("+dirty" if dirty.strip() else "")
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def code_hash() -> str:
    """A hash of every source file of emul and its workers: two runs with the same one ran
    identical code (what `emul compare` needs to tell an A/A pair from a change)."""
    import hashlib
    h = hashlib.sha1()
    for top in ("emul", "workers"):
        for path in sorted((PACKAGE_ROOT / top).rglob("*.py")):
            h.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


@dataclass
class HostState:
    """Before and after a run: load, busy and steal per measured CPU, emul's own CPU time."""

    cpus: list[int]                      # the CPUs measured workers are pinned to
    t0: float = 0.0
    load_before: tuple[float, ...] = ()
    ticks_before: dict[int, tuple[int, int]] = field(default_factory=dict)
    emul_before: float = 0.0
    beside: dict[int, set[int]] = field(default_factory=dict)   # other emul runs: pid -> CPUs

    def start(self, pids: list[int]) -> None:
        self.note_other_runs()
        self.t0 = time.monotonic()
        self.load_before = os.getloadavg()
        self.ticks_before = cpu_ticks()
        self.emul_before = process_cpu_s(pids)

    def stop(self, pids: list[int]) -> dict:
        """The run's host state (results.json's ``host``)."""
        wall = max(1e-9, time.monotonic() - self.t0)
        self.note_other_runs()
        after = cpu_ticks()
        emul_s = process_cpu_s(pids) - self.emul_before
        busy = steal = 0.0
        for c in self.cpus:
            if c in after and c in self.ticks_before:
                busy += (after[c][0] - self.ticks_before[c][0]) / CLK_TCK
                steal += (after[c][1] - self.ticks_before[c][1]) / CLK_TCK
        # emul's controller is not pinned: all of its time is counted as on the measured CPUs,
        # so "others" is a lower bound
        others = max(0.0, busy - emul_s)
        n = max(1, len(self.cpus))
        return {"load_before": list(self.load_before), "load_after": list(os.getloadavg()),
                "measured_cpus": self.cpus, "wall_s": wall,
                "busy_s": busy, "emul_cpu_s": emul_s, "others_cpu_s": others,
                "others_share": others / (wall * n), "steal_s": steal,
                "steal_share": steal / (wall * n),
                "governors": {str(k): v for k, v in governors(self.cpus).items()},
                "loaded": others / (wall * n) > LOADED_SHARE or steal / (wall * n) > LOADED_SHARE,
                "other_emul_runs": [{"pid": pid, "cpus": sorted(c)}
                                    for pid, c in sorted(self.beside.items())],
                "emul": emul_version()}

    def note_other_runs(self) -> None:
        """Other emul runs whose workers share a measured CPU, at the start or the end: the
        load warning alone would not say that the other load is a second benchmark."""
        for run in other_runs():
            shared = run.cpus & set(self.cpus)
            if shared:
                self.beside.setdefault(run.pid, set()).update(shared)
