"""``emul validate``: the published record beside emul's figures (emul/validate/command.py);
``--real`` adds row 8 through ``emul calibrate --setup`` (emul/validate/real.py)."""
from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

from rich.console import Console

from emul.cli import skeleton as sk
from emul.cli.progress import Progress
from emul.errors import EmulError
from emul.validate.command import check_args, run_validate
from emul.validate.outcome import Outcome
from emul.validate.real import BOARD, real_outcomes

REAL_ARGS = ["calibrate", "--setup", "--repeats", "3", "--dilate", "3"]


def cmd_validate(args: Namespace, console: Console) -> int:
    check_args(args)          # before the output directory exists
    outdir = sk.output_dir(args.output, Path("results") / f"validate-{sk.stamp()}")
    progress = Progress(console)

    def real() -> list[Outcome]:
        from emul.calibrate.command import run_calibrate
        from emul.cli.parser import build_parser
        profile = outdir / "calibrated.yaml"
        progress(f"row 8: emul {' '.join(REAL_ARGS)} (root, a free zram device; minutes)")
        try:
            cal_args = build_parser().parse_args([*REAL_ARGS, "--output", str(profile)])
            run_calibrate(cal_args, console, progress)
            record = json.loads(profile.with_suffix(".json").read_text())
        except (EmulError, OSError, ValueError) as exc:
            return [Outcome("8.real", 8, BOARD, "k exits at once vs 1 alone", 0.0, "error",
                            unit="x", reason=str(exc))]
        record["dilate"] = float(REAL_ARGS[-1])
        return real_outcomes(record)

    try:
        return run_validate(args, console, outdir, progress, real if args.real else None)
    finally:
        progress.stop()
