"""emul: a multiprocess concurrency emulator of the Linux zram swap-slot freeing path."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

__version__ = "0.1.0"
# the directory that holds the emul and workers packages (a checkout, or site-packages): workers
# are started as `python -m workers <role>` with it on their path
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# the shipped scenarios and traces: package data, so an installed emul has them too (in a
# checkout, the top-level scenarios/ is a link to this directory)
SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"


def shipped(path: str) -> str:
    """A scenario or trace path as the user gave it: the file here if there is one, else, for a
    path under scenarios/, emul's own shipped copy (so `emul run scenarios/seed-swapin.yaml`
    works from any directory); else the path unchanged (the reader says it is missing)."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return path
    parts = p.parts
    if parts and parts[0] == "scenarios" and (SCENARIOS_DIR.joinpath(*parts[1:])).exists():
        return str(SCENARIOS_DIR.joinpath(*parts[1:]))
    return path


# the sources numba compiles or reads constants from; the rest of emul (cli, commands, report,
# most of the harness) can change without a fresh compile (tests/test_cachedir.py checks that
# every module with compiled code is here)
COMPILED_SOURCES = ("kernel", "strategies", "config", "harness/entrypoints.py",
                    "harness/microbench.py")


def compiled_sources(root: Path) -> list[Path]:
    """Every source file the numba cache depends on, in a fixed order."""
    paths: list[Path] = []
    for name in COMPILED_SOURCES:
        p = root / name
        paths.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    return paths


def _numba_cache_dir() -> str:
    """One numba cache per version of emul's compiled sources.

    numba checks only the timestamp of the file a cached function lives in, not of the modules
    it calls, so an edited strategy could run stale code. Keying the directory by a hash of
    every compiled source file makes any change there a fresh cache; workers inherit the same
    directory.
    """
    root = Path(__file__).parent
    h = hashlib.sha1()
    for path in compiled_sources(root):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return str(_numba_cache_base() / h.hexdigest()[:16])


def _cache_bases() -> list[tuple[Path, bool]]:
    """Where the compiled-code cache may live, best first, each with whether its parent must be
    private: the user's cache directory, then a directory of this user's own under the
    temporary directory (a service user without a writable HOME)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    home = Path(xdg) if xdg else Path(os.path.expanduser("~")) / ".cache"
    tmp = Path(os.environ.get("TMPDIR") or "/tmp") / f"emul-{os.getuid()}-cache"
    return [(home / "emul" / "numba", False), (tmp / "numba", True)]


def _usable(base: Path, private: bool = False) -> bool:
    """base exists or can be made, and this user can write a file there. With private, its
    parent must be this user's and closed to others: numba's cache files are pickles, so a
    directory others can write to would let them run code inside emul."""
    import tempfile
    try:
        if private:
            base.parent.mkdir(mode=0o700, exist_ok=True)
            st = base.parent.lstat()
            if st.st_uid != os.getuid() or st.st_mode & 0o077 or not base.parent.is_dir():
                return False
        base.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=base):
            pass
        return True
    except OSError:
        return False


def _numba_cache_base() -> Path:
    """The first usable base (checked at each call: the environment may change, as in the
    tests); the best one when none is (cache_problem says why)."""
    return _cache_base_and_problem()[0]


def _cache_base_and_problem() -> tuple[Path, str | None]:
    bases = _cache_bases()
    for base, private in bases:
        if _usable(base, private):
            return base, None
    return bases[0][0], ("no writable directory for the compiled-code cache: tried "
                         + " and ".join(str(b) for b, _ in bases)
                         + "; set XDG_CACHE_HOME (or NUMBA_CACHE_DIR) to one")


def cache_problem() -> str | None:
    """Why no compiled-code cache can be written (None: it can): the CLI says it in one line
    rather than let numba fall back to a cache beside the sources, keyed by file timestamps
    only, which would run stale code after an edit."""
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    if chosen and chosen != _DEFAULT_CACHE:
        if _usable(Path(chosen)):
            return None
        return f"NUMBA_CACHE_DIR={chosen} is not a directory this user can write to"
    return _cache_base_and_problem()[1]


_DEFAULT_CACHE = _numba_cache_dir()
os.environ.setdefault("NUMBA_CACHE_DIR", _DEFAULT_CACHE)
# numba's only cache is that directory: never its fallback beside the sources (__pycache__,
# keyed by file timestamps, the stale-code bug the hashed directory prevents)
os.environ.setdefault("NUMBA_CACHE_LOCATOR_CLASSES", "UserProvidedCacheLocator")


def prune_numba_caches(keep: int = 8, min_age_days: float = 3.0) -> int:
    """Remove emul's numba caches of old source versions (each edit of a strategy leaves one of
    10-40 MB): all but the ``keep`` most recently used, and only those unused for
    ``min_age_days``, so a run of another checkout in progress keeps its cache. Marks the
    current one used. Returns how many were removed; never raises."""
    import shutil
    import time
    current = Path(os.environ["NUMBA_CACHE_DIR"])
    base = current.parent
    if base not in [b for b, _ in _cache_bases()]:   # a directory the user chose: not ours
        return 0
    try:
        current.mkdir(parents=True, exist_ok=True)
        os.utime(current)
        dirs = sorted((d for d in base.iterdir()
                       if d.is_dir() and len(d.name) == 16
                       and all(c in "0123456789abcdef" for c in d.name)),
                      key=lambda d: d.stat().st_mtime, reverse=True)
    except OSError:
        return 0
    removed = 0
    cutoff = time.time() - min_age_days * 86400
    for d in dirs[keep:]:
        try:
            if d != current and d.stat().st_mtime < cutoff:
                shutil.rmtree(d)
                removed += 1
        except OSError:
            pass
    return removed
