"""emul farm run's progress: one line per cell (its host, what it runs, its state), an ETA.

On a terminal the lines are a live table redrawn in place; elsewhere (CI, a pipe) a
timestamped line is printed whenever a cell starts, finishes a repeat or ends. The ETA is the
repeats left over the rate so far, summed over the cells still going (cells run at once, so
the slowest host's share is what is left).
"""
from __future__ import annotations

import time
from typing import Any

from rich.markup import escape
from rich.table import Table

from emul.farm.cells import Cell

NARROW = 60


class FarmProgress:
    def __init__(self, console: Any, cells: list[Cell]) -> None:
        self.console = console
        self.cells = cells
        self.t0 = time.monotonic()
        self.tty = bool(console.is_terminal) and console.width >= NARROW
        self.live: Any = None
        self.said: dict[str, tuple[str, int]] = {}     # cell -> (state, done) last printed
        if self.tty:
            from rich.live import Live
            self.live = Live(self.table(), console=console, refresh_per_second=4,
                             transient=False)
            self.live.start()

    def eta_s(self) -> float | None:
        """Seconds until the slowest cell still going is done, at its own rate so far."""
        left = []
        for c in self.cells:
            if c.state == "running" and c.started is not None and c.done and c.total:
                rate = (time.monotonic() - c.started) / c.done
                left.append(rate * (c.total - c.done))
        return max(left) if left else None

    def line(self, cell: Cell) -> str:
        if cell.state == "running":
            what = f"running {cell.phase or cell.label}"
            if cell.total:
                what += f" — {cell.done} of {cell.total} repeats"
        elif cell.state in ("failed", "cancelled", "audit-failed"):
            what = f"{cell.state}: {cell.reason}"
        else:
            what = cell.state
        return f"{cell.id}: {what}"

    def table(self) -> Table:
        elapsed = time.monotonic() - self.t0
        eta = self.eta_s()
        title = f"emul farm — {elapsed:.0f} s elapsed" + (f", ETA {eta:.0f} s" if eta else "")
        t = Table(title=title, show_header=True, title_justify="left")
        for col in ("cell", "host", "runs", "state"):
            t.add_column(col)
        for c in self.cells:
            t.add_row(escape(c.id), escape(str(c.host.info.get("hostname", ""))),
                      escape(c.label), escape(self.line(c).split(": ", 1)[1]))
        return t

    def say(self, text: str) -> None:
        """A line of its own (above the live table on a terminal)."""
        stamp = f"[{time.monotonic() - self.t0:7.1f}s] "
        if self.live is not None:
            self.live.console.print(escape(stamp + text), highlight=False)
        else:
            print(stamp + text, file=self.console.file, flush=True)

    def changed(self, cell: Cell) -> None:
        """A progress event of a cell (called from the client's event thread)."""
        if not self.tty and self.said.get(cell.id) != (cell.state, cell.done):
            self.said[cell.id] = (cell.state, cell.done)
            eta = self.eta_s()
            self.say(self.line(cell) + (f", ETA {eta:.0f} s" if eta else ""))

    def cell_ended(self, cell: Cell) -> None:
        if not self.tty:
            self.say(self.line(cell))

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.table())

    def stop(self) -> None:
        if self.live is not None:
            self.live.update(self.table())
            self.live.stop()
            self.live = None
