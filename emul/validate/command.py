"""``emul validate``: every published figure emul can re-run on this machine, side by side.

    record.py    the figures, their sources, the scenario and variant each is compared with
    runs.py      one scenario run as ``emul run`` runs it, at the dilation its paths need
    outcome.py   a figure's outcome: emul / published, in- or out-of-sample, the mechanism
    report.py    the table, results.json, validate.png

It is a report, not a test: it exits 0 whatever the figures say; a figure whose run failed is
shown as an error, one that needs more CPUs than this machine has as skipped, with the reason.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from emul import shipped
from emul.errors import EXIT_OK, EmulError, InputError
from emul.validate import report
from emul.validate.outcome import Outcome, from_run, not_run
from emul.validate.record import SCENARIOS, UNRUN, Figure, select
from emul.validate.runs import run_scenario, scenarios_of

if TYPE_CHECKING:
    from rich.console import Console

QUICK_REPEATS = 3


def parse_rows(text: str | None) -> set[int] | None:
    if not text:
        return None
    try:
        rows = {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        raise InputError("--rows", None, f"expected row numbers like 1,3,6, got {text!r}") from None
    known = {f.row for f in select(None)}
    if not rows or not rows <= known:
        raise InputError("--rows", None, f"expected rows among {sorted(known)}, got {text!r}")
    return rows


def check_args(args: argparse.Namespace) -> tuple[set[int] | None, float]:
    """--rows and --scale, checked before anything is created."""
    scale = float(args.scale)
    if not 0 < scale <= 1:
        raise InputError("--scale", None, f"expected a fraction of the size, 0 < F <= 1, got "
                         f"{args.scale}")
    return parse_rows(args.rows), scale


def cases(figures: list[Figure]) -> dict[tuple[str, str | None], list[Figure]]:
    """The figures grouped by the run that gives them (scenario, VMA), in the record's order."""
    out: dict[tuple[str, str | None], list[Figure]] = {}
    for f in figures:
        out.setdefault((f.scenario, f.vma), []).append(f)
    return out


def run_case(scenario: str, vma: str | None, figures: list[Figure], repeats: int | None,
             scale: float, outdir: Path, progress: Callable[[str], None]) -> list[Outcome]:
    cpus = len(os.sched_getaffinity(0))
    runnable = [f for f in figures if not f.note and f.scenario and f.cpus <= cpus]
    out = [not_run(x, "skipped", x.note or f"needs {x.cpus} CPUs (this machine has {cpus})")
           for x in figures if x not in runnable]
    if not runnable:
        return out
    path = shipped(f"{SCENARIOS}/{scenario}")
    progress(f"{', '.join(x.key for x in runnable)}: {path}" + (f" with {vma}iB" if vma else ""))
    try:
        groups, skipped = scenarios_of(path, vma, repeats, scale)
        doc = run_scenario(groups, progress, skipped)
    except EmulError as exc:
        return out + [not_run(x, "error", str(exc)) for x in runnable]
    name = Path(scenario).stem + (f"-{vma}" if vma else "")
    from emul.report import results
    results.write(outdir / "runs" / name, doc)
    return out + [from_run(x, doc, scale) for x in runnable]


def run_validate(args: argparse.Namespace, console: "Console", outdir: Path,
                 progress: Callable[[str], None],
                 real: Callable[[], list[Outcome]] | None = None) -> int:
    rows, scale = check_args(args)
    figures = select(rows)
    repeats = QUICK_REPEATS if args.quick else None
    outcomes: list[Outcome] = []
    status = "aborted"
    try:
        for (scenario, vma), group in cases([f for f in figures if f not in UNRUN]).items():
            outcomes += run_case(scenario, vma, group, repeats, scale, outdir, progress)
        outcomes += [not_run(f, "skipped", f.note) for f in figures if f in UNRUN]
        if real is not None:
            outcomes += real()
        status = "ok"
    finally:
        order = {f.key: k for k, f in enumerate(figures)}
        outcomes.sort(key=lambda o: order.get(o.key, len(order)))
        report.write(outdir, outcomes, status, args.quick)
    written = [outdir / "results.json", report.plot(outdir, outcomes)]
    console.print(report.table(outcomes))
    console.print(report.headline(outcomes), highlight=False)
    console.print("results: " + ", ".join(str(p) for p in written if p), highlight=False,
                  markup=False)
    return EXIT_OK
