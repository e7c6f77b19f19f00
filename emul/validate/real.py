"""Row 8 (``emul validate --real``): this machine's real kernel, measured by ``emul calibrate``
on a real zram device, against emul running the profile fitted to it.

The fit uses the single-process workloads, so those are in-sample; k processes exiting at once
against one alone is the out-of-sample figure: contention, which no cost of the profile holds.
"""
from __future__ import annotations

from typing import Any

from emul.validate.outcome import Outcome

BOARD = "this machine, real zram"


def real_outcomes(record: dict[str, Any]) -> list[Outcome]:
    """The k-at-once slowdowns of calibrate's record (its JSON beside the profile)."""
    meas, emulated = record["measurements"], record["emulated"]
    conc = meas.get("concurrent") or {}
    e1 = emulated.get("concurrent-1")
    out = []
    for k in sorted((k for k in conc if k != "1"), key=int):
        real = conc[k]["wall_ns"] / conc["1"]["wall_ns"]
        ek = emulated.get(f"concurrent-{k}")
        what = f"{k} exits at once vs 1 alone (wall)"
        if not (e1 and ek):
            out.append(Outcome(f"8.{k}p", 8, BOARD, what, real, "error", unit="x",
                               reason="emul calibrate ran no emulated concurrent runs"))
            continue
        out.append(Outcome(f"8.{k}p", 8, BOARD, what, real, "ran",
                           ek["ns_per_page"] / e1["ns_per_page"], 0.0, "out-of-sample",
                           "calibrated", float(record.get("dilate", 1.0)),
                           "the fit used the single exits; this is contention", unit="x"))
    return out
