"""`emul replay`: a low-memory-killer storm from a log, replayed against each GC strategy.

The trace (emul/replay/traces.py reads lmkd, kernel OOM, CSV and JSON Lines) gives the victims: each
becomes one emulated process whose rss is resident and whose swap is written through zram's
write path before the replay. The base scenario gives the device, data, CPUs, background load
and cost profile. lmkd's reaper threads (the scenario's killers, two by default) take the kills
in order at their recorded times (scaled) or back to back, several exits in flight when the
times overlap (emul/kernel/replay.py). Per strategy it reports each kill's latency (kill to all
anon memory freed, kill to all its swap slots freed), the time until N MB had been returned, the
memory-returned and GC-backlog timelines, lock statistics and the audit.

This file builds the replay's scenario from a trace (victims, strategies, when each kill is
due) and checks that it fits the device; emul/replay/report.py sums up what the run measured.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from emul.config.sizes import format_size
from emul.errors import InputError

if TYPE_CHECKING:
    from emul.replay.traces import Kill

DEFAULT_BASE = "scenarios/replay-base.yaml"
DEFAULT_STRATEGIES = ("sync", "bitmap", "percpu-zsfree")


def _page_round(kb: int, page: int) -> int:
    return int(math.ceil(kb * 1024 / page)) * page


def build_scenario_doc(base: dict[str, Any], kills: Sequence[Kill], strategies: list[str],
                       page: int, size_scale: float) -> dict[str, Any]:
    """The replay's scenario mapping: the base with the trace's victims and the strategies."""
    doc = {k: v for k, v in base.items() if k not in ("variants", "vary")}
    apps = [p for p in base.get("processes") or [] if isinstance(p, dict) and p.get("role") == "app"]
    victims = []
    seen: dict[str, int] = {}
    for i, k in enumerate(kills):
        rss = _page_round(int(k.rss_kb * size_scale), page)
        swap = _page_round(int(k.swap_kb * size_scale), page)
        if rss + swap == 0:
            rss = page          # a victim with nothing to free still has a page table to walk
        base_name = "".join(c if (c.isascii() and c.isalnum()) or c in "._+-" else "_"
                            for c in k.name)[:60].lstrip("._+-") or "victim"
        n = seen.get(base_name, 0) + 1
        seen[base_name] = n
        victims.append({"name": f"{i + 1:03d}-{base_name}" + (f"-{n}" if n > 1 else ""),
                        "vma": rss + swap, "swapped": swap / (rss + swap), "role": "victim"})
    doc["processes"] = victims + apps
    doc["experiment"] = "mixed" if apps else "unmap"
    doc["variants"] = [{"name": s, "strategy": s} for s in strategies]
    return doc


def check_fits(doc: dict[str, Any], disksize: int, page: int, reclaim_vma: int,
               where: str) -> None:
    """Refuse a population whose swap does not fit the device, saying how much it needs."""
    swap = sum(int(round(p["swapped"] * (p["vma"] // page))) * page for p in doc["processes"])
    need = swap + reclaim_vma
    if need > disksize:
        extra = f" plus {format_size(reclaim_vma)} for the reclaim worker" if reclaim_vma else ""
        raise InputError(where, "zram.disksize",
                         f"expected room for the storm: its victims and apps swap "
                         f"{format_size(swap)}{extra}, but the device holds "
                         f"{format_size(disksize)}; use a base scenario with zram.disksize >= "
                         f"{format_size(_round_up(need, 1 << 20))}, or --size-scale "
                         f"{max(0.01, disksize / need * 0.95):.2f}")


def _round_up(n: int, unit: int) -> int:
    return (n + unit - 1) // unit * unit


def due_times(kills: Sequence[Kill], time_scale: float | None) -> tuple[float, ...]:
    """Each kill's time in ms after the replay's start: recorded times scaled, or all 0."""
    if time_scale is None:
        return tuple(0.0 for _ in kills)
    return tuple(k.t_ms * time_scale for k in kills)
