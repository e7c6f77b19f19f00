"""``emul machinery``: probe (or load) emul's own work per kernel step for a scenario's
variants on this host and show it beside the profile's targets, without running a repeat."""
from __future__ import annotations

import json
import sys
from argparse import Namespace

from rich.console import Console

from emul.cli import skeleton as sk
from emul.cli.progress import Progress
from emul.cli.run import DEFAULT_SCENARIO, load_groups
from emul.config.profiles import load_profile
from emul.errors import EXIT_OK
from emul.harness.controller import Group, probe_groups
from emul.report.machinery import machinery_rows, machinery_table, overruns, smallest_dilation


def to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_machinery(args: Namespace, console: Console) -> int:
    path = sk.resolve_scenario(args.scenario, DEFAULT_SCENARIO)
    scenarios, _ = load_groups(path, args.profile, None, args.dilate)   # probes what runs
    progress = to_stderr if args.json else Progress(console)   # stdout is the JSON alone
    groups = [Group(sc, load_profile(args.profile or sc.profile), progress) for sc in scenarios]
    for g in groups:
        g.fresh_machinery = args.fresh
    probe_groups(groups)
    rows = machinery_rows(groups)
    if args.json:
        print(json.dumps(rows, indent=1))
        return EXIT_OK
    console.print(machinery_table(rows))
    over = overruns(rows)
    dil = scenarios[0].dilate
    if over:
        names = ", ".join(sorted({f"{r['step']} ({r['role']})" for r in over}))
        console.print(f"overruns at dilation {dil:g}: {names}; the smallest dilation without "
                      f"one: --dilate {smallest_dilation(rows) * 1.1:.1f}", markup=False,
                      highlight=False)
    else:
        console.print(f"no step's machinery exceeds its target at dilation {dil:g}",
                      markup=False, highlight=False)
    return EXIT_OK
