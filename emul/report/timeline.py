"""Pure helpers over a replay's figures in a results document: its memory-returned timeline
and its kills' end times. Shared by the replay's own summary (emul/replay/report.py) and by
`emul compare`, which reads the same figures back from results.json.
"""
from __future__ import annotations


def time_to_returned(timeline: dict, target_mb: float) -> float | None:
    """The first sampled time at which target_mb had been returned (None: never)."""
    for t, mb in zip(timeline["t_ms"], timeline["returned_mb"]):
        if mb >= target_mb:
            return t
    return None


def kill_freed_ms(kill: dict) -> float:
    """When, after the storm began, a kill had everything freed: its swap slots, or its anon
    memory when its swap never was."""
    done = kill["swap_freed_ms"] if kill["swap_freed_ms"] is not None else kill["anon_freed_ms"]
    return kill["start_ms"] + done
