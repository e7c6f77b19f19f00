"""``emul farm``: one scenario on several hosts at once, through Dask distributed.

    identity.py   what a host is (runs on the host), and the same-emul / same-machine checks
    task.py       a cell: one `emul run` subprocess on a host (runs in the Dask worker)
    cluster.py    reaching the hosts: a scheduler's address, or SSH (Dask's SSH deployment)
    cells.py      a cell's state and what the run was asked (shared by command and progress)
    merge.py      the cells' results documents as one
    progress.py   a line per cell and an ETA
    command.py    the checks, the cells of --each and --spread, submit, watch, Ctrl-C, merge

Dask schedules; emul adds nothing of a scheduler's own. Each host's worker offers the resource
``emul=1`` and every cell asks for it, so a host runs at most one emul at a time.
"""
