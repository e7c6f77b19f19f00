"""emul: a multiprocess concurrency emulator of the Linux zram swap-slot freeing path."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

__version__ = "0.1.0"


def _numba_cache_dir() -> str:
    """One numba cache per version of emul's sources.

    numba checks only the timestamp of the file a cached function lives in, not of the modules
    it calls, so an edited strategy could run stale code. Keying the directory by a hash of every
    source file makes any change a fresh cache; workers inherit the same directory.
    """
    root = Path(__file__).parent
    h = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emul" / "numba"
    return str(base / h.hexdigest()[:16])


os.environ.setdefault("NUMBA_CACHE_DIR", _numba_cache_dir())
