"""A subreaper that starts an emul run, SIGKILLs its controller at a chosen moment, and reports
how long the run's workers outlived it (JSON on stdout).

    python tests/helpers/subreaper.py MOMENT CMD...

MOMENT: "spawned" (as soon as a worker process exists: it may not have set up its parent-death
signal yet) or "ready" (once every worker has attached the arena: the arena's name is gone).
Orphans are reparented to this process (PR_SET_CHILD_SUBREAPER), not to init, as under
systemd --user; it reaps them as they exit.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time

import psutil

PR_SET_CHILD_SUBREAPER = 36
LIMIT_S = 60.0


def workers_of(pid: int) -> list[psutil.Process]:
    try:
        return [c for c in psutil.Process(pid).children(recursive=True)
                if "workers" in " ".join(c.cmdline())]
    except psutil.Error:
        return []


def main() -> int:
    moment, cmd = sys.argv[1], sys.argv[2:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(json.dumps({"error": "prctl failed"}))
        return 1
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen: list[psutil.Process] = []
    if moment == "spawned":
        deadline = time.monotonic() + LIMIT_S
        while not seen and time.monotonic() < deadline and proc.poll() is None:
            seen = workers_of(proc.pid)
    else:
        for line in proc.stdout:                 # the first repeat: every worker is ready
            if "warm-up" in line or "repeat 1/" in line:
                seen = workers_of(proc.pid)
                break
    os.kill(proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    proc.wait()
    pids = {p.pid for p in seen}
    while pids and time.monotonic() - killed < LIMIT_S:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:    # the adopted orphans, once they exit
                pass
        except ChildProcessError:
            pass
        pids = {p for p in pids if psutil.pid_exists(p)
                and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
        time.sleep(0.01)
    for p in pids:                                   # never leave them running
        os.kill(p, signal.SIGKILL)
    print(json.dumps({"workers_seen": len(seen), "left_after_s": time.monotonic() - killed,
                      "still_alive": sorted(pids)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
