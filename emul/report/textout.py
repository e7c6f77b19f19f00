"""Output formats: rich tables on a terminal, plain ASCII for pipes and mail, JSON for scripts.

``--format rich`` (the default on a terminal) draws box tables at the terminal's width (rich
honours ``COLUMNS``), a wider one cut into blocks of whole columns as below. ``--format plain`` (the default when stdout is not a terminal, and the
form of summary.txt) draws ASCII tables at most PLAIN_WIDTH columns wide: a table wider than
that is cut into blocks of whole columns, each repeating the first (key) column, rather than
having its cells truncated, so a reply on linux-mm can carry it. ``--format json`` prints only
a JSON document on stdout (the command's summary); everything else goes to stderr.
"""
from __future__ import annotations

import os
import sys
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

PLAIN_WIDTH = 100
FORMATS = ("rich", "plain", "json")


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return Text.from_markup(cell).plain
    return str(cell)


def set_key_columns(table: Table, n: int) -> Table:
    """Say that a row's key is its first n columns: the plain format repeats them in every
    block of a table it has to cut."""
    setattr(table, "key_columns", n)
    return table


def column_blocks(table: Table, width: int) -> list[list[int]]:
    """The table's columns cut into blocks that fit ``width``: each block lists column indexes
    and starts with the row's key columns (``table.key_columns``, set where a row's key is more
    than its first column, e.g. variant and metric; default 1)."""
    keys = max(0, int(getattr(table, "key_columns", 1)))
    widths = []
    for col in table.columns:
        cells = [_plain(col.header), *(_plain(c) for c in col.cells)]
        widths.append(max((len(line) for c in cells for line in c.splitlines() or [""]),
                          default=0) + 3)          # "| " and the padding
    if sum(widths) + 1 <= width or len(widths) <= keys + 1:
        return [list(range(len(widths)))]
    key_width = sum(widths[:keys]) + 1
    blocks: list[list[int]] = []
    current, used = list(range(keys)), key_width
    for i in range(keys, len(widths)):
        if used + widths[i] > width and len(current) > keys:
            blocks.append(current)
            current, used = list(range(keys)), key_width
        current.append(i)
        used += widths[i]
    blocks.append(current)
    return blocks


def rows_of(table: Table) -> list[list[Any]]:
    """The table's cells row by row (rich keeps them per column)."""
    return [list(row) for row in zip(*(list(c.cells) for c in table.columns))]


def plain_tables(table: Table, width: int) -> list[Table]:
    """ASCII copies of table without title and caption, one per block of columns that fits
    width."""
    out = []
    for cols in column_blocks(table, width):
        t = Table(box=box.ASCII, show_edge=True, safe_box=True)
        for i in cols:
            c = table.columns[i]
            t.add_column(Text(_plain(c.header)), justify=c.justify, overflow="fold")
        for row in rows_of(table):
            # Text: the plain words as they read, not parsed as markup a second time
            t.add_row(*(Text(_plain(row[i])) for i in cols))
        out.append(t)
    return out


def rich_blocks(table: Table, width: int) -> list[Table]:
    """The same cut for the rich format: box tables, cells as they were (colours kept), the
    title on each block, the caption under the last."""
    blocks = column_blocks(table, width)
    if len(blocks) == 1:
        return [table]
    out = []
    for k, cols in enumerate(blocks):
        # the title's plain words escaped again: a name in it stays literal
        t = Table(title=f"{escape(_plain(table.title or ''))} ({k + 1}/{len(blocks)})",
                  caption=table.caption if k == len(blocks) - 1 else None, box=table.box)
        for i in cols:
            c = table.columns[i]
            t.add_column(c.header, justify=c.justify, overflow="fold")
        for row in rows_of(table):
            t.add_row(*(row[i] for i in cols))
        out.append(t)
    return out


class BlockConsole(Console):
    """rich's Console for the terminal (--format rich), except that a table wider than the
    terminal is cut into blocks of whole columns rather than having its cells cut to "1.0…"."""

    def print(self, *objects: Any, **kwargs: Any) -> None:   # type: ignore[override]
        for obj in objects:
            if isinstance(obj, Table):
                for t in rich_blocks(obj, self.width):
                    super().print(t, **kwargs)
            else:
                super().print(obj, **kwargs)


def terminal_width(file: IO[str] | None) -> int | None:
    """COLUMNS when set, else the width of the terminal the output goes to (None: not one)."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 20:
        return int(cols)
    try:
        return os.get_terminal_size((file or sys.stdout).fileno()).columns
    except (OSError, ValueError, AttributeError):
        return None


class PlainConsole(Console):
    """A Console that prints tables as ASCII blocks (plain_tables) and text without markup
    codes, at most PLAIN_WIDTH columns (fewer if COLUMNS says so)."""

    def __init__(self, file: IO[str] | None = None, width: int | None = None) -> None:
        w = width or min(PLAIN_WIDTH, terminal_width(file) or PLAIN_WIDTH)
        super().__init__(file=file, width=w, color_system=None, force_terminal=False,
                         highlight=False, emoji=False, legacy_windows=False)

    def print(self, *objects: Any, **kwargs: Any) -> None:   # type: ignore[override]
        for obj in objects:
            if isinstance(obj, (str, Text)):
                plain = obj.plain if isinstance(obj, Text) else (
                    Text.from_markup(obj).plain if kwargs.get("markup", True) else obj)
                self._text(plain)
                continue
            if not isinstance(obj, Table):
                super().print(obj, **kwargs)
                continue
            # title and caption as text at the console's width, not squeezed into a block's
            title, caption = _plain(obj.title or ""), _plain(obj.caption or "")
            blocks = plain_tables(obj, self.width)
            for k, t in enumerate(blocks):
                if title:
                    part = f" ({k + 1}/{len(blocks)})" if len(blocks) > 1 else ""
                    self._text(title + part)
                super().print(t)
            if caption:
                self._text(caption)

    def _text(self, text: str) -> None:
        """Lines wrapped at the width by words (no trailing blanks, nothing cut)."""
        import textwrap
        for para in text.splitlines() or [""]:
            for line in textwrap.wrap(para, self.width, subsequent_indent="  ",
                                      break_on_hyphens=False) or [""]:
                super().print(line, markup=False, highlight=False, soft_wrap=True)


def make_console(fmt: str | None) -> Console:
    """The console of a command's output in this format (None: rich on a terminal, plain
    elsewhere). json: a plain console on stderr, stdout is kept for the document."""
    if fmt is None:
        fmt = "rich" if sys.stdout.isatty() else "plain"
    console: Console
    if fmt == "json":
        console = PlainConsole(file=sys.stderr)
    elif fmt == "plain":
        console = PlainConsole()
    else:
        console = BlockConsole()
    setattr(console, "emul_format", fmt)
    return console


def output_format(console: Console) -> str:
    return getattr(console, "emul_format", "rich")
