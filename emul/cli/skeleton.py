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
import time
from argparse import Namespace
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from emul import shipped
from emul.cli import outdir as outdirs
from emul.cli.stdout import say
from emul.errors import EXIT_ABORTED, EXIT_OK, AuditFailed, EmulError, InputError, OutputFailed
from emul.harness.controller import Group, run_groups
from emul.harness.record import RepeatRecord
from emul.harness.signals import INTERRUPTS
from emul.report import results
from emul.report.io import show_tables, write_summary_file
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
    warnings: Callable[[dict], Sequence[str | None]] = lambda doc: []   # after the tables
    on_repeat: Callable[[RepeatRecord], None] = lambda rec: None
    extras: Callable[[dict], list[Path]] = lambda doc: []          # files after results.json
    partial: Callable[[dict], list[Path]] = lambda doc: []         # ... when aborted
    on_ready: Callable[[], None] | None = None
    duration_s: float | None = None
    tables_when_aborted: bool = False                   # soak: an interrupted soak still counts
    rows: list[dict] = field(default_factory=list)


def execute(job: Job, console: Console) -> int:
    """Run the job's groups and report them; the command's exit code. SIGINT, SIGTERM and
    SIGHUP stop the run once; from then on, and while the files are written, further signals
    are noted and the writing finishes (emul/harness/signals.py)."""
    with INTERRUPTS.catching():
        code = _execute(job, console)
        late = INTERRUPTS.settle()          # a stopped run has said so already
    if late and code != EXIT_ABORTED:
        say(f"emul: {late[0]} arrived while the results were being written; they were "
            f"finished first ({job.outdir})")
    return code


def _execute(job: Job, console: Console) -> int:
    def on_repeat(rec: RepeatRecord) -> None:
        job.rows.append(rec.to_json())
        job.on_repeat(rec)

    try:
        run_groups(job.groups, on_repeat, job.on_ready, job.duration_s)
    except (EmulError, KeyboardInterrupt) as exc:
        INTERRUPTS.hold()
        return _aborted(job, console, exc)
    INTERRUPTS.hold()
    bad = [r for r in job.rows if not r["audit"]["ok"]]
    doc = job.build(job.rows, "audit-failed" if bad else "ok", "")
    tables, warnings = job.tables(doc), tuple(w for w in job.warnings(doc) if w)
    show_tables(tables, console, warnings)       # the figures first: a full disk keeps them
    written = writing(job, lambda: [results.write(job.outdir, doc), *job.extras(doc),
                                    write_summary_file(job.outdir, tables, warnings)])
    console.print(job.footer(doc, written), markup=False, highlight=False)
    if output_format(console) == "json":
        print_json(doc, job.outdir)
    if bad:
        raise AuditFailed(f"the audit failed in {len(bad)} of {len(job.rows)} repeats: "
                          + "; ".join(bad[0]["audit"]["problems"]))
    return EXIT_OK


def _aborted(job: Job, console: Console, exc: BaseException) -> int:
    """An interrupted or failed run: its partial results written, marked aborted."""
    reason = str(exc) if isinstance(exc, EmulError) else f"interrupted ({exc or 'SIGINT'})"
    doc = job.build(job.rows, "aborted", reason)
    tables = job.tables(doc) if job.tables_when_aborted else []
    show_tables(tables, console)

    def files() -> list[Path]:
        out = [results.write(job.outdir, doc), *job.partial(doc)]
        return out + ([write_summary_file(job.outdir, tables)] if tables else [])
    writing(job, files, f"{job.what} aborted: {reason}; ", shown=bool(tables))
    if isinstance(exc, KeyboardInterrupt) or job.tables_when_aborted:
        say(f"emul: {job.what} aborted: {reason}; partial results in {job.outdir}")
        return EXIT_ABORTED
    raise exc


def writing(job: Job, write: Callable[[], list[Path]], before: str = "",
            shown: bool = True) -> list[Path]:
    """Run the writes; a refusal by the system (a full disk, a read-only directory) is one
    OutputFailed naming the file, with the temporary files of the failed write removed
    (emul/atomic.py) and, when the tables were printed, those said to be the figures."""
    try:
        return write()
    except OSError as exc:
        what = exc.filename or job.outdir
        figures = "the figures printed above are the run's; " if shown else ""
        raise OutputFailed(f"{before}cannot write {what}: {exc.strerror or exc}; {figures}"
                           f"nothing half-written was left") from None


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
    """A directory a command re-writes its own files in (emul report, validate), created and
    locked against a run writing there at the same time."""
    return outdirs.claim(arg, Path(default), keep=True)


def run_output_dir(arg: str | None, default: Path | str, force: bool = False) -> Path:
    """A run's -o directory (or a fresh one under the command's default), created and held
    for this run alone: an earlier run's outputs there are refused without --force
    (emul/cli/outdir.py)."""
    return outdirs.claim(arg, Path(default), force=force)


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


MAX_REPEATS = 1000       # as a scenario's repeats (emul/config/fields.py)


def check_repeats(n: int | None) -> None:
    if n is not None and not 1 <= n <= MAX_REPEATS:
        raise InputError("--repeats", None, f"expected a count from 1 to {MAX_REPEATS}, got {n}")


def cpus() -> set[int]:
    return os.sched_getaffinity(0)
