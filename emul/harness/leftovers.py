"""What dead emul controllers left behind, swept at start-up; and emul runs live beside this one.

A controller unlinks its arena as soon as every worker has mapped it and removes its control
directory when it ends; only SIGKILL (the OOM killer, ``timeout -s KILL``, a CI cancel) in the
window before can leave them. Both names carry the controller's pid:

    /dev/shm/emul-[tag-]<pid>-<8 hex>          the arena (the controller also holds an flock
                                               on it while the name exists)
    $TMPDIR/emul-ctl-<pid>-<random>/           the control socket's directory

An entry is swept when it belongs to this user and its pid is not alive here. The arena's lock
makes this safe against a live controller in another pid namespace sharing /dev/shm: its pid
may not exist here, but its lock is held.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
from dataclasses import dataclass

import psutil

from emul.harness.arena import PREFIX, SHM_DIR
from emul.harness.control import CTL_PREFIX, control_bases

ARENA_NAME = re.compile(rf"^{PREFIX}(?:[A-Za-z0-9]{{1,16}}-)?(\d+)-[0-9a-f]{{8}}$")
CTL_NAME = re.compile(rf"^{CTL_PREFIX}(\d+)-")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True             # another user's process
    return True


def _ours_and_dead(path: str, pid: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return st.st_uid == os.getuid() and pid != os.getpid() and not pid_alive(pid)


def _unlocked(path: str) -> bool:
    """Nobody holds the arena's lock (its controller is gone, in whatever pid namespace)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def sweep() -> list[str]:
    """Remove the arenas and control directories of dead controllers; the paths removed.
    Never raises: a sweep that cannot look is no reason to refuse a run."""
    removed: list[str] = []
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        names = []
    for name in names:
        m = ARENA_NAME.match(name)
        path = os.path.join(SHM_DIR, name)
        if m and _ours_and_dead(path, int(m.group(1))) and _unlocked(path):
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
    for base in control_bases():
        try:
            entries = os.listdir(base)
        except OSError:
            continue
        for name in entries:
            m = CTL_NAME.match(name)
            path = os.path.join(base, name)
            if m and os.path.isdir(path) and _ours_and_dead(path, int(m.group(1))):
                shutil.rmtree(path, ignore_errors=True)
                if not os.path.exists(path):
                    removed.append(path)
    return removed


@dataclass(frozen=True)
class OtherRun:
    """An emul controller running beside this one, and the CPUs its workers are pinned to."""

    pid: int
    cpus: frozenset[int]


def other_runs() -> list[OtherRun]:
    """emul runs live on this machine other than this one: their workers (``python -m workers
    ROLE``) and the CPUs those are pinned to, grouped by controller."""
    me = os.getpid()
    found: dict[int, set[int]] = {}
    for p in psutil.process_iter(["cmdline", "ppid"]):
        cmd = p.info.get("cmdline") or []
        if "-m" not in cmd or p.info.get("ppid") in (None, me):
            continue
        module = cmd[cmd.index("-m") + 1] if cmd.index("-m") + 1 < len(cmd) else ""
        if module != "workers" and not module.startswith("workers."):
            continue
        try:
            cpus = p.cpu_affinity()
        except (psutil.Error, OSError):
            continue
        found.setdefault(p.info["ppid"], set()).update(cpus)
    return [OtherRun(pid, frozenset(c)) for pid, c in sorted(found.items())]


def sharing_warning(cpus: set[int]) -> str | None:
    """A warning line when another emul run's workers are pinned to any of these CPUs."""
    hits = [(r, sorted(r.cpus & cpus)) for r in other_runs()]
    hits = [(r, c) for r, c in hits if c]
    if not hits:
        return None
    what = "; ".join(f"pid {r.pid} on CPU {', '.join(map(str, c))}" for r, c in hits)
    return (f"another emul run is live on this run's CPUs ({what}): the two disturb each "
            f"other's figures; run one at a time, or pin them to different CPUs")
