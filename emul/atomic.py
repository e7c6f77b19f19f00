"""Every file a command writes appears whole or not at all.

``with atomic(path) as tmp:`` writes into ``tmp`` (beside the file, so the rename stays on one
filesystem); leaving the block renames it over ``path``. Any failure (a full disk, a read-only
directory, an interrupt) removes the temporary file and re-raises: a SIGKILL or ENOSPC mid-write
leaves the earlier file or none, never a 0-byte PNG or half a JSON.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_SUFFIX = ".tmp"


def tmp_path(path: Path) -> Path:
    """The temporary name of path (``results.json`` -> ``results.json.tmp``); a plot keeps
    its own suffix last (``memory.tmp.png``) so matplotlib still knows the format."""
    if path.suffix == ".png":
        return path.with_name(f"{path.stem}{TMP_SUFFIX}.png")
    return path.with_name(path.name + TMP_SUFFIX)


@contextmanager
def atomic(path: Path | str) -> Iterator[Path]:
    path = Path(path)
    tmp = tmp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text(path: Path | str, text: str) -> Path:
    """path's content replaced by text, atomically (UTF-8; a character it cannot carry, such
    as a file name's undecodable byte, is replaced)."""
    with atomic(path) as tmp:
        with open(tmp, "w", encoding="utf-8", errors="replace") as f:
            f.write(text)
    return Path(path)


def leftover_tmp(outdir: Path) -> list[Path]:
    """Temporary files of an interrupted write in outdir (removed by the next run's claim)."""
    try:
        return [p for p in outdir.iterdir()
                if p.name.endswith(TMP_SUFFIX) or p.name.endswith(f"{TMP_SUFFIX}.png")]
    except OSError:
        return []
