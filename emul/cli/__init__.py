"""The ``emul`` command line.

    main.py      parse, dispatch, errors → exit codes
    parser.py    one small function per subcommand
    skeleton.py  the one shape of every command that runs the emulator: validate → run →
                 write → print → exit code
    progress.py  the live status line / timestamped lines
    run.py       emul run, emul soak       replay.py   emul replay
    info.py      strategies, profiles, topo
    tools.py     bench, calibrate, compare, report
    outdir.py    the run's -o directory: locked, never mixed with an earlier run's files
    stdout.py    standard streams that survive a closed reader
"""
from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """The ``emul`` command (console script and ``python -m emul.cli``). The signal handlers
    go in first of all, before the commands' imports: a signal while Python is still importing
    is noted and ends the command with exit 3, not a traceback (emul/harness/signals.py). A
    program that imports emul.cli.main and calls it keeps its own handlers."""
    from emul.harness.signals import INTERRUPTS
    INTERRUPTS.install_early()
    from emul.cli.main import main as run_command
    return run_command(argv)

__all__ = ["main"]
