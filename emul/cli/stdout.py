"""A standard output that survives its reader going away.

``emul run | head -1`` closes the pipe after one line. Python would raise BrokenPipeError at the
next print, mid-run, and the run would end without results.json. Here the first broken write
turns stdout into a sink: the run goes on, writes its files and exits as it would have; only
what it would have printed is lost (as with any closed reader).
"""
from __future__ import annotations

import os
import sys
from typing import IO, Any


class SafeStdout:
    """Wraps a text stream; after EPIPE every write and flush is dropped."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._break()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._break()

    def _break(self) -> None:
        self.broken = True
        # what is still buffered would raise again at exit: point the descriptor at /dev/null
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except OSError:
            pass

    def __getattr__(self, name: str) -> Any:     # isatty, fileno, encoding, ...
        return getattr(self._stream, name)


def protect_stdout() -> None:
    if not isinstance(sys.stdout, SafeStdout) and sys.stdout is not None:
        sys.stdout = SafeStdout(sys.stdout)       # type: ignore[assignment]
