"""emul's numba cache: one directory per version of the sources, old versions pruned."""
from __future__ import annotations

import os
import time

from emul import prune_numba_caches

DAY = 86400


def make_versions(base, names, age_days):
    for name in names:
        d = base / name
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "x.nbi").write_bytes(b"x")
        t = time.time() - age_days * DAY
        os.utime(d, (t, t))


def test_prunes_old_versions_beyond_the_newest_eight(tmp_path, monkeypatch):
    base = tmp_path / "emul" / "numba"
    old = [f"{i:016x}" for i in range(10)]
    recent = [f"{i:016x}" for i in range(100, 102)]
    make_versions(base, old, age_days=10)
    make_versions(base, recent, age_days=0.5)
    (base / "notes").mkdir()                           # not a cache version: never touched
    os.utime(base / "notes", (0, 0))
    current = base / ("f" * 16)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(current))

    removed = prune_numba_caches(keep=8, min_age_days=3)

    left = sorted(d.name for d in base.iterdir())
    # kept: the current one, the two recent, and the five newest of the old ones
    assert removed == 5
    assert current.is_dir() and "notes" in left
    assert set(recent) <= set(left)
    assert len([n for n in left if n in old]) == 5


def test_recent_versions_are_kept_even_beyond_eight(tmp_path, monkeypatch):
    base = tmp_path / "emul" / "numba"
    names = [f"{i:016x}" for i in range(12)]
    make_versions(base, names, age_days=1)             # another checkout may be running these
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(base / names[0]))
    assert prune_numba_caches(keep=8, min_age_days=3) == 0
    assert sorted(d.name for d in base.iterdir()) == names


def test_a_cache_directory_the_user_chose_is_left_alone(tmp_path, monkeypatch):
    mine = tmp_path / "my-numba-cache"
    make_versions(tmp_path, [f"{i:016x}" for i in range(12)], age_days=30)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(mine))
    assert prune_numba_caches(keep=1, min_age_days=0) == 0
    assert len(list(tmp_path.iterdir())) == 12


def test_every_module_with_compiled_code_keys_the_cache():
    """The cache is keyed by COMPILED_SOURCES only: a module outside them that holds an njit
    function would run stale machine code after an edit."""
    import re
    from pathlib import Path

    import emul
    root = Path(emul.__file__).parent
    keyed = set(emul.compiled_sources(root))
    compiled = {p for p in root.rglob("*.py") if re.search(r"@njit|\bnjit\(|@cfunc",
                                                           p.read_text())}
    assert compiled, "no compiled module found: the pattern is stale"
    assert compiled <= keyed, sorted(str(p.relative_to(root)) for p in compiled - keyed)
