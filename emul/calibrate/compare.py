"""The real kernel beside emul with the fitted profile: the table and the slowdown lines.

The single-process rows are in-sample (the profile was fitted to them, so a ratio near 1 checks
the fit); the k-concurrent exits were not used in the fit: they are the out-of-sample check of
emul's contention model.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.markup import escape

from emul.calibrate.measure import WORKLOADS

if TYPE_CHECKING:
    from rich.table import Table

LABELS = {
    "unmap-zero": "unmap, zero-page PTEs",
    "unmap-resident": "unmap, resident",
    "unmap-swapped": "unmap, swapped (zram)",
    "swapin": "swap-in, data pages",
    "swapin-same": "swap-in, same-filled pages",
}


def side_by_side_rows(meas: dict, emulated: dict) -> list[tuple[str, float, float | None]]:
    """(label, real ns/page, emulated ns/page or None when not emulated) per workload."""
    rows = []
    for key in WORKLOADS:
        rows.append((LABELS[key], meas["ns_per_page"][key],
                     emulated.get(key, {}).get("ns_per_page")))
    for k, v in meas["concurrent"].items():
        rows.append((f"{k} unmapping at once (wall / pages each)", v["wall_ns_per_page"],
                     emulated.get(f"concurrent-{k}", {}).get("ns_per_page")))
    return rows


def side_by_side(meas: dict, emulated: dict, profile_name: str) -> Table:
    """The rows as a rich Table, its caption saying which rows test what."""
    from rich.table import Table
    t = Table(title=f"real kernel vs emul ({escape(profile_name)}), sync, {meas['mib']} MiB per process",
              caption="The single-process rows are in-sample: the profile was fitted to them "
                      "(ratio near 1 checks the fit). The concurrent rows were not used in the "
                      "fit: they are the out-of-sample check of the emulator's contention "
                      "model. ratio = emulated / real.")
    for col, just in (("workload", "left"), ("real kernel ns/page", "right"),
                      ("emulated ns/page", "right"), ("ratio", "right")):
        t.add_column(col, justify=just)
    for label, real, emu in side_by_side_rows(meas, emulated):
        t.add_row(label, f"{real:,.0f}", "-" if emu is None else f"{emu:,.0f}",
                  "-" if emu is None or not real else f"{emu / real:.2f}")
    return t


def slowdown_lines(meas: dict, emulated: dict) -> list[str]:
    """k at once against 1 alone, real and emulated: contention as a ratio, which does not
    depend on the fit's absolute level."""
    out = []
    c = meas["concurrent"]
    if "1" not in c:
        return out
    for k in sorted(c, key=int)[1:]:
        real = c[k]["wall_ns"] / c["1"]["wall_ns"]
        e1, ek = emulated.get("concurrent-1"), emulated.get(f"concurrent-{k}")
        emu = ek["ns_per_page"] / e1["ns_per_page"] if e1 and ek else math.nan
        out.append(f"{k} at once vs 1 alone (wall): real kernel {real:.2f}x, emul {emu:.2f}x")
    return out
