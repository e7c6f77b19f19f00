"""``emul``: parse, dispatch to the command's function, turn errors into exit codes.

Every way a command can fail reaches the user as one line on stderr and an exit code
(emul/errors.py; the README's "Exit codes"): an EmulError with its own code, an OSError or a
ZeroMQ error the system raised (a full disk, a read-only directory, a socket path) as exit 5,
an interrupt as exit 3. Only a bug in emul keeps its traceback.
"""
from __future__ import annotations

import importlib
import os
import sys
from argparse import Namespace
from collections.abc import Callable

from rich.console import Console

from emul import cache_problem, prune_numba_caches
from emul.cli.parser import build_parser
from emul.cli.stdout import protect_stdout, say
from emul.errors import EXIT_ABORTED, EXIT_IO, EXIT_OK, EmulError
from emul.harness.signals import INTERRUPTS

# commands that never load the compiled kernel: they run without a compiled-code cache
NO_KERNEL = {"emul.cli.tools:cmd_report", "emul.cli.tools:cmd_compare",
             "emul.cli.info:cmd_topo", "emul.cli.farm:cmd_farm_run",
             "emul.cli.farm:cmd_farm_hosts"}


def command(spec: str) -> Callable[[Namespace, Console], int]:
    """The function of a "module:function" spec, imported now."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:           # one more while the outcome was being reported
        return EXIT_ABORTED
    finally:
        if INTERRUPTS.keep:             # the process is the CLI's: it exits now
            INTERRUPTS.ignore_from_now()


def _main(argv: list[str] | None) -> int:
    protect_stdout()
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):       # bare `emul`: what it can do, not a run
        parser.print_help()
        return EXIT_OK
    try:
        with INTERRUPTS.catching():       # armed for the whole command
            return dispatch(args)
    except EmulError as exc:
        say(f"emul: {exc}")
        return exc.exit_code
    except KeyboardInterrupt as exc:
        INTERRUPTS.hold()
        say(f"emul: interrupted ({exc or 'SIGINT'})")
        return EXIT_ABORTED
    except OSError as exc:
        say(f"emul: {os_error_line(exc)}")
        return EXIT_IO
    except Exception as exc:
        import zmq
        if isinstance(exc, zmq.ZMQError):
            say(f"emul: the control socket failed: {exc}")
            return EXIT_IO
        raise


def dispatch(args: Namespace) -> int:
    problem = cache_problem()      # before anything imports the compiled kernel
    if args.fn not in NO_KERNEL and problem:
        from emul.errors import OutputFailed
        raise OutputFailed(problem)
    preflight(args)
    from emul.harness.leftovers import sweep
    from emul.report.textout import make_console
    console = make_console(getattr(args, "format", None))
    prune_numba_caches()
    # what SIGKILLed runs left (emul/harness/leftovers.py), removed without a word: the
    # command's stderr is its own one line
    sweep()
    return command(args.fn)(args, console)


PREFLIGHT_LIMIT = 1 << 20      # as scenario and profile files (emul/config/scenario.py)


def preflight(args: Namespace) -> None:
    """The scenario and profile files the command names, read as YAML before the command's
    module (numpy, numba, the compiled kernel: a second and 100 MB) is imported: a file that
    is no YAML document (an alias bomb, a FIFO, duplicate keys) is refused at once, with the
    same line the full check would give."""
    from emul import shipped
    from emul.config.yamlread import read_yaml_file
    scenario = getattr(args, "scenario", None)
    if isinstance(scenario, str):
        read_yaml_file(scenario, shipped(scenario), PREFLIGHT_LIMIT, "a scenario file")
    profile = getattr(args, "profile", None)
    if isinstance(profile, str) and os.path.splitext(profile)[1]:
        read_yaml_file(profile, profile, PREFLIGHT_LIMIT, "a cost profile file")


def os_error_line(exc: OSError) -> str:
    """An OSError as the user should read it: what, on which file, why."""
    why = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename if exc.filename is not None else None
    return f"{where}: {why}" if where else why
