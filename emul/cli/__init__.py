"""The ``emul`` command line.

    entry.py     parse, dispatch, errors → exit codes
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
    """The ``emul`` command. Run as the program (the console script, ``python -m emul.cli``:
    no argv), the process is emul's: the signal handlers go in first of all, before the
    commands' imports, so a signal while Python is still importing is noted and ends the
    command with exit 3, not a traceback, and a signal while it exits is ignored
    (emul/harness/signals.py). Called with argv from another program (a test), its handlers
    are its own again afterwards."""
    if argv is None:
        from emul.harness.signals import INTERRUPTS
        INTERRUPTS.install_early()
    from emul.cli.entry import main as run_command
    return run_command(argv)
