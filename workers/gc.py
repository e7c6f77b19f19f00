"""The zram GC worker: a kworker that runs the strategy's drain whenever work is queued."""
from __future__ import annotations

from emul.kernel.gc_worker import gc_worker_run
from workers.base import Worker, run

SLEEP_TIMEOUT_NS = 100_000_000   # a sleeping worker re-checks STOP at least this often


def serve(w: Worker, args: dict) -> None:
    gc_worker_run(w.zram, w.mm, w.ctx, SLEEP_TIMEOUT_NS)


WORKER = Worker("gc", {"serve": serve})

if __name__ == "__main__":
    run(WORKER)
