"""The one skeleton of every command that runs the emulator (run, replay, soak).

    validate   the command checks its arguments and builds its groups (nothing created yet)
    run        run_groups: workers up, repeats interleaved, every repeat audited
    write      results.json first (so an interrupted run still leaves its figures), then the
               command's extra files (trace, plots, CSV)
    print      the command's tables, to the terminal and summary.txt, and where the files are
    exit code  0 ok, 1 the audit failed, 2 bad input, 3 aborted (emul/errors.py)
"""
from __future__ import annotations

import os
import sys
import time
from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from emul import shipped
from emul.errors import EXIT_ABORTED, EXIT_OK, AuditFailed, EmulError, InputError
from emul.harness.controller import Group, run_groups
from emul.harness.record import RepeatRecord
from emul.report import results
from emul.report.io import write_summary
from emul.report.textout import output_format

Tables = list   # of rich renderables


@dataclass
class Job:
    """What a command hands the skeleton: its groups and how to report them."""

    what: str                                           # "run", "replay", "soak": in messages
    groups: list[Group]
    outdir: Path
    build: Callable[[list[dict], str, str], dict]       # rows, status, reason -> results doc
    tables: Callable[[dict], Tables]                    # the summary tables of a document
    footer: Callable[[dict, list[Path]], str]           # the closing line: where things are
    on_repeat: Callable[[RepeatRecord], None] = lambda rec: None
    extras: Callable[[dict], list[Path]] = lambda doc: []          # files after results.json
    partial: Callable[[dict], list[Path]] = lambda doc: []         # ... when aborted
    on_ready: Callable[[], None] | None = None
    duration_s: float | None = None
    tables_when_aborted: bool = False                   # soak: an interrupted soak still counts
    rows: list[dict] = field(default_factory=list)


def execute(job: Job, console: Console) -> int:
    """Run the job's groups and report them; the command's exit code."""
    def on_repeat(rec: RepeatRecord) -> None:
        job.rows.append(rec.to_json())
        job.on_repeat(rec)

    try:
        run_groups(job.groups, on_repeat, job.on_ready, job.duration_s)
    except (EmulError, KeyboardInterrupt) as exc:
        reason = str(exc) if isinstance(exc, EmulError) else f"interrupted ({exc or 'SIGINT'})"
        doc = job.build(job.rows, "aborted", reason)
        results.write(job.outdir, doc)
        job.partial(doc)
        if job.tables_when_aborted:
            write_summary(job.outdir, job.tables(doc), console)
        if isinstance(exc, KeyboardInterrupt) or job.tables_when_aborted:
            print(f"emul: {job.what} aborted: {reason}; partial results in {job.outdir}",
                  file=sys.stderr)
            return EXIT_ABORTED
        raise
    bad = [r for r in job.rows if not r["audit"]["ok"]]
    doc = job.build(job.rows, "audit-failed" if bad else "ok", "")
    written = [results.write(job.outdir, doc), *job.extras(doc)]
    write_summary(job.outdir, job.tables(doc), console)
    console.print(job.footer(doc, written))
    if output_format(console) == "json":
        print_json(doc, job.outdir)
    if bad:
        raise AuditFailed(f"the audit failed in {len(bad)} of {len(job.rows)} repeats: "
                          + "; ".join(bad[0]["audit"]["problems"]))
    return EXIT_OK


def print_json(doc: dict, outdir: Path) -> None:
    """--format json: the run's summary on stdout, one document."""
    import json
    from emul.report.stability import stability_warnings
    print(json.dumps({"status": doc["status"], "results": str(outdir / "results.json"),
                      "scenario": doc["scenario"]["name"], "summary": doc["summary"],
                      "warnings": stability_warnings(doc)}, indent=1))


def ticks_per_ns(groups: list[Group]) -> float:
    """The run's clock factor (0 if no group got as far as measuring it)."""
    return max((g.ticks_per_ns for g in groups), default=0.0)


def audit_line(row: dict) -> str:
    if row["audit"]["ok"]:
        return "audit clean"
    return "AUDIT FAILED: " + "; ".join(row["audit"]["problems"])


# --- validation shared by the commands -------------------------------------------------------

def output_dir(arg: str | None, default: Path | str) -> Path:
    """The -o directory (or the command's default under results/), created; a clear error if
    it cannot be."""
    outdir = Path(arg) if arg else Path(default)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError("-o", None, f"cannot create the output directory {outdir}: "
                         f"{exc.strerror}") from None
    return outdir


def stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def resolve_scenario(arg: str | None, default: str) -> str:
    """The scenario given, else the default one: here, or emul's shipped copy (emul.shipped)."""
    return shipped(arg or default)


def parse_strategies(arg: str | None, known: list[str], default: list[str]) -> list[str]:
    """--strategies: a comma-separated list of registered strategies (duplicates dropped)."""
    names = default if arg is None else [x.strip() for x in arg.split(",") if x.strip()]
    if not names or any(n not in known for n in names):
        raise InputError("--strategies", None, f"expected a comma-separated list of: "
                         f"{', '.join(known)}; got {arg!r}")
    return list(dict.fromkeys(names))


def measuring(args: Namespace) -> dict:
    """Group keywords from --warmup and --no-boost (checked)."""
    if not 0 <= args.warmup <= 100:
        raise InputError("--warmup", None, f"expected a count from 0 to 100, got {args.warmup}")
    return {"warmup": args.warmup, "boost": not args.no_boost}


def check_repeats(n: int | None) -> None:
    if n is not None and n < 1:
        raise InputError("--repeats", None, f"expected a count >= 1, got {n}")


def cpus() -> set[int]:
    return os.sched_getaffinity(0)
