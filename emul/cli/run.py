"""``emul run`` (a scenario's variants, repeats interleaved) and ``emul soak`` (cycles for N
minutes, an audit after each)."""
from __future__ import annotations

import dataclasses
import sys
import time
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from emul.cli import skeleton as sk
from emul.cli.progress import Progress, quiet
from emul.config.profiles import Profile, builtin_names, load_profile, page_size_warning
from emul.config.scenario import Scenario, VariantSpec, load_scenario
from emul.config.vary import SkippedPoint, load_sweep
from emul.errors import EXIT_NOT_FIRED, InputError
from emul.harness.chaos import Chaos
from emul.harness.controller import Group
from emul.harness.plan import debug_bits
from emul.harness.record import RepeatRecord
from emul.harness.trace import TraceRecorder
from emul.report import history, results
from emul.report.results import timing_doc
from emul.report.export import write_csv
from emul.report.io import render_plots
from emul.report.tables import summary_tables, summary_warnings
from emul.report.stability import measurement_doc
from emul.strategies import strategy_names

DEFAULT_SCENARIO = "scenarios/seed-unmap.yaml"
SOAK_SCENARIO = "scenarios/contention-mixed.yaml"


def load_groups(path: str, profile: str | None, repeats: int | None,
                dilate: float | None = None, only_group: int | None = None
                ) -> tuple[list[Scenario], list[SkippedPoint]]:
    """The scenario's structural groups, checked (an unknown debug switch is refused here,
    before anything is created), and the points of a scaling sweep this machine cannot run;
    only_group K keeps the Kth group alone (1-based)."""
    sk.check_repeats(repeats)
    if dilate is not None and not 1 <= dilate <= 1000:
        raise InputError("--dilate", None, f"expected a factor from 1 to 1000, got {dilate:g}")
    groups, skipped = load_sweep(path, cpus=sk.cpus(), strategies=strategy_names(),
                                 profiles=builtin_names() + ([profile] if profile else []))
    if only_group is not None:
        if not 1 <= only_group <= len(groups):
            raise InputError("--only-group", None, f"expected a group from 1 to {len(groups)} "
                             f"(the runnable groups of {path}), got {only_group}")
        groups = [groups[only_group - 1]]
    if repeats is not None:
        groups = [dataclasses.replace(sc, repeats=repeats) for sc in groups]
    if dilate is not None:
        groups = [dataclasses.replace(sc, dilate=dilate) for sc in groups]
    for sc in groups:
        debug_bits(sc)
        if sc.base_for:
            raise InputError(path, "base_for", f"a base scenario for emul {sc.base_for} (its "
                             f"victims are placeholders the trace replaces), not a run of its "
                             f"own; use: emul {sc.base_for} TRACE --scenario {path}")
        check_measures_something(path, sc)
    return groups, skipped


def check_measures_something(path: str, sc: Scenario) -> None:
    """Refuse a scenario whose measured phase has no work: with nothing swapped out an unmap
    frees no slot and a swap-in reads none, and every ratio would compare empty phases."""
    if sc.processes and all(p.swapped == 0 for p in sc.processes):
        raise InputError(path, "processes", "every process has swapped: 0, so the measured "
                         "phase would free no slot and every figure would compare nothing; "
                         "give at least one process a swapped share above 0")


def cmd_run(args: Namespace, console: Console) -> int:
    path = sk.resolve_scenario(args.scenario, DEFAULT_SCENARIO)
    measuring = sk.measuring(args)
    scenarios, skipped = load_groups(path, args.profile, args.repeats, args.dilate,
                                     args.only_group)
    profiles = [load_profile(args.profile or sc.profile) for sc in scenarios]
    sc = scenarios[0]
    outdir = sk.run_output_dir(args.output, Path("results") / f"{sc.name}-{sk.stamp()}",
                               args.force)
    progress = Progress(console)
    announce(progress, path, scenarios, profiles, skipped)
    trace = TraceRecorder()
    groups = [Group(g, p, progress, log_path=str(outdir / "run.log"), trace=trace, trace_pid=k,
                    on_phase=progress.phase, **measuring)
              for k, (g, p) in enumerate(zip(scenarios, profiles), start=1)]
    progress.expect(sum(len(g.variants) * g.repeats for g in scenarios))
    chaos = Chaos(args.chaos, args.chaos_kind) if args.chaos is not None else None
    if chaos is not None:
        progress(f"chaos: seed {args.chaos}: {chaos.kind} after {chaos.delay_s:.2f} s")

    def on_repeat(rec: RepeatRecord) -> None:
        progress(f"  {rec.variant}: {rec.experiment} {rec.time_ns / 1e6:.2f} ms, "
                 f"{rec.ns_per_page:.0f} ns/page, {sk.audit_line(rec.to_json())}")
        progress.repeat_done()

    def build(rows: list[dict], status: str, reason: str) -> dict:
        progress.stop()
        if chaos is not None:
            chaos.disarm()
        doc = results.build(scenarios, profiles, sk.ticks_per_ns(groups), rows, status, reason,
                            skipped)
        doc["control"] = {"dropped_messages": sum(g.dropped_messages for g in groups)}
        doc.update(timing_doc(groups))
        doc.update(measurement_doc(groups, rows))
        if chaos is not None:
            doc["chaos"] = chaos.fired or {"seed": chaos.seed, "kind": chaos.kind,
                                           "fired": False}
        return doc

    def extras(doc: dict) -> list[Path]:
        history.record(doc)       # this host's A/A history, for emul compare's floor
        files = [trace.write(outdir / "trace.json"), *render_plots(doc, outdir)]
        return files + (write_csv(outdir, doc) if args.csv else [])

    job = sk.Job("run", groups, outdir, build, summary_tables, footer=run_footer(outdir),
                 warnings=summary_warnings, on_repeat=on_repeat, extras=extras,
                 partial=lambda doc: [trace.write(outdir / "trace.json")],
                 on_ready=(lambda: chaos.arm(groups)) if chaos else None)
    code = sk.execute(job, console)
    if chaos is not None and not chaos.fired:
        print(f"emul: --chaos {args.chaos}: the fault ({chaos.kind}, due after "
              f"{chaos.delay_s:.2f} s) never fired: the run ended first, so nothing was tested",
              file=sys.stderr)
        return EXIT_NOT_FIRED
    return code


def announce(progress: Progress, path: str, scenarios: list[Scenario], profiles: list[Profile],
             skipped: list[SkippedPoint]) -> None:
    """The run's first lines: page-size warnings, what runs, and the points that do not."""
    for warning in dict.fromkeys(page_size_warning(p, g.page_size)
                                 for g, p in zip(scenarios, profiles)):
        if warning:
            progress(f"warning: {warning}")
    sc = scenarios[0]
    variants = [v.name for g in scenarios for v in g.variants]
    progress(f"scenario {path} ({sc.name}), profile "
             f"{', '.join(dict.fromkeys(p.name for p in profiles))}, {sc.repeats} repeats, "
             f"{len(variants)} variants: {', '.join(variants)}")
    for point in skipped:
        progress(f"not run: {point.group}: {point.reason}")


def run_footer(outdir: Path) -> Callable[[dict, list[Path]], str]:
    def footer(doc: dict, written: list[Path]) -> str:
        pngs = [p.name for p in written if p.suffix == ".png"]
        csv = any(p.suffix == ".csv" for p in written)
        return (f"results: {outdir / 'results.json'}; trace: {outdir / 'trace.json'} "
                f"(ui.perfetto.dev); plots: {', '.join(pngs)}" + ("; CSV files" if csv else ""))
    return footer




def cmd_soak(args: Namespace, console: Console) -> int:
    """Cycle a scenario's actors with every strategy for N minutes, auditing every cycle."""
    if not (0 < args.minutes <= 7 * 24 * 60):
        raise InputError("--minutes", None,
                         f"expected minutes > 0 (at most a week), got {args.minutes}")
    names = sk.parse_strategies(args.strategies, strategy_names(), strategy_names())
    measuring = sk.measuring(args)
    path = sk.resolve_scenario(args.scenario, SOAK_SCENARIO)
    sc = load_scenario(path, cpus=sk.cpus(), strategies=strategy_names(),
                       profiles=builtin_names() + ([args.profile] if args.profile else []))
    sc = dataclasses.replace(sc, repeats=10**6, variants=tuple(
        VariantSpec(name=n, strategy=n, cap_slots=None, cap_bytes=None) for n in names))
    debug_bits(sc)
    profile = load_profile(args.profile or sc.profile)
    outdir = sk.run_output_dir(args.output, Path("results") / f"soak-{sc.name}-{sk.stamp()}",
                           args.force)
    progress = Progress(console)
    warning = page_size_warning(profile, sc.page_size)
    if warning:
        progress(f"warning: {warning}")
    progress(f"soak: {path} for {args.minutes:g} min, strategies {', '.join(names)}, "
             f"profile {profile.name}; an audit after every cycle")
    group = Group(sc, profile, quiet, log_path=str(outdir / "run.log"), **measuring)
    soak = Soak(progress, names)
    job = sk.Job("soak", [group], outdir, soak.build(sc, profile, group, args.minutes),
                 soak.tables(sc, args.minutes),
                 footer=lambda doc, written: f"results: {outdir / 'results.json'}",
                 on_repeat=soak.on_repeat, on_ready=soak.ready, duration_s=args.minutes * 60,
                 tables_when_aborted=True)
    return sk.execute(job, console)


class Soak:
    """emul soak's progress lines and its one table."""

    def __init__(self, progress: Progress, names: list[str]) -> None:
        self.progress, self.names = progress, names
        self.rows: list[dict] = []
        self.t0 = time.monotonic()

    def ready(self) -> None:
        self.t0 = time.monotonic()     # the soak's minutes count from when the workers are up

    def on_repeat(self, rec: RepeatRecord) -> None:
        row = rec.to_json()
        self.rows.append(row)
        if not rec.audit_ok:
            self.progress(f"  AUDIT FAILED: {rec.variant} cycle {rec.repeat}: "
                          + "; ".join(rec.audit["problems"]))
        if rec.variant == self.names[-1] or len(self.rows) % len(self.names) == 0:
            clean = sum(r["audit"]["ok"] for r in self.rows)
            self.progress(f"  {(time.monotonic() - self.t0) / 60:5.1f} min: {len(self.rows)} "
                          f"cycles, {clean} audits clean, {slots_moved(self.rows):,} slots moved")

    def build(self, sc: Scenario, profile: Profile, group: Group,
              minutes: float) -> Callable[[list[dict], str, str], dict]:
        def build(rows: list[dict], status: str, reason: str) -> dict:
            done = dataclasses.replace(sc, repeats=max([r["repeat"] for r in rows] or [0]))
            doc = results.build(done, profile, group.ticks_per_ns, rows, status, reason)
            bad = sum(not r["audit"]["ok"] for r in rows)
            doc["soak"] = {"minutes": minutes, "cycles": len(rows),
                           "slots_moved": slots_moved(rows), "audits_clean": len(rows) - bad,
                           "audits_failed": bad,
                           "failed_writes": sum(r["zram_stats"]["failed_writes"] for r in rows)}
            return doc
        return build

    def tables(self, sc: Scenario, minutes: float) -> Callable[[dict], list]:
        def tables(doc: dict) -> list:
            from rich.table import Table
            rows = doc["repeats"]
            t = Table(title=f"soak: {sc.name}, {minutes:g} min, {doc['machine']['arch']}")
            for col in ("strategy", "cycles", "audits clean", "slots moved",
                        "reused while queued"):
                t.add_column(col, justify="left" if col == "strategy" else "right")
            for name, rs in [*((n, [r for r in rows if r["variant"] == n]) for n in self.names),
                             ("all", rows)]:
                t.add_row(name, f"{len(rs):,}", f"{sum(r['audit']['ok'] for r in rs):,}",
                          f"{slots_moved(rs):,}", f"{sum(r['reused_queued'] for r in rs):,}")
            return [t]
        return tables


def slots_moved(rows: list[dict]) -> int:
    """Slots freed (lazily or in place) and written (swap-out, reclaim) over the given cycles."""
    return sum(r["lazy"] + r["in_place"] + r["reclaimed"]
               + r["zram_stats_before"]["pages_stored"] for r in rows)
