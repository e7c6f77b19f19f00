"""Reading a results file back: the schema and version check `emul compare` and `emul report`
share, and the tables a results document renders to (what `emul run` / `emul replay` print).

Only this emul's schema version is read. An older or newer file is refused with both versions
named rather than migrated: a silent migration would have to invent the fields version 2 added
(groups, baselines, p-values), and a figure that looks measured but was made up is worse than
a clear refusal.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emul.errors import InputError
from emul.report.results import SCHEMA, SCHEMA_VERSION

# keys every reader here relies on; anything else is optional (older runs of version 2 lack
# e.g. "control", replay runs add "replay_summary")
REQUIRED_KEYS = ("scenario", "machine", "profile", "repeats", "summary")


def results_path(arg: str | Path) -> Path:
    """A run argument: a results directory (its results.json) or the JSON file itself."""
    p = Path(arg)
    return p / "results.json" if p.is_dir() else p


def load_results(path: str | Path) -> dict[str, Any]:
    """The results document at ``path`` (a file or a run directory), checked: an emul results
    file of the version this emul reads. Anything else raises InputError (exit 2, one line)."""
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
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = repr(doc.get("schema")) if isinstance(doc, dict) else \
            f"a JSON {type(doc).__name__}"
        raise InputError(str(p), "schema", f"expected {SCHEMA!r}, found {found}: not an emul "
                         f"results file")
    version = doc.get("version")
    if version != SCHEMA_VERSION:
        why = ("written by an older emul; re-run its scenario to get a current file"
               if isinstance(version, int) and version < SCHEMA_VERSION
               else "written by a newer emul; read it with that version")
        raise InputError(str(p), "version", f"found results schema version {version}, this emul "
                         f"reads version {SCHEMA_VERSION} ({why})")
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise InputError(str(p), None, f"results file lacks {', '.join(missing)}: truncated or "
                         f"not written by emul")
    return doc


def is_replay(doc: dict) -> bool:
    return "replay_summary" in doc


def summary_tables(doc: dict) -> list:
    """The rich tables `emul run` / `emul replay` print for this document, from it alone."""
    from emul.report import results
    if is_replay(doc):
        from emul.replay.plan import replay_table
        trace = doc.get("trace") or {}
        title = (f"replay of {trace.get('where', '?')} — {trace.get('kills', '?')} kills, profile "
                 f"{doc['profile']['name']}, {doc['machine']['arch']}")
        return [replay_table(doc["replay_summary"], title), results.worker_table(doc),
                results.lock_table(doc)]
    from emul.report.verdict import verdict_table
    tables = [results.table(doc), verdict_table(doc), results.worker_table(doc)]
    if doc["scenario"].get("lockstat") or any(g.get("lockstat") for g in doc.get("groups") or []):
        tables.append(results.lock_table(doc))
    return tables


def write_summary(outdir: Path, tables: list, console=None) -> Path:
    """summary.txt (wide, so no column wraps) in outdir; the tables also go to console."""
    from rich.console import Console
    path = outdir / "summary.txt"
    with open(path, "w") as f:
        file_console = Console(file=f, width=220)
        for tbl in tables:
            if console is not None:
                console.print(tbl)
            file_console.print(tbl)
    return path


def render_plots(doc: dict, outdir: Path) -> list[Path]:
    """The run's plots, from the document alone: emul.plots.render_all when that module exists
    (it renders every plot), else the replay plot for a replay; paths written."""
    import importlib
    try:
        plots = importlib.import_module("emul.report.plots")
    except ModuleNotFoundError as exc:
        if exc.name != "emul.report.plots":
            raise            # emul.plots exists but is broken: a bug to see, not to skip
        plots = None
    if plots is not None:
        made = plots.render_all(doc, outdir)
        if isinstance(made, (str, Path)):
            return [Path(made)]
        return [Path(p) for p in made or []]
    if is_replay(doc) and any("replay" in r for r in doc["repeats"]):
        from emul.replay.plan import plot_replay
        return [plot_replay(doc, outdir / "replay.png")]
    return []
