"""The ``emul`` command line: one function per subcommand, printing in one place."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from emul import PACKAGE_ROOT, prune_numba_caches
from emul.errors import EXIT_ABORTED, EXIT_OK, AuditFailed, EmulError, InputError

DEFAULT_SCENARIO = "scenarios/seed-unmap.yaml"
SOAK_SCENARIO = "scenarios/contention-mixed.yaml"


def _repo_root() -> Path:
    return PACKAGE_ROOT


def _resolve_scenario(arg: str | None) -> str:
    if arg:
        return arg
    here = Path(DEFAULT_SCENARIO)
    return str(here if here.exists() else _repo_root() / DEFAULT_SCENARIO)


class Progress:
    """Progress: on a terminal, a live status line (phase, variant, repeat, elapsed, ETA) under
    the log lines; otherwise (CI, a pipe) plain timestamped lines only."""

    def __init__(self, console) -> None:
        self.console = console
        self.t0 = time.monotonic()
        self.tty = console.is_terminal
        self.total = 0          # repeats the run will make (for the ETA), 0: unknown
        self.done = 0
        self.status = None
        self.phase_text = ""

    def __call__(self, text: str) -> None:
        elapsed = time.monotonic() - self.t0
        if self.tty:
            self.console.print(f"[dim]{elapsed:7.1f}s[/dim] {text}")
        else:
            print(f"[{elapsed:7.1f}s] {text}", flush=True)

    def expect(self, total: int) -> None:
        self.total = total
        if self.tty and self.status is None:
            self.status = self.console.status("starting")
            self.status.start()

    def repeat_done(self) -> None:
        self.done += 1
        self.phase(self.phase_text)

    def phase(self, text: str) -> None:
        """The controller entered a phase ("bitmap #3: unmap"): refresh the live line."""
        self.phase_text = text
        if self.status is None:
            return
        elapsed = time.monotonic() - self.t0
        eta = ""
        if self.total and self.done:
            left = (elapsed / self.done) * (self.total - self.done)
            eta = f", ETA {left:.0f} s"
        self.status.update(f"{text} — repeat {min(self.done + 1, self.total)}/{self.total}, "
                           f"{elapsed:.0f} s elapsed{eta}")

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


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


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def cmd_run(args, console) -> int:
    import dataclasses

    from emul.report import results
    from emul.harness.controller import Controller, debug_bits, run_groups
    from emul.config.profiles import builtin_names, load_profile
    from emul.config.scenario import load_matrix
    from emul.strategies import strategy_names

    path = _resolve_scenario(args.scenario)
    groups = load_matrix(path, cpus=os.sched_getaffinity(0), strategies=strategy_names(),
                         profiles=builtin_names() + ([args.profile] if args.profile else []))
    if args.repeats is not None:
        if args.repeats < 1:
            raise InputError("--repeats", None, f"expected a count >= 1, got {args.repeats}")
        groups = [dataclasses.replace(sc, repeats=args.repeats) for sc in groups]
    profiles = [load_profile(args.profile or sc.profile) for sc in groups]
    for sc in groups:
        debug_bits(sc)   # an unknown switch is refused before anything is created
    sc = groups[0]
    outdir = output_dir(args.output, Path("results") / f"{sc.name}-{_stamp()}")
    log = outdir / "run.log"
    progress = Progress(console)
    variants = [v for g in groups for v in g.variants]
    progress(f"scenario {path} ({sc.name}), profile "
             f"{', '.join(dict.fromkeys(p.name for p in profiles))}, {sc.repeats} repeats, "
             f"{len(variants)} variants: {', '.join(v.name for v in variants)}")
    ctls = [Controller(g, p, progress, log_path=str(log)) for g, p in zip(groups, profiles)]
    from emul.harness.trace import TraceRecorder
    trace = TraceRecorder()
    for pid, c in enumerate(ctls, start=1):
        c.trace, c.trace_pid = trace, pid
        c.on_phase = progress.phase
    progress.expect(sum(len(g.variants) * g.repeats for g in groups))
    rows: list[dict] = []

    def on_repeat(row):
        rows.append(row)
        a = "audit clean" if row["audit"]["ok"] else "AUDIT FAILED: " + "; ".join(
            row["audit"]["problems"])
        progress(f"  {row['variant']}: {row['experiment']} {row['time_ns'] / 1e6:.2f} ms, "
                 f"{row['ns_per_page']:.0f} ns/page, {a}")
        progress.repeat_done()

    def ticks() -> float:
        return max((getattr(c, "ticks_per_ns", 0.0) for c in ctls), default=0.0)

    chaos = None
    if args.chaos is not None:
        from emul.harness.chaos import Chaos
        chaos = Chaos(args.chaos, args.chaos_kind)
        progress(f"chaos: seed {args.chaos}: {chaos.kind} after {chaos.delay_s:.2f} s")

    def extras(doc: dict) -> dict:
        doc["control"] = {"dropped_messages": sum(c.dropped_messages for c in ctls)}
        if chaos is not None:
            doc["chaos"] = chaos.fired or {"seed": chaos.seed, "kind": chaos.kind,
                                           "fired": False}
        return doc

    try:
        try:
            run_groups(ctls, on_repeat, (lambda: chaos.arm(ctls)) if chaos else None)
        finally:
            progress.stop()
    except (EmulError, KeyboardInterrupt) as exc:
        if chaos is not None:
            chaos.disarm()
        reason = str(exc) if isinstance(exc, EmulError) else f"interrupted ({exc or 'SIGINT'})"
        doc = extras(results.build(groups, profiles, ticks(), rows, "aborted", reason))
        results.write(outdir, doc)
        trace.write(outdir / "trace.json")
        if isinstance(exc, KeyboardInterrupt):
            print(f"emul: run aborted: {reason}; partial results in {outdir}", file=sys.stderr)
            return EXIT_ABORTED
        raise
    if chaos is not None:
        chaos.disarm()
    bad = [r for r in rows if not r["audit"]["ok"]]
    doc = extras(results.build(groups, profiles, ticks(), rows, "audit-failed" if bad else "ok"))
    path_json = results.write(outdir, doc)
    trace.write(outdir / "trace.json")
    from emul.report.plots import render_all
    pngs = render_all(doc, outdir)
    if args.csv:
        from emul.report.export import write_csv
        write_csv(outdir, doc)
    from emul.report.io import summary_tables, write_summary
    write_summary(outdir, summary_tables(doc), console)
    from emul.config.topology import oversubscription_warning
    warning = oversubscription_warning(doc)
    if warning:
        console.print(f"[yellow]warning:[/yellow] {warning}")
        with open(outdir / "summary.txt", "a") as f:
            f.write(f"warning: {warning}\n")
    console.print(f"results: {path_json}; trace: {outdir / 'trace.json'} (ui.perfetto.dev); "
                  f"plots: {', '.join(p.name for p in pngs)}"
                  + ("; CSV files" if args.csv else ""))
    if bad:
        raise AuditFailed(f"the audit failed in {len(bad)} of {len(rows)} repeats: "
                          + "; ".join(bad[0]["audit"]["problems"]))
    return EXIT_OK


def cmd_replay(args, console) -> int:
    from emul.replay import plan as rp
    from emul.report import results
    from emul.harness.controller import Controller, ReplayPlan, debug_bits, run_groups
    from emul.config.profiles import builtin_names, load_profile
    from emul.config.scenario import _read_yaml, load_scenario, scenario_from_dict
    from emul.strategies import strategy_names
    from emul.replay.traces import read_trace

    if args.time_scale is not None and not (0 < args.time_scale <= 1000):
        raise InputError("--time-scale", None, f"expected a factor > 0 and <= 1000, got {args.time_scale}")
    if not (0 < args.size_scale <= 10):
        raise InputError("--size-scale", None, f"expected a factor > 0 and <= 10, got {args.size_scale}")
    if args.repeats is not None and args.repeats < 1:
        raise InputError("--repeats", None, f"expected a count >= 1, got {args.repeats}")
    strategies = [x.strip() for x in args.strategies.split(",") if x.strip()]
    unknown = [x for x in strategies if x not in strategy_names()]
    if not strategies or unknown:
        raise InputError("--strategies", None, f"expected a comma-separated list of: "
                         f"{', '.join(strategy_names())}; got {args.strategies!r}")
    trace = read_trace(args.trace, oom_swap_ratio=args.oom_swap_ratio)
    base_path = args.scenario or _resolve_scenario(rp.DEFAULT_BASE)
    profiles = builtin_names() + ([args.profile] if args.profile else [])
    cpus = os.sched_getaffinity(0)
    base = load_scenario(base_path, cpus=cpus, strategies=strategy_names(), profiles=profiles)
    raw = _read_yaml(base_path, base_path)
    doc = rp.build_scenario_doc(raw, trace.kills, list(dict.fromkeys(strategies)),
                                base.page_size, args.size_scale)
    rp.check_fits(doc, base.zram.disksize, base.page_size,
                  base.workers.reclaim.vma if base.workers.reclaim else 0, base_path)
    if args.repeats is not None:
        doc["repeats"] = args.repeats
    sc = scenario_from_dict(doc, where=f"{base_path} (with the victims of {args.trace})",
                            cpus=cpus, strategies=strategy_names(), profiles=profiles)
    debug_bits(sc)
    profile = load_profile(args.profile or sc.profile)
    time_scale = None if args.back_to_back else (args.time_scale or 1.0)
    plan = ReplayPlan(due_ms=rp.due_times(trace.kills, time_scale),
                      names=tuple(p.name for p in sc.processes[:len(trace.kills)]))
    outdir = output_dir(args.output,
                        Path("results") / f"replay-{Path(args.trace).stem}-{_stamp()}")
    progress = Progress(console)
    rss = sum(k.rss_kb for k in trace.kills) * args.size_scale / 1024
    swap = sum(k.swap_kb for k in trace.kills) * args.size_scale / 1024
    span = max(k.t_ms for k in trace.kills)
    progress(f"trace {args.trace} ({trace.format}): {len(trace.kills)} kills over {span:.0f} ms, "
             f"{rss:.0f} MB rss + {swap:.0f} MB swap, {trace.skipped} other lines skipped; "
             + ("back to back" if time_scale is None else f"time scale {time_scale:g}")
             + f"; {sc.repeats} repeats of {', '.join(strategies)}; profile {profile.name}")
    ctl = Controller(sc, profile, progress, log_path=str(outdir / "run.log"), replay=plan)
    rows: list[dict] = []
    options = {"strategies": strategies, "time_scale": time_scale, "size_scale": args.size_scale,
               "target_mb": args.target_mb, "oom_swap_ratio": args.oom_swap_ratio,
               "base_scenario": base_path}

    def on_repeat(row):
        rows.append(row)
        kills = row["replay"]["kills"]
        freed = [k["swap_freed_ms"] for k in kills if k["swap_freed_ms"] is not None]
        a = "audit clean" if row["audit"]["ok"] else "AUDIT FAILED: " + "; ".join(
            row["audit"]["problems"])
        progress(f"  {row['variant']}: {len(kills)} kills, kill→swap freed max "
                 f"{max(freed) if freed else 0:.1f} ms, {a}")

    def finish(status: str, reason: str = "") -> dict:
        doc = results.build(sc, profile, getattr(ctl, "ticks_per_ns", 0.0), rows, status, reason)
        doc.update(rp.replay_doc_extra(trace, options,
                                       rp.summarize_replay(rows, strategies, args.target_mb)))
        results.write(outdir, doc)
        return doc

    try:
        run_groups([ctl], on_repeat)
    except (EmulError, KeyboardInterrupt) as exc:
        reason = str(exc) if isinstance(exc, EmulError) else f"interrupted ({exc or 'SIGINT'})"
        finish("aborted", reason)
        if isinstance(exc, KeyboardInterrupt):
            print(f"emul: replay aborted: {reason}; partial results in {outdir}", file=sys.stderr)
            return EXIT_ABORTED
        raise
    bad = [r for r in rows if not r["audit"]["ok"]]
    doc = finish("audit-failed" if bad else "ok")
    png = rp.plot_replay(doc, outdir / "replay.png")
    tables = [rp.replay_table(doc["replay_summary"],
                              f"replay of {args.trace} — {len(trace.kills)} kills, profile "
                              f"{profile.name}, {doc['machine']['arch']}"),
              results.worker_table(doc), results.lock_table(doc)]
    from rich.console import Console
    with open(outdir / "summary.txt", "w") as f:
        file_console = Console(file=f, width=220)
        for tbl in tables:
            console.print(tbl)
            file_console.print(tbl)
    console.print(f"results: {outdir / 'results.json'}  plot: {png}")
    if bad:
        raise AuditFailed(f"the audit failed in {len(bad)} of {len(rows)} repeats: "
                          + "; ".join(bad[0]["audit"]["problems"]))
    return EXIT_OK


def cmd_soak(args, console) -> int:
    """Cycle a scenario's actors with every strategy for N minutes, auditing every cycle."""
    import dataclasses

    from emul.report import results
    from emul.harness.controller import Controller, debug_bits, run_groups
    from emul.config.profiles import builtin_names, load_profile
    from emul.config.scenario import VariantSpec, load_scenario
    from emul.strategies import strategy_names

    if not (0 < args.minutes <= 7 * 24 * 60):
        raise InputError("--minutes", None, f"expected minutes > 0 (at most a week), got {args.minutes}")
    names = [x.strip() for x in (args.strategies or ",".join(strategy_names())).split(",") if x.strip()]
    if not names or any(n not in strategy_names() for n in names):
        raise InputError("--strategies", None, f"expected a comma-separated list of: "
                         f"{', '.join(strategy_names())}; got {args.strategies!r}")
    path = args.scenario or _resolve_scenario(SOAK_SCENARIO)
    sc = load_scenario(path, cpus=os.sched_getaffinity(0), strategies=strategy_names(),
                       profiles=builtin_names() + ([args.profile] if args.profile else []))
    sc = dataclasses.replace(sc, repeats=10**6, variants=tuple(
        VariantSpec(name=n, strategy=n, cap_slots=None, cap_bytes=None) for n in names))
    debug_bits(sc)
    profile = load_profile(args.profile or sc.profile)
    outdir = output_dir(args.output, Path("results") / f"soak-{sc.name}-{_stamp()}")
    progress = Progress(console)
    progress(f"soak: {path} for {args.minutes:g} min, strategies {', '.join(names)}, "
             f"profile {profile.name}; an audit after every cycle")
    ctl = Controller(sc, profile, lambda text: None, log_path=str(outdir / "run.log"))
    rows: list[dict] = []
    t0 = time.monotonic()

    def ready() -> None:
        nonlocal t0
        t0 = time.monotonic()     # the soak's minutes count from when the workers are up

    def on_repeat(row):
        rows.append(row)
        if not row["audit"]["ok"]:
            progress(f"  AUDIT FAILED: {row['variant']} cycle {row['repeat'] + 1}: "
                     + "; ".join(row["audit"]["problems"]))
        if row["variant"] == names[-1] or len(rows) % len(names) == 0:
            clean = sum(r["audit"]["ok"] for r in rows)
            progress(f"  {(time.monotonic() - t0) / 60:5.1f} min: {len(rows)} cycles, "
                     f"{clean} audits clean, {_slots_moved(rows):,} slots moved")

    status, reason = "ok", ""
    try:
        run_groups([ctl], on_repeat, ready, duration_s=args.minutes * 60)
    except (EmulError, KeyboardInterrupt) as exc:
        status = "aborted"
        reason = str(exc) if isinstance(exc, EmulError) else f"interrupted ({exc or 'SIGINT'})"
    bad = [r for r in rows if not r["audit"]["ok"]]
    if status == "ok" and bad:
        status = "audit-failed"
    sc_done = dataclasses.replace(sc, repeats=max([r["repeat"] + 1 for r in rows] or [0]))
    doc = results.build(sc_done, profile, getattr(ctl, "ticks_per_ns", 0.0), rows, status, reason)
    doc["soak"] = {"minutes": args.minutes, "cycles": len(rows), "slots_moved": _slots_moved(rows),
                   "audits_clean": len(rows) - len(bad), "audits_failed": len(bad),
                   "failed_writes": sum(r["zram_stats"]["failed_writes"] for r in rows)}
    results.write(outdir, doc)
    from rich.table import Table
    t = Table(title=f"soak: {sc.name}, {args.minutes:g} min, {doc['machine']['arch']}")
    for col in ("strategy", "cycles", "audits clean", "slots moved", "reused while queued"):
        t.add_column(col, justify="left" if col == "strategy" else "right")
    for n in names:
        rs = [r for r in rows if r["variant"] == n]
        t.add_row(n, f"{len(rs):,}", f"{sum(r['audit']['ok'] for r in rs):,}",
                  f"{_slots_moved(rs):,}", f"{sum(r['reused_queued'] for r in rs):,}")
    t.add_row("all", f"{len(rows):,}", f"{len(rows) - len(bad):,}", f"{_slots_moved(rows):,}",
              f"{sum(r['reused_queued'] for r in rows):,}")
    console.print(t)
    with open(outdir / "summary.txt", "w") as f:
        from rich.console import Console
        Console(file=f, width=160).print(t)
    console.print(f"results: {outdir / 'results.json'}")
    if status == "aborted":
        print(f"emul: soak aborted: {reason}; partial results in {outdir}", file=sys.stderr)
        return EXIT_ABORTED
    if bad:
        raise AuditFailed(f"the audit failed in {len(bad)} of {len(rows)} cycles: "
                          + "; ".join(bad[0]["audit"]["problems"]))
    return EXIT_OK


def _slots_moved(rows: list[dict]) -> int:
    """Slots freed (lazily or in place) and written (swap-out, reclaim) over the given cycles."""
    return sum(r["lazy"] + r["in_place"] + r["reclaimed"]
               + r["zram_stats_before"]["pages_stored"] for r in rows)


def cmd_strategies(args, console) -> int:
    from emul.strategies import STRATEGY_MODULES
    for name, mod in STRATEGY_MODULES.items():
        cap = (f"cap {mod.DEFAULT_CAP_SLOTS} slots" if mod.DEFAULT_CAP_SLOTS
               else "no cap" if mod.NEEDS_GC else "")
        console.print(f"{name:16} {cap:17} {mod.SUMMARY}")
    return EXIT_OK


def cmd_profiles(args, console) -> int:
    from emul.config.profiles import builtin_names, load_profile
    for name in builtin_names():
        p = load_profile(name)
        console.print(f"{name:16} {p.description}")
    return EXIT_OK


def cmd_topo(args, console) -> int:
    import json

    from emul.config.topology import TopologyError, describe, read_topology
    try:
        topo = read_topology(args.sysfs_root)
    except TopologyError as exc:
        raise InputError("--sysfs-root", None, str(exc)) from None
    # this process's affinity means nothing for a recorded tree: there every online CPU counts
    allowed = os.sched_getaffinity(0) if args.sysfs_root == "/sys" else set(topo.online)
    if args.json:
        print(json.dumps(topo.to_dict(sorted(allowed & set(topo.online))), indent=1))
        return EXIT_OK
    lines, columns, rows = describe(topo, allowed)
    if console.is_terminal:
        from rich.table import Table
        for line in lines:
            console.print(line, markup=False, highlight=False)
        t = Table()
        for col in columns:
            t.add_column(col, no_wrap=True)
        for row in rows:
            t.add_row(*row)
        console.print(t)
    else:   # plain columns for pipes and logs
        print("\n".join(lines))
        widths = [max(len(r[i]) for r in [columns, *rows]) for i in range(len(columns))]
        for r in [columns, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return EXIT_OK


def cmd_bench(args, console) -> int:
    from emul.bench import run_bench
    return run_bench(console, quick=args.quick, output=args.output)


def cmd_compare(args, console) -> int:
    from emul.report.compare import load_runs, print_comparison
    print_comparison(load_runs(args.runs), console)
    return EXIT_OK


def cmd_report(args, console) -> int:
    """summary.txt (and plots, and with --csv the CSV files) again, from results.json alone."""
    from emul.report.io import (load_results, render_plots, results_path, summary_tables,
        write_summary)
    doc = load_results(args.run)
    outdir = output_dir(args.output, results_path(args.run).parent)
    if doc.get("status", "ok") != "ok":
        console.print(f"run status: {doc['status']}" + (f" ({doc['reason']})" if doc.get("reason")
                                                        else ""), markup=False)
    written = [write_summary(outdir, summary_tables(doc), console), *render_plots(doc, outdir)]
    if args.csv:
        from emul.report.export import write_csv
        written += write_csv(outdir, doc)
    console.print("wrote: " + ", ".join(str(p) for p in written), markup=False)
    return EXIT_OK


def cmd_calibrate(args, console) -> int:
    from emul.calibrate.command import run_calibrate
    return run_calibrate(args, console, Progress(console))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="emul", description=__doc__)
    sub = ap.add_subparsers(dest="command")
    r = sub.add_parser("run", help="run a scenario (default: scenarios/seed-unmap.yaml)")
    r.add_argument("scenario", nargs="?", help="scenario YAML file")
    r.add_argument("--profile", help="cost profile name or YAML path (overrides the scenario's)")
    r.add_argument("-o", "--output", help="output directory (default results/<name>-<time>)")
    r.add_argument("--repeats", type=int, help="override the scenario's repeats")
    r.add_argument("--csv", action="store_true",
                   help="also write every table and time series as CSV files")
    r.add_argument("--chaos", type=int, metavar="SEED",
                   help="inject one fault at a random moment (testing: the run must end cleanly)")
    from emul.harness.chaos import KINDS
    r.add_argument("--chaos-kind", choices=KINDS, help="the fault --chaos injects (default: "
                   "chosen by the seed)")
    r.set_defaults(fn=cmd_run)
    rp = sub.add_parser("replay", help="replay a low-memory-killer storm from a log")
    rp.add_argument("trace", help="lmkd logcat, kernel OOM log, CSV or JSON Lines")
    rp.add_argument("--scenario", help="base scenario (default scenarios/replay-base.yaml)")
    rp.add_argument("--strategies", default="sync,bitmap,percpu-zsfree",
                    help="comma-separated strategies (default sync,bitmap,percpu-zsfree)")
    when = rp.add_mutually_exclusive_group()
    when.add_argument("--time-scale", type=float, help="multiply the recorded kill times "
                      "(default 1: as recorded)")
    when.add_argument("--back-to-back", action="store_true",
                      help="ignore the recorded times: each reaper takes the next kill at once")
    rp.add_argument("--size-scale", type=float, default=1.0,
                    help="multiply every victim's rss and swap (default 1)")
    rp.add_argument("--target-mb", type=float, default=100.0,
                    help="report the time until this much memory was returned (default 100)")
    rp.add_argument("--oom-swap-ratio", type=float, default=1.0,
                    help="kernel OOM lines carry no swap size: swap = anon-rss x this")
    rp.add_argument("--profile", help="cost profile (overrides the base scenario's)")
    rp.add_argument("--repeats", type=int, help="override the base scenario's repeats")
    rp.add_argument("-o", "--output", help="output directory (default results/replay-<trace>-<time>)")
    rp.set_defaults(fn=cmd_replay)
    sk = sub.add_parser("soak", help="cycle a scenario with every strategy for N minutes, "
                        "auditing every cycle")
    sk.add_argument("scenario", nargs="?", help="scenario (default scenarios/contention-mixed.yaml)")
    sk.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    sk.add_argument("--strategies", help="comma-separated (default: all)")
    sk.add_argument("--profile", help="cost profile (overrides the scenario's)")
    sk.add_argument("-o", "--output", help="output directory (default results/soak-<name>-<time>)")
    sk.set_defaults(fn=cmd_soak)
    s = sub.add_parser("strategies", help="list the GC strategies")
    s.set_defaults(fn=cmd_strategies)
    p = sub.add_parser("profiles", help="list the built-in cost profiles")
    p.set_defaults(fn=cmd_profiles)
    tp = sub.add_parser("topo", help="this machine's CPUs: capacity, clusters, caches, and the "
                        "names a scenario may pin workers by")
    tp.add_argument("--sysfs-root", default="/sys", metavar="DIR",
                    help="read DIR/devices/system/cpu instead of /sys's (a recorded tree)")
    tp.add_argument("--json", action="store_true", help="print JSON")
    tp.set_defaults(fn=cmd_topo)
    b = sub.add_parser("bench", help="microbenchmarks of emul's machinery against an atomic add")
    b.add_argument("--quick", action="store_true",
                   help="fewer batches and iterations (seconds once compiled)")
    b.add_argument("-o", "--output", help="also write the rows as JSON to this file")
    b.set_defaults(fn=cmd_bench)
    c = sub.add_parser("calibrate", help="measure this machine's kernel (zram swap) and write a "
                       "cost profile, then compare emul with it")
    c.add_argument("--setup", action="store_true", help="(root) configure an unused /dev/zramN "
                   "as swap for the measurement and restore it afterwards")
    c.add_argument("--device", help="the zram device, /dev/zramN (default: the active zram swap "
                   "device; with --setup, the first unused one)")
    c.add_argument("--mib", type=int, default=256, help="MiB per process (default 256)")
    c.add_argument("--repeats", type=int, default=5, help="repeats of each measurement, "
                   "median taken (default 5)")
    c.add_argument("--output", help="profile to write (default profiles/calibrated-<host>.yaml)")
    c.add_argument("--no-emulate", action="store_true", help="only measure and fit: no emul "
                   "runs (emul's own machinery is then not subtracted from the costs)")
    c.set_defaults(fn=cmd_calibrate)
    c = sub.add_parser("compare", help="the same figures of several runs side by side")
    c.add_argument("runs", nargs="+", metavar="RUN",
                   help="a results directory or results.json; the first is the reference")
    c.set_defaults(fn=cmd_compare)
    rr = sub.add_parser("report", help="re-render a run's summary.txt and plots from results.json")
    rr.add_argument("run", metavar="RUN", help="a results directory or results.json")
    rr.add_argument("-o", "--output", help="write here instead of next to the results")
    rr.add_argument("--csv", action="store_true", help="also write the figures as CSV files")
    rr.set_defaults(fn=cmd_report)
    return ap


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    args = build_parser().parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)   # logs and pipes get the whole table, not 80 columns
    if not getattr(args, "fn", None):
        args = build_parser().parse_args(["run"] + (argv if argv is not None else sys.argv[1:]))
    prune_numba_caches()
    try:
        return args.fn(args, console)
    except EmulError as exc:
        print(f"emul: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("emul: interrupted", file=sys.stderr)
        return EXIT_ABORTED


if __name__ == "__main__":
    sys.exit(main())
