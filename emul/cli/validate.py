"""``emul validate``: the published record beside emul's figures (emul/validate/command.py)."""
from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from rich.console import Console

from emul.cli import skeleton as sk
from emul.cli.progress import Progress
from emul.validate.command import run_validate


def cmd_validate(args: Namespace, console: Console) -> int:
    outdir = sk.output_dir(args.output, Path("results") / f"validate-{sk.stamp()}")
    progress = Progress(console)
    try:
        return run_validate(args, console, outdir, progress)
    finally:
        progress.stop()
