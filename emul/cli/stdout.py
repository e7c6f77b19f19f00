"""Standard output and error that survive their reader going away, and any encoding.

``emul run | head -1`` closes the pipe after one line; a closed terminal or ssh session makes
every write fail with EIO. Python would raise at the next print, mid-run, and the run would end
without results.json. Here the first failed write turns the stream into a sink: the run goes
on, writes its files and exits as it would have; only what it would have printed is lost (as
with any closed reader). A stream whose encoding cannot carry a character (PYTHONIOENCODING=ascii)
gets a replacement for it instead of a UnicodeEncodeError.
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
            except UnicodeEncodeError:
                enc = getattr(self._stream, "encoding", None) or "ascii"
                return self.write(text.encode(enc, "replace").decode(enc))
            except OSError:          # EPIPE: the reader left; EIO: the terminal is gone
                self._break()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except OSError:
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
    """Both standard streams wrapped (idempotent)."""
    if not isinstance(sys.stdout, SafeStdout) and sys.stdout is not None:
        sys.stdout = SafeStdout(sys.stdout)       # type: ignore[assignment]
    if not isinstance(sys.stderr, SafeStdout) and sys.stderr is not None:
        sys.stderr = SafeStdout(sys.stderr)       # type: ignore[assignment]


def say(line: str) -> None:
    """One line for the user on stderr (never raises: the terminal may be gone)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
