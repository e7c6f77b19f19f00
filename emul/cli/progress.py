"""Progress on long work: a live status line on a terminal, timestamped lines elsewhere."""
from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from typing import Any

from rich.markup import escape


NARROW = 60      # a terminal narrower than this gets plain lines: a live line would wrap
# EMUL_PROGRESS=json: also one machine-readable line per event on stderr, this prefix and a JSON
# object (done, total, phase, elapsed_s): what emul farm's task reads from its emul run
MACHINE_PREFIX = "emul-progress "


class Progress:
    """On a terminal, a live status line (phase, variant, repeat, elapsed, ETA) under the log
    lines; otherwise (CI, a pipe, a terminal too narrow for one line) plain timestamped lines
    only."""

    def __init__(self, console) -> None:
        self.console = console
        self.t0 = time.monotonic()
        self.tty = console.is_terminal and console.width >= NARROW
        self.total = 0          # repeats the run will make (for the ETA), 0: unknown
        self.done = 0
        self.status: Any = None    # rich's Status while the live line shows
        self.phase_text = ""
        self.machine = os.environ.get("EMUL_PROGRESS") == "json"

    def _machine_line(self) -> None:
        if self.machine:
            event = {"done": self.done, "total": self.total, "phase": self.phase_text,
                     "elapsed_s": round(time.monotonic() - self.t0, 3)}
            try:
                print(MACHINE_PREFIX + json.dumps(event), file=sys.stderr, flush=True)
            except (OSError, ValueError):      # a reader gone: progress is not the run
                self.machine = False

    def __call__(self, text: str) -> None:
        elapsed = time.monotonic() - self.t0
        if self.tty:
            self.console.print(f"[dim]{elapsed:7.1f}s[/dim] {escape(text)}")
        else:
            # wrapped at the console's width (a pipe, a log, a mail: --format plain)
            lines = textwrap.wrap(text, max(20, self.console.width - 12),
                                  subsequent_indent="    ", drop_whitespace=False) or [""]
            stamp = f"[{elapsed:7.1f}s] "
            print("\n".join([stamp + lines[0].rstrip()]
                            + [" " * len(stamp) + x.rstrip() for x in lines[1:]]),
                  file=self.console.file, flush=True)

    def expect(self, total: int) -> None:
        self.total = total
        self._machine_line()
        if self.tty and self.status is None:
            self.status = self.console.status("starting")
            self.status.start()

    def repeat_done(self) -> None:
        self.done += 1
        self.phase(self.phase_text)

    def phase(self, text: str) -> None:
        """The controller entered a phase ("bitmap #3: unmap"): refresh the live line."""
        self.phase_text = text
        self._machine_line()
        if self.status is None:
            return
        elapsed = time.monotonic() - self.t0
        eta = ""
        if self.total and self.done:
            left = (elapsed / self.done) * (self.total - self.done)
            eta = f", ETA {left:.0f} s"
        line = (f"{text} — {self.done} of {self.total} repeats done, {elapsed:.0f} s "
                f"elapsed{eta}")
        # one line at most: a status that wraps is redrawn as stacked garbage
        self.status.update(escape(line[:max(10, self.console.width - 4)]))

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def quiet(text: str) -> None:
    """A progress sink that prints nothing (emul soak reports per cycle itself)."""
