"""Errors the user sees as one clear line, and the exit code each maps to.

Anything raised as an :class:`EmulError` is printed by the CLI as ``emul: <message>`` with no
traceback. Anything else is a bug in emul and keeps its traceback.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1      # the run completed but its audit failed
EXIT_USAGE = 2       # bad input: scenario, trace, command line, profile
EXIT_ABORTED = 3     # the run was stopped: a worker died or hung, or a signal arrived
EXIT_NOT_FIRED = 4   # emul run --chaos: the run ended before the fault was due (nothing tested)
EXIT_IO = 5          # the system refused a file or socket: disk full, read-only, no such device


class EmulError(Exception):
    """An error with a message meant for the user, and an exit code."""

    exit_code = EXIT_USAGE


class InputError(EmulError):
    """Bad input: the message names the file, the key and what was expected."""

    exit_code = EXIT_USAGE

    def __init__(self, where: str, key: str | None, expected: str) -> None:
        self.where, self.key, self.expected = where, key, expected
        text = f"{where}: {key}: {expected}" if key else f"{where}: {expected}"
        super().__init__(text)


class SystemNotReady(EmulError):
    """The machine lacks what the command needs (a device, a kernel feature, root rights); the
    message says exactly what and how to provide it."""

    exit_code = EXIT_USAGE


class RunAborted(EmulError):
    """The run could not finish: a worker died or stopped answering, or a signal arrived."""

    exit_code = EXIT_ABORTED


class AuditFailed(EmulError):
    """The invariant audit found a fault; the run's figures are not to be trusted."""

    exit_code = EXIT_FAILED


class OutputFailed(EmulError):
    """The system refused to let emul write or create something (a full disk, a read-only
    directory, /dev/shm, a socket path): the message names what and why."""

    exit_code = EXIT_IO


class Unreachable(EmulError):
    """A farm's scheduler or host could not be reached (no route, refused, SSH rejected, no
    worker offering emul): the message names which and why."""

    exit_code = EXIT_IO
