"""The output directory of a run: created, held for this run alone, and never mixed.

``claim`` takes an exclusive lock (``.emul.lock``, flock, held until the process ends) so that two
runs given the same ``-o`` cannot interleave their files: the second is refused, naming the
first's pid. A directory that holds an earlier run's outputs is refused too, unless ``--force``
is given, which removes those outputs first (only emul's own file names: other files stay).
Without ``-o`` each run gets a fresh directory under results/.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from emul.errors import InputError, OutputFailed
from emul.atomic import leftover_tmp

LOCK_NAME = ".emul.lock"
OUTPUT_NAMES = ("results.json", "summary.txt", "trace.json", "run.log")
OUTPUT_SUFFIXES = (".png", ".csv")
_held: list[int] = []          # the locks of this process's output directories


def earlier_outputs(outdir: Path) -> list[Path]:
    """What an earlier run wrote in outdir (emul's own names only)."""
    try:
        entries = list(outdir.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if p.is_file() and (
        p.name in OUTPUT_NAMES or p.suffix in OUTPUT_SUFFIXES)) + leftover_tmp(outdir)


def claim(arg: str | None, default: Path, force: bool = False, keep: bool = False) -> Path:
    """The -o directory (or a fresh one under the command's default), created and locked for
    this run; an error if another live run holds it, or it holds an earlier run's outputs
    and force is not given. keep: a command that re-writes files in place (emul report into
    the run's own directory): earlier outputs stay, the default is used as it is."""
    outdir = Path(arg) if arg else (default if keep else _fresh(default))
    where = "-o" if arg else "output directory"
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(outdir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        what = outdir / LOCK_NAME if outdir.is_dir() else outdir
        raise OutputFailed(f"{where}: cannot create {what}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise InputError(where, None, f"{outdir} is in use by another emul run (pid {holder}); "
                         f"give each run its own directory") from None
    _held.append(fd)
    old = [] if keep else earlier_outputs(outdir)
    if old and not force:
        raise InputError(where, None, f"{outdir} holds the outputs of an earlier run ("
                         f"{', '.join(p.name for p in old[:4])}{', ...' if len(old) > 4 else ''}"
                         f"); give a new directory, or --force to replace them")
    try:
        for p in old:
            p.unlink()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        raise OutputFailed(f"{where}: cannot write in {outdir}: {exc.strerror}") from None
    return outdir


def _fresh(default: Path) -> Path:
    """default, or default-2, -3 ... if a run of the same second has it already."""
    path, k = default, 1
    while path.exists():
        k += 1
        path = default.with_name(f"{default.name}-{k}")
    return path
