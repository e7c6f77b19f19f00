"""``emul farm run`` and ``emul farm hosts``: the command line of emul/farm/."""
from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from emul.cli import skeleton as sk
from emul.cli.run import DEFAULT_SCENARIO
from emul.errors import InputError
from emul.farm import command as fc
from emul.farm import identity
from emul.farm.cells import Cell, FarmRun
from emul.farm.cluster import Farm, Host, SshOptions
from emul.farm.progress import FarmProgress
from emul.harness.signals import INTERRUPTS


def open_farm(args: Namespace) -> Farm:
    if bool(args.hosts) == bool(args.scheduler):
        raise InputError("emul farm", None, "expected exactly one of --hosts H1,H2,... (started "
                         "over SSH) or --scheduler tcp://HOST:PORT (workers already running)")
    hosts = [h.strip() for h in (args.hosts or "").split(",") if h.strip()]
    if args.hosts and not hosts:
        raise InputError("--hosts", None, f"expected a comma-separated list of hosts, got "
                         f"{args.hosts!r}")
    ssh = SshOptions(port=args.ssh_port, user=args.ssh_user, key=args.ssh_key,
                     known_hosts=args.ssh_known_hosts, remote_python=args.remote_python,
                     connect_timeout=args.connect_timeout)
    if not 0 < args.connect_timeout <= 3600:
        raise InputError("--connect-timeout", None, f"expected seconds from 0 to 3600, got "
                         f"{args.connect_timeout:g}")
    return Farm(args.scheduler, hosts or None, ssh, args.connect_timeout)


def hosts_table(hosts: list[Host]) -> Table:
    mine = identity.describe()["emul"]
    same = {n: k + 1 for k, names in enumerate(identity.same_machines(
        {h.name: h.info for h in hosts})) for n in names}
    t = Table(title=f"farm hosts (this controller runs emul {mine})", title_justify="left")
    for col in ("host", "arch", "CPUs", "CPU model", "topology", "kernel", "emul", "machine"):
        t.add_column(col)
    for h in hosts:
        i = h.info
        emul = i.get("emul", "?") + ("" if i.get("emul") == mine else " (differs)")
        t.add_row(*(escape(str(x)) for x in (
            h.name, i.get("arch"), f"{i.get('cpus_usable')} of {i.get('cpus')}",
            i.get("cpu_model"), i.get("topology"), i.get("kernel"), emul,
            f"same as #{same[h.name]}" if h.name in same else i.get("hostname"))))
    return t


def cmd_farm_hosts(args: Namespace, console: Console) -> int:
    """The hosts as a table, or (--format json) a JSON list of each host's facts."""
    from emul.report.textout import output_format
    with open_farm(args) as farm:
        hosts = farm.hosts()
    if output_format(console) == "json":
        print(json.dumps([{"name": h.name, "address": h.address, **h.info} for h in hosts],
                         indent=1))
    else:
        console.print(hosts_table(hosts))
    return 0


def farm_run_spec(args: Namespace) -> FarmRun:
    """The scenario (and a profile file) read here: all a host is sent of them is their text."""
    path = sk.resolve_scenario(args.scenario, DEFAULT_SCENARIO)
    sk.check_repeats(args.repeats)
    sk.measuring(args)
    text = Path(path).read_text()
    profile, profile_text = args.profile, None
    if profile and Path(profile).suffix:
        profile_text = Path(profile).read_text()
    run_args = ["--warmup", str(args.warmup)] + (["--repeats", str(args.repeats)]
                                                  if args.repeats else [])
    if args.no_boost:
        run_args.append("--no-boost")
    return FarmRun(path, text, args.spread, profile, profile_text, run_args)


def cmd_farm_run(args: Namespace, console: Console) -> int:
    run = farm_run_spec(args)
    with open_farm(args) as farm:
        hosts = farm.hosts()
        fc.check_hosts(hosts, run.spread)
        cells, skipped = fc.plan_cells(farm, run, hosts)
        default = Path("results") / f"farm-{Path(run.scenario_path).stem}-{sk.stamp()}"
        outdir = sk.run_output_dir(args.output, default, args.force)
        progress = FarmProgress(console, cells)
        mode = "--spread" if run.spread else "--each"
        progress.say(f"farm {farm.where}: {len(hosts)} hosts, {len(cells)} cells ({mode}) of "
                     f"{run.scenario_path}")
        for line in skipped:
            progress.say(line)
        fc.run_cells(farm, run, cells, progress)
    INTERRUPTS.hold()
    return report(console, run, cells, hosts, outdir)


def report(console: Console, run: FarmRun, cells: list[Cell], hosts: list[Host],
           outdir: Path) -> int:
    """The merged document written, its tables printed; the farm's exit code."""
    from emul.report import results
    from emul.report.io import render_plots, write_summary
    if not any(c.result.get("doc") for c in cells):
        raise fc.no_document(cells)
    doc = fc.merged(run, cells, hosts)
    tables, notes = summary_of(run, doc, cells, outdir)
    write_summary(outdir, tables, console, tuple(notes))
    files = [results.write(outdir, doc), *fc.write_cells(outdir, cells), *render_plots(doc, outdir)]
    console.print(f"results: {escape(str(files[0]))}; per-cell results under "
                  f"{escape(str(outdir / 'cells'))}")
    for c in cells:
        if c.state not in ("done",):
            console.print(f"[yellow]{escape(c.id)}: {escape(c.state)}: {escape(c.reason)}[/]")
    return fc.exit_code(cells)


def summary_of(run: FarmRun, doc: dict, cells: list[Cell], outdir: Path
               ) -> tuple[list, list[str]]:
    """--each: emul compare's side-by-side table of the hosts; --spread: emul run's tables."""
    from emul.report.tables import summary_tables, summary_warnings
    notes = [f"hosts {', '.join(g)} are one machine (the same boot): their runs shared its "
             f"CPUs and disturbed each other" for g in doc["farm"]["same_machine"]]
    if run.spread:
        return summary_tables(doc), notes + summary_warnings(doc)
    from emul.report.compare import Run, compare, header_table, metrics_table
    from emul.report.compare import notes as compare_notes
    runs = [Run(c.host.name, outdir / "cells" / c.id, c.result["doc"]) for c in cells
            if c.result.get("doc")]
    if len(runs) < 2:
        return summary_tables(doc), notes
    from rich.text import Text
    plain = [Text.from_markup(n).plain for n in compare_notes(runs)]
    return [header_table(runs), metrics_table(runs, compare(runs))], notes + plain
