"""``emul``: parse, dispatch to the command's function, turn errors into exit codes."""
from __future__ import annotations

import importlib
import sys
from argparse import Namespace
from collections.abc import Callable

from rich.console import Console

from emul import prune_numba_caches
from emul.cli.parser import build_parser
from emul.cli.stdout import protect_stdout
from emul.errors import EXIT_ABORTED, EXIT_OK, EmulError


def command(spec: str) -> Callable[[Namespace, Console], int]:
    """The function of a "module:function" spec, imported now."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    protect_stdout()
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):       # bare `emul`: what it can do, not a run
        parser.print_help()
        return EXIT_OK
    from emul.report.textout import make_console
    console = make_console(getattr(args, "format", None))
    prune_numba_caches()
    try:
        return command(args.fn)(args, console)
    except EmulError as exc:
        print(f"emul: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("emul: interrupted", file=sys.stderr)
        return EXIT_ABORTED
