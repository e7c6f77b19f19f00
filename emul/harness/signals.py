"""SIGINT, SIGTERM and SIGHUP as one interrupt, raised once, never inside clean-up.

A signal may be taken by any thread of the controller (ZeroMQ's I/O thread and numba's threads
have empty signal masks), so masking the main thread is not enough: Python still runs the
handler in the main thread, at its next bytecode. The handler therefore decides by state, not by
mask:

    armed     the first signal raises KeyboardInterrupt("signal SIGTERM") and disarms
    held      (clean-up, writing the results, creating what must be recorded for clean-up)
              a signal is noted, nothing is raised

``catching()`` opens an armed region (the CLI's whole command, each run_groups, the skeleton's
run and write); ``hold()`` disarms it until it ends; leaving a region, normally or by an
exception, leaves the process held (what follows is clean-up or reporting; the next region
re-arms, and raises at once a signal noted meanwhile), and the outermost region raises on its
normal end a signal noted and not yet dealt with. The handlers
are installed, held, as soon as emul.cli is imported (``install_early``), so a signal during
Python's start-up is noted and the command ends at once with exit 3 instead of a traceback.
SIGHUP (the terminal or the ssh session closed) is handled as SIGTERM. SIGKILL cannot be
handled: what it leaves is swept by the next run (emul/harness/leftovers.py).

Two ways CPython can lose or twist a raised interrupt, both met in numba's compile:
  - raised inside a ctypes callback (llvmlite's object-cache hook), the KeyboardInterrupt is
    printed as "Exception ignored" and dropped: the handler keeps the signal as ``raised``
    until a region sees the exception pass, and ``check()`` (after the compile, between
    repeats) and every region's end raise it again;
  - raised inside source run by exec() (a dataclass's generated methods, during an import),
    it leaves CPython's "unhandled KeyboardInterrupt" mark set even when caught, and a
    process started as ``python -m`` then kills itself with SIGINT on exit, whatever its exit
    code: ``ignore_from_now()`` clears the mark (an exec that ends normally does).
"""
from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupts:
    """The process's one interrupt state (``INTERRUPTS``)."""

    def __init__(self) -> None:
        self.armed = False
        self.depth = 0
        self.noted: list[str] = []          # signals that arrived while held
        self.raised: str | None = None      # raised, and not yet seen passing a region
        self.settled = False                # the command's outcome is said: drop the rest
        self.keep = False                   # handlers stay after the last region (the CLI)
        self._previous: dict[int, Any] | None = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.settled:
            return
        if self.armed:
            self.armed = False            # a second signal must not cut the clean-up short
            self.raised = name
            raise KeyboardInterrupt(f"signal {name}")
        self.noted.append(name)

    def install_early(self) -> None:
        """Handlers in place for the rest of the process (the CLI's), held: what arrives
        before the first region is noted, and so is what arrives after the last, while the
        process exits (a second signal then must not turn exit 3 into death by signal)."""
        self._install()
        self.keep = True
        sys.unraisablehook = self._unraisable

    def _unraisable(self, info: Any) -> None:
        """An interrupt a ctypes callback could not raise is ours, and check() raises it again:
        no "Exception ignored" traceback for it. Anything else as Python reports it."""
        if isinstance(info.exc_value, KeyboardInterrupt) and self.raised is not None:
            return
        sys.__unraisablehook__(info)

    def _install(self) -> None:
        if self._previous is None:
            self._previous = {s: signal.signal(s, self._handler) for s in HANDLED}

    def _raise_noted(self) -> None:
        """Raise a signal noted while held, or one raised before that something swallowed."""
        name = self.raised or (self.noted[0] if self.noted else None)
        if name is None:
            return
        self.noted.clear()
        self.armed = False
        self.raised = name
        raise KeyboardInterrupt(f"signal {name}")

    @contextmanager
    def interrupting(self) -> Iterator[None]:
        """Library code an interrupt may stop mid-way (numba's compile and cache loads): an
        exception it raises instead (llvmlite cleaning up a half-made object) is the
        interrupt, and one it swallowed is raised on leaving."""
        try:
            yield
        except Exception:
            if self.raised is None:
                raise
            self._raise_noted()
        self.check()

    def check(self) -> None:
        """In an armed region: raise again an interrupt that was raised and swallowed (a
        ctypes callback drops exceptions), so a signal is never lost."""
        if self.raised is not None:
            self._raise_noted()

    @contextmanager
    def catching(self) -> Iterator["Interrupts"]:
        """An armed region (re-entrant). Leaving it, normally or by an exception, leaves the
        process held: what follows is clean-up or reporting, and the next region re-arms. A
        signal noted by then is raised when the outermost region ends normally. The handlers
        are put back as they were when the outermost region ends (unless the CLI owns the
        process: install_early)."""
        self._install()
        self.armed = False
        if self.depth == 0:
            self.settled = False          # a new command (an in-process caller's next one)
        self.depth += 1
        try:
            self.armed = True
            self._raise_noted()               # one that came while nothing was armed
            yield self
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                self.raised = None        # it reached a region: it is being dealt with
            self._leave()
            if self.depth == 0:
                self.noted.clear()        # the command is ending anyway: nothing to raise
            raise
        self._leave()
        if self.depth == 0:
            self._raise_noted()

    def _leave(self) -> None:
        self.depth -= 1
        self.armed = False
        if self.depth == 0 and self._previous is not None and not self.keep:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            self._previous = None

    def ignore_from_now(self) -> None:
        """The command's outcome is decided: further signals are ignored while the process
        exits (Python's finalization would put the default handlers back, and a late
        SIGTERM would turn exit 3 into death by signal)."""
        for sig in HANDLED:
            signal.signal(sig, signal.SIG_IGN)
        # an interrupt that ended exec()'d source (caught since) left CPython's "unhandled
        # KeyboardInterrupt" mark, which makes `python -m` die by SIGINT at exit, whatever
        # the exit code; an exec of source that ends normally clears it
        exec("pass")  # noqa: S102 - constant source

    def hold(self) -> None:
        """From here to the end of the region (clean-up, writing files) signals are noted,
        not raised."""
        self.armed = False

    def settle(self) -> list[str]:
        """The command's outcome is decided and about to be said (its exit code, its one
        line): the signals noted so far, and from now on signals are dropped, so that one
        arriving while it exits cannot add a second line or change the code."""
        self.settled = True
        self.raised = None
        return self.take_noted()

    def take_noted(self) -> list[str]:
        """The signals noted while held, forgotten (the caller has dealt with them)."""
        noted, self.noted = self.noted, []
        return noted

    @contextmanager
    def held(self) -> Iterator[None]:
        """No interrupt inside the block (creating a resource and recording it for clean-up
        is one step); a signal that arrived meanwhile is raised on leaving it."""
        was = self.armed
        self.armed = False
        yield                  # an exception on its way leaves it held: clean-up follows
        self.armed = was
        if was:
            self._raise_noted()


INTERRUPTS = Interrupts()
