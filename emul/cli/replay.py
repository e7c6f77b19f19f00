"""``emul replay TRACE``: a low-memory-killer storm from a log, against each strategy."""
from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from emul import shipped
from emul.cli import skeleton as sk
from emul.cli.progress import Progress
from emul.config.profiles import builtin_names, load_profile, page_size_warning
from emul.config.scenario import Scenario, load_scenario, read_yaml, scenario_from_dict
from emul.errors import InputError
from emul.harness.controller import Group
from emul.harness.trace import TraceRecorder
from emul.harness.plan import ReplayPlan, debug_bits
from emul.harness.record import RepeatRecord
from emul.replay import plan as rp
from emul.replay.report import plot_replay, replay_doc_extra, summarize_replay
from emul.replay.traces import Trace, read_trace
from emul.report import results
from emul.report.tables import lock_table, replay_table, worker_table
from emul.strategies import strategy_names

DEFAULT_STRATEGIES = "sync,bitmap,percpu-zsfree"


def check_args(args: Namespace) -> None:
    if args.time_scale is not None and not (0 < args.time_scale <= 1000):
        raise InputError("--time-scale", None,
                         f"expected a factor > 0 and <= 1000, got {args.time_scale}")
    if not (0 < args.size_scale <= 10):
        raise InputError("--size-scale", None,
                         f"expected a factor > 0 and <= 10, got {args.size_scale}")
    sk.check_repeats(args.repeats)


def replay_scenario(args: Namespace, trace: Trace, strategies: list[str]) -> tuple[Scenario, str]:
    """The base scenario with the trace's victims as its processes, checked to fit."""
    base_path = sk.resolve_scenario(args.scenario, rp.DEFAULT_BASE)
    profiles = builtin_names() + ([args.profile] if args.profile else [])
    base = load_scenario(base_path, cpus=sk.cpus(), strategies=strategy_names(),
                         profiles=profiles)
    doc = rp.build_scenario_doc(read_yaml(base_path, base_path), trace.kills, strategies,
                                base.page_size, args.size_scale)
    rp.check_fits(doc, base.zram.disksize, base.page_size,
                  base.workers.reclaim.vma if base.workers.reclaim else 0, base_path)
    if args.repeats is not None:
        doc["repeats"] = args.repeats
    sc = scenario_from_dict(doc, where=f"{base_path} (with the victims of {args.trace})",
                            cpus=sk.cpus(), strategies=strategy_names(), profiles=profiles)
    debug_bits(sc)
    return sc, base_path


def replay_warnings(trace: Trace, where: str) -> list[str]:
    """What makes a storm's figures mean less than they seem; a storm that frees nothing at all
    is refused."""
    if trace.total_rss_kb == 0 and trace.total_swap_kb == 0:
        raise InputError(where, None, f"every one of its {len(trace.kills)} kills frees 0 kB "
                         f"(rss and swap): a replay would measure nothing")
    out = []
    if trace.malformed:
        shown = "; ".join(f"{m.describe()} ({m.text})" for m in trace.malformed[:10])
        more = f"; and {len(trace.malformed) - 10} more" if len(trace.malformed) > 10 else ""
        out.append(f"{where}: skipped {len(trace.malformed)} malformed kill "
                   f"line{'s' if len(trace.malformed) > 1 else ''} (--strict refuses the "
                   f"file): {shown}{more}")
    if trace.total_swap_kb == 0:
        out.append(f"{where}: no kill has swap to free: every strategy has nothing to do "
                   f"lazily, and kill→swap freed is 0 for all")
    if trace.stepped_back:
        lines = ", ".join(map(str, trace.stepped_back[:5]))
        more = ", ..." if len(trace.stepped_back) > 5 else ""
        out.append(f"{where}: the time goes back at {len(trace.stepped_back)} kill line"
                   f"{'s' if len(trace.stepped_back) > 1 else ''} (line {lines}{more}; a clock "
                   f"change, a reboot, merged buffers): each is taken as back-to-back with the "
                   f"kill before it")
    return out


def cmd_replay(args: Namespace, console: Console) -> int:
    check_args(args)
    measuring = sk.measuring(args)
    strategies = sk.parse_strategies(args.strategies, strategy_names(), [])
    trace = read_trace(shipped(args.trace), oom_swap_ratio=args.oom_swap_ratio,
                       strict=args.strict)
    sc, base_path = replay_scenario(args, trace, strategies)
    profile = load_profile(args.profile or sc.profile)
    time_scale = None if args.back_to_back else (args.time_scale or 1.0)
    plan = ReplayPlan(due_ms=rp.due_times(trace.kills, time_scale),
                      names=tuple(p.name for p in sc.processes[:len(trace.kills)]))
    warnings = [*replay_warnings(trace, args.trace), page_size_warning(profile, sc.page_size)]
    outdir = sk.run_output_dir(args.output,
                               Path("results") / f"replay-{Path(args.trace).stem}-{sk.stamp()}",
                               args.force)
    progress = Progress(console)
    rss = sum(k.rss_kb for k in trace.kills) * args.size_scale / 1024
    swap = sum(k.swap_kb for k in trace.kills) * args.size_scale / 1024
    span = max(k.t_ms for k in trace.kills)
    for warning in filter(None, warnings):
        console.print(f"warning: {warning}", markup=False, highlight=False)
    progress(f"trace {args.trace} ({trace.format}): {len(trace.kills)} kills over {span:.0f} ms, "
             f"{rss:.0f} MiB rss + {swap:.0f} MiB swap, {trace.skipped} other lines skipped; "
             + ("back to back" if time_scale is None else f"time scale {time_scale:g}")
             + f"; {sc.repeats} repeats of {', '.join(strategies)}; profile {profile.name}")
    trace_rec = TraceRecorder()
    group = Group(sc, profile, progress, log_path=str(outdir / "run.log"), replay=plan,
                  trace=trace_rec, **measuring)
    options = {"strategies": strategies, "time_scale": time_scale, "size_scale": args.size_scale,
               "target_mb": args.target_mb, "oom_swap_ratio": args.oom_swap_ratio,
               "base_scenario": base_path}

    def on_repeat(rec: RepeatRecord) -> None:
        kills = (rec.replay or {}).get("kills", [])
        freed = [k["swap_freed_ms"] for k in kills if k["swap_freed_ms"] is not None]
        progress(f"  {rec.variant}: {len(kills)} kills, kill→swap freed max "
                 f"{max(freed) if freed else 0:.1f} ms, {sk.audit_line(rec.to_json())}")

    def build(rows: list[dict], status: str, reason: str) -> dict:
        doc = results.build(sc, profile, group.ticks_per_ns, rows, status, reason)
        doc.update(replay_doc_extra(trace, options,
                                    summarize_replay(rows, strategies, args.target_mb)))
        return doc

    def tables(doc: dict) -> list:
        # a trace file's or profile's name is the user's text, not markup
        title = (f"replay of {escape(args.trace)} — {len(trace.kills)} kills, profile "
                 f"{escape(profile.name)}, {escape(doc['machine']['arch'])}")
        return [replay_table(doc["replay_summary"], title), worker_table(doc), lock_table(doc)]

    job = sk.Job("replay", [group], outdir, build, tables,
                 footer=lambda doc, written: (f"results: {outdir / 'results.json'}; trace: "
                                              f"{outdir / 'trace.json'} (ui.perfetto.dev); "
                                              f"plot: {written[-1]}"),
                 on_repeat=on_repeat,
                 extras=lambda doc: [trace_rec.write(outdir / "trace.json"),
                                     plot_replay(doc, outdir / "replay.png")],
                 partial=lambda doc: [trace_rec.write(outdir / "trace.json")])
    return sk.execute(job, console)
