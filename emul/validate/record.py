"""The published record: every figure the linux-mm threads give for this path, and how emul
re-runs it (docs/kernel-model.md, "Published figures", says where each comes from).

A figure's ``key`` ("3.2p.base") is what a profile's ``derived_from`` names: a figure a
profile was derived from is in-sample for the rows that run with that profile, every other one
out-of-sample. A figure names the scenario (under scenarios/validate/) and the variant whose
median time it is compared with, the CPUs the run needs, and for row 6 the VMA size it sets.
"""
from __future__ import annotations

from dataclasses import dataclass

SCENARIOS = "scenarios/validate"


@dataclass(frozen=True)
class Figure:
    key: str                 # row.case: what profiles' derived_from lists
    row: int
    board: str
    experiment: str
    published_ms: float
    scenario: str = ""       # file under scenarios/validate ("" : emul cannot run it yet)
    variant: str = ""
    cpus: int = 2            # CPUs the run needs (killers, plus the GC where it has one)
    vma: str | None = None   # row 6: every process's VMA
    source: str = ""
    note: str = ""           # why it does not run, when it cannot
    group: str = ""          # the point of a scaling sweep ("exits=2"): variant "base exits=2"

    @property
    def run_variant(self) -> str:
        """The variant's name in the run: the design's, with the point's label."""
        return f"{self.variant} {self.group}" if self.group else self.variant

    @property
    def case(self) -> str:
        return self.key.split(".", 1)[1]


RFC_V1 = "RFC v1 cover letter (Barry Song, 2026-04-12)"
HAO_0429 = "Wenchao Hao, reply of 2026-04-29"
HAO_0430 = "Wenchao Hao, reply of 2026-04-30"
RFC_V2 = "RFC v2 cover letter (Wenchao Hao, 2026-04-21)"

RK = "RK3588 CPU2 (A55)"
RPI = "Raspberry Pi 4B (A72)"
I7 = "Core i7-12700"


def _class_in_handle(row: int, board: str, profile: str, procs: int, base: float, after: float,
                     ) -> list[Figure]:
    """Rows 3 and 4: one scaling sweep per board (vary: exits [1, 2, 4]), a point each."""
    scen = f"{profile}-class-in-handle.yaml"
    what = f"{procs} concurrent unmap{'s' if procs > 1 else ''} of 256 MiB"
    cpus = max(2, procs)      # one killer per exit, each on a CPU of its own
    point = f"exits={procs}"
    return [Figure(f"{row}.{procs}p.base", row, board, f"{what}, base", base, scen, "base", cpus,
                   source=HAO_0429, group=point),
            Figure(f"{row}.{procs}p.class_in_handle", row, board, f"{what}, class index in object",
                   after, scen, "class_in_handle", cpus, source=HAO_0429, group=point)]


def _deferred(row: int, procs: int, vma: str, base: float, after: float) -> list[Figure]:
    scen = "rpi4-deferred.yaml" if procs == 1 else ""
    key = f"{row}.{procs}p" if row == 5 else f"{row}.{vma}"
    what = (f"{procs} unmap{'s' if procs > 1 else ''} of {vma}iB" if row == 5 else
            f"one unmap of {vma}iB")
    note = "" if scen else f"needs {procs + 1} CPUs: {procs} killers and the drain worker"
    v = None if row == 5 else vma
    return [Figure(f"{key}.base", row, RPI, f"{what}, base", base, scen, "base", procs + 1, v,
                   HAO_0430, note),
            Figure(f"{key}.deferred", row, RPI, f"{what}, class index + per-CPU deferred zs_free",
                   after, scen, "deferred", procs + 1, v, HAO_0430, note)]


PUBLISHED: tuple[Figure, ...] = (
    Figure("1.sync", 1, RK, "unmap 256 MiB swapped, sync", 63.102982, "rfc-unmap.yaml", "sync",
           2, source=RFC_V1),
    Figure("1.bitmap", 1, RK, "unmap 256 MiB swapped, bitmap GC", 18.570726, "rfc-unmap.yaml",
           "bitmap", 2, source=RFC_V1),
    Figure("2.sync", 2, "RK3588", "swap in 256 MiB of text pages, sync", 1358.133886,
           "rfc-swapin.yaml", "sync", 2, source=RFC_V1),
    Figure("2.bitmap", 2, "RK3588", "swap in 256 MiB of text pages, bitmap GC", 1104.315986,
           "rfc-swapin.yaml", "bitmap", 2, source=RFC_V1),
    *_class_in_handle(3, RPI, "rpi4", 1, 59.0, 56.0),
    *_class_in_handle(3, RPI, "rpi4", 2, 94.6, 66.7),
    *_class_in_handle(3, RPI, "rpi4", 4, 202.9, 110.6),
    *_class_in_handle(4, I7, "i7", 1, 11.7, 9.8),
    *_class_in_handle(4, I7, "i7", 2, 24.1, 17.2),
    *_class_in_handle(4, I7, "i7", 4, 63.0, 45.3),
    *_deferred(5, 1, "256M", 56.2, 17.2),
    *_deferred(5, 3, "256M", 153.2, 51.5),
    *_deferred(6, 1, "64M", 15.0, 4.3),
    *_deferred(6, 1, "128M", 28.7, 8.5),
    *_deferred(6, 1, "192M", 43.2, 13.0),
    *_deferred(6, 1, "256M", 57.0, 17.3),
    *_deferred(6, 1, "512M", 114.4, 38.5),
)

# figures with no time of their own: listed in the table, never run
UNRUN: tuple[Figure, ...] = (
    Figure("7.12cpu", 7, "12 CPUs", "12 CPUs in zs_free at once, class lock dropped before "
           "the zspage is freed: about 20 % less time", 0.0, cpus=12, source=RFC_V2,
           note="needs 12 CPUs; published as a share, not a time"),
)


def figure_keys() -> set[str]:
    return {f.key for f in PUBLISHED + UNRUN} | {"8.real"}


def select(rows: set[int] | None) -> list[Figure]:
    """The figures of these rows (None: every row), in the record's order."""
    return [f for f in PUBLISHED + UNRUN if rows is None or f.row in rows]
