"""``emul bench``, ``emul calibrate``, ``emul compare``, ``emul report``: thin calls into the
packages that do the work."""
from __future__ import annotations

from argparse import Namespace

from rich.console import Console

from emul.bench import run_bench
from emul.calibrate.command import run_calibrate
from emul.cli.progress import Progress
from emul.cli.skeleton import output_dir
from emul.errors import EXIT_OK, InputError
from emul.report.compare import load_runs, print_comparison
from emul.report.export import write_csv
from emul.report.io import load_results, render_plots, results_path, write_summary
from emul.report.tables import summary_tables, summary_warnings


def cmd_bench(args: Namespace, console: Console) -> int:
    return run_bench(console, quick=args.quick, output=args.output)


def cmd_calibrate(args: Namespace, console: Console) -> int:
    return run_calibrate(args, console, Progress(console))


def cmd_compare(args: Namespace, console: Console) -> int:
    if args.floor is not None and not 0 <= args.floor < 100:
        raise InputError("--floor", None, f"expected a percentage from 0 to 100, got "
                         f"{args.floor:g}")
    print_comparison(load_runs(args.runs), console, args.floor)
    return EXIT_OK


def cmd_report(args: Namespace, console: Console) -> int:
    """summary.txt (and plots, and with --csv the CSV files) again, from results.json alone."""
    doc = load_results(args.run)
    outdir = output_dir(args.output, results_path(args.run).parent)
    if doc.get("status", "ok") != "ok":
        console.print(f"run status: {doc['status']}" + (f" ({doc['reason']})" if doc.get("reason")
                                                        else ""), markup=False)
    written = [write_summary(outdir, summary_tables(doc), console,
                             tuple(summary_warnings(doc))), *render_plots(doc, outdir)]
    if args.csv:
        written += write_csv(outdir, doc)
    console.print("wrote: " + ", ".join(str(p) for p in written), markup=False)
    return EXIT_OK
