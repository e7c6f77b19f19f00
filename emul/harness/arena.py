"""The arena: one shared-memory file per run holding every array of the emulated kernel.

The controller creates it (``/dev/shm/emul-<pid>-<token>``, mode 0600, O_EXCL) from a
:class:`~emul.kernel.layout.Layout`; workers attach by name with the same layout and get numpy
views of the same pages. Only the controller unlinks, and exactly once: as soon as every worker has attached (from
then on nothing in /dev/shm can be left behind, whatever dies), or in its cleanup otherwise.
``multiprocessing.shared_memory`` is not used: its resource tracker may unlink a segment when a
process that only attached it exits (Python < 3.13).
"""
from __future__ import annotations

import fcntl
import mmap
import os
import secrets

import numpy as np

from emul.errors import OutputFailed
from emul.kernel.layout import Layout  # noqa: F401  (workers attach with Arena and Layout)

SHM_DIR = "/dev/shm"
MAP_NORESERVE = 0x4000        # Linux's value; the mmap module does not export it
PREFIX = "emul-"


class Arena:
    """A mapped arena; ``arena[name]`` is the numpy view of one array."""

    def __init__(self, name: str, layout: Layout, fd: int, owner: bool,
                 mapping: mmap.mmap | None = None) -> None:
        self.name, self.layout, self.owner = name, layout, owner
        if mapping is None:
            mapping = mmap.mmap(fd, layout.size, mmap.MAP_SHARED,
                                mmap.PROT_READ | mmap.PROT_WRITE)
            os.close(fd)
        self._map = mapping
        self._lock_fd = -1        # the creator's flock while the name exists (the sweep's test)
        self._unlinked = False
        self.views: dict[str, np.ndarray] = {}
        for key, (dt, shape, offset) in layout.arrays.items():
            count = int(np.prod(shape, dtype=np.int64))
            self.views[key] = np.frombuffer(self._map, dtype=np.dtype(dt), count=count,
                                            offset=offset).reshape(shape)

    @property
    def path(self) -> str:
        return os.path.join(SHM_DIR, self.name)

    @classmethod
    def create(cls, layout: Layout) -> "Arena":
        # EMUL_ARENA_TAG (letters and digits) lets a test runner tell its runs' arenas apart
        tag = "".join(c for c in os.environ.get("EMUL_ARENA_TAG", "") if c.isalnum())[:16]
        name = f"{PREFIX}{tag + '-' if tag else ''}{os.getpid()}-{secrets.token_hex(4)}"
        path = os.path.join(SHM_DIR, name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise OutputFailed(f"cannot create the arena in {SHM_DIR}: {exc.strerror}") from None
        lock_fd = -1
        try:
            lock_fd = os.dup(fd)
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            # reserve the pages now: on a too-small tmpfs a later write would be a SIGBUS
            os.posix_fallocate(fd, 0, layout.size)
            arena = cls(name, layout, fd, owner=True)
            arena._lock_fd = lock_fd
            return arena
        except BaseException as exc:
            for f in (fd, lock_fd):
                try:
                    os.close(f)
                except OSError:
                    pass
            os.unlink(path)
            if isinstance(exc, OSError):
                raise OutputFailed(f"cannot create the {layout.size / 2**20:.0f} MiB arena in "
                                f"{SHM_DIR}: {exc.strerror}") from None
            raise

    @classmethod
    def scratch(cls, layout: Layout) -> "Arena":
        """The layout in private anonymous memory that is never touched: what the compiler
        needs (the arrays' types), with nothing in /dev/shm while numba compiles (~45 s after a
        source change), so a controller killed then leaves nothing behind."""
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE
        return cls("scratch", layout, -1, owner=False, mapping=mmap.mmap(-1, layout.size, flags))

    @classmethod
    def attach(cls, name: str, layout: Layout) -> "Arena":
        if "/" in name or not name.startswith(PREFIX):
            raise ValueError(f"not an emul arena name: {name!r}")
        fd = os.open(os.path.join(SHM_DIR, name), os.O_RDWR)
        return cls(name, layout, fd, owner=False)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.views[key]

    def unlink(self) -> None:
        """Remove the name from /dev/shm (mappings stay valid). Controller only; idempotent."""
        if not self.owner or self._unlinked:
            return
        self._unlinked = True
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def close(self) -> None:
        self.views.clear()
        try:
            self._map.close()
        except BufferError:
            pass  # a view is still referenced somewhere; the mapping goes with the process
