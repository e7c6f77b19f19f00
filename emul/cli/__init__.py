"""The ``emul`` command line.

    main.py      parse, dispatch, errors → exit codes
    parser.py    one small function per subcommand
    skeleton.py  the one shape of every command that runs the emulator: validate → run →
                 write → print → exit code
    progress.py  the live status line / timestamped lines
    run.py       emul run, emul soak       replay.py   emul replay
    info.py      strategies, profiles, topo
    tools.py     bench, calibrate, compare, report
"""
from emul.cli.main import main

__all__ = ["main"]
