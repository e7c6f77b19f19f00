"""A farm run's cells, and what the run was asked: the state the watch loop and the progress
display share."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emul.farm.cluster import Host


@dataclass
class Cell:
    id: str                      # "rpi4" (--each) or "rpi4 g2" (--spread)
    host: Host
    group: int | None = None     # --spread: the matrix group (1-based) it runs
    label: str = ""              # what the progress line says it runs
    state: str = "queued"        # queued, running, done, audit-failed, failed, cancelled
    done: int = 0
    total: int = 0
    phase: str = ""
    reason: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    started: float | None = None

    def record(self) -> dict[str, Any]:
        return {"cell": self.id, "host": self.host.name, "group": self.group,
                "state": self.state, "code": self.result.get("code"), "reason": self.reason,
                "wall_s": self.result.get("wall_s"), "doc": self.result.get("doc")}


@dataclass
class FarmRun:
    """What emul farm run was asked: the scenario as text (all a host is sent of it)."""
    scenario_path: str
    scenario_text: str
    spread: bool
    profile: str | None = None           # a built-in name, or a file's path ...
    profile_text: str | None = None      # ... whose text is sent
    run_args: list[str] = field(default_factory=list)
