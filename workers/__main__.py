"""``python -m workers ROLE --parent PID ...``: the one way the supervisor starts a worker.

The parent-death signal is set up here, first, before the role's module is imported (importing
numba and the compiled paths takes ~0.5 s): a controller killed in that window would otherwise
leave a worker that nobody stops until its set-up times out. The check is against the pid of the
controller that started us, not against 1: under a subreaper (systemd --user, a container's
init, PR_SET_CHILD_SUBREAPER) an orphan's new parent is not init.
"""
from __future__ import annotations

import importlib
import sys

from workers.base import ROLES, die_with_parent, parent_arg


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ROLES:
        print(f"usage: python -m workers {{{','.join(ROLES)}}} --parent PID ...", file=sys.stderr)
        return 2
    die_with_parent(parent_arg(argv))
    role = importlib.import_module(f"workers.{argv[0]}")
    return role.WORKER.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
