"""``emul strategies``, ``emul profiles``, ``emul topo``: what this emul and machine offer."""
from __future__ import annotations

import json
import os
from argparse import Namespace

from rich.console import Console

from emul.config.profiles import builtin_names, load_profile
from emul.config.topology import TopologyError, describe, read_topology
from emul.errors import EXIT_OK, InputError
from emul.strategies import STRATEGY_MODULES


def cmd_strategies(args: Namespace, console: Console) -> int:
    for name, mod in STRATEGY_MODULES.items():
        cap = (f"cap {mod.DEFAULT_CAP_SLOTS} slots" if mod.DEFAULT_CAP_SLOTS
               else "no cap" if mod.NEEDS_GC else "")
        console.print(f"{name:16} {cap:17} {mod.SUMMARY}", markup=False)
    return EXIT_OK


def cmd_profiles(args: Namespace, console: Console) -> int:
    for name in builtin_names():
        console.print(f"{name:16} {load_profile(name).description}", markup=False)
    return EXIT_OK


def cmd_topo(args: Namespace, console: Console) -> int:
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
        from rich.markup import escape
        from rich.table import Table
        for line in lines:
            console.print(line, markup=False, highlight=False)
        t = Table()
        for col in columns:
            t.add_column(col, no_wrap=True)
        for row in rows:
            t.add_row(*(escape(cell) for cell in row))     # sysfs text, not markup
        console.print(t)
    else:   # plain columns for pipes and logs
        print("\n".join(lines))
        widths = [max(len(r[i]) for r in [columns, *rows]) for i in range(len(columns))]
        for r in [columns, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return EXIT_OK
