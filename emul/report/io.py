"""Reading a results file back (the schema and version check `emul compare` and `emul report`
share), writing summary.txt, and re-rendering a document's plots.

Only this emul's schema version is read. An older or newer file is refused with both versions
named rather than migrated: a silent migration would have to invent the fields version 2 added
(groups, baselines, p-values), and a figure that looks measured but was made up is worse than
a clear refusal.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from emul.errors import InputError
from emul.report.results import SCHEMA, SCHEMA_VERSION
from emul.report.schema import check_results, shown
from emul.report.textout import PLAIN_WIDTH

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# keys every reader here relies on; anything else is optional (older runs of version 2 lack
# e.g. "control", replay runs add "replay_summary")
REQUIRED_KEYS = ("scenario", "machine", "profile", "repeats", "summary")


def results_path(arg: str | Path) -> Path:
    """A run argument: a results directory (its results.json) or the JSON file itself."""
    p = Path(arg)
    return p / "results.json" if p.is_dir() else p


def load_results(path: str | Path) -> dict[str, Any]:
    """The results document at ``path`` (a file or a run directory), checked: an emul results
    file of the version this emul reads, of the shape emul writes (emul/report/schema.py).
    Anything else raises InputError (exit 2, one line naming the key)."""
    p = results_path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise InputError(str(path), None, "no results.json in this directory"
                         if Path(path).is_dir() else "no such file or directory") from None
    except IsADirectoryError:
        raise InputError(str(p), None, "a directory, not a results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(p), None, f"cannot read it: {getattr(exc, 'strerror', None) or exc}") \
            from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(str(p), None, f"not JSON ({exc.msg} at line {exc.lineno}); expected an "
                         f"emul results.json") from None
    except (ValueError, RecursionError) as exc:   # a 5000-digit number, arrays 10^5 deep
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise InputError(str(p), None, f"not readable as JSON ({why}); expected an emul "
                         f"results.json") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = shown(doc.get("schema")) if isinstance(doc, dict) else \
            f"a JSON {type(doc).__name__}"
        raise InputError(str(p), "schema", f"expected {SCHEMA!r}, found {found}: not an emul "
                         f"results file")
    version = doc.get("version")
    if version != SCHEMA_VERSION:
        if isinstance(version, bool) or not isinstance(version, int):
            why = "not a version number"
        elif version < SCHEMA_VERSION:
            why = "written by an older emul; re-run its scenario to get a current file"
        else:
            why = "written by a newer emul; read it with that version"
        raise InputError(str(p), "version", f"found results schema version {shown(version)}, "
                         f"this emul reads version {SCHEMA_VERSION} ({why})")
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise InputError(str(p), None, f"results file lacks {', '.join(missing)}: truncated or "
                         f"not written by emul")
    # every key the readers read, typed: after this, report and compare trust the document
    check_results(doc, str(p))
    return doc


def write_summary(outdir: Path, tables: list[Table], console: Console | None = None,
                  warnings: tuple[str, ...] = ()) -> Path:
    """The tables (and warnings) on console, in its format (none for --format json: the
    command prints its document instead), then in outdir/summary.txt in the plain format
    (ASCII, at most 100 columns: what a mail can carry, emul/report/textout.py). The console
    comes first: a full disk must not cost the user the figures."""
    show_tables(tables, console, warnings)
    return write_summary_file(outdir, tables, warnings)


def show_tables(tables: list[Table], console: Console | None,
                warnings: tuple[str, ...] = ()) -> None:
    from emul.report.textout import output_format
    if console is None or output_format(console) == "json":
        return
    for tbl in tables:
        console.print(tbl)
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", markup=True,
                      highlight=False)


def write_summary_file(outdir: Path, tables: list[Table], warnings: tuple[str, ...] = ()) -> Path:
    import io
    import textwrap

    from emul.atomic import write_text
    from emul.report.textout import PlainConsole
    buf = io.StringIO()
    file_console = PlainConsole(file=buf, width=PLAIN_WIDTH)
    for tbl in tables:
        file_console.print(tbl)
    for warning in warnings:
        buf.write("\n".join(textwrap.wrap(f"warning: {warning}", PLAIN_WIDTH,
                                           subsequent_indent="  ")) + "\n")
    return write_text(outdir / "summary.txt", buf.getvalue())


def render_plots(doc: dict, outdir: Path) -> list[Path]:
    """The run's plots, from the document alone (emul.report.plots.render_all); paths written.

    Looked up in sys.modules at the call, not bound at import, so a test can put its own
    module in its place."""
    import importlib
    made = importlib.import_module("emul.report.plots").render_all(doc, outdir)
    if isinstance(made, (str, Path)):
        return [Path(made)]
    return [Path(p) for p in made or []]
