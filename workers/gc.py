"""The zram GC worker: a kworker that runs the strategy's drain whenever work is queued."""
from __future__ import annotations

from emul.kernel.workqueue import gc_worker_run
from workers.base import Worker, compile_for, run

SLEEP_TIMEOUT_NS = 100_000_000   # a sleeping worker re-checks STOP at least this often


def warm(w: Worker) -> None:
    compile_for(gc_worker_run, w.zram, w.mm, w.ctx, SLEEP_TIMEOUT_NS)


def serve(w: Worker, args: dict) -> dict:
    gc_worker_run(w.zram, w.mm, w.ctx, SLEEP_TIMEOUT_NS)
    return {}


WORKER = Worker("gc", {"serve": serve}, warm)

if __name__ == "__main__":
    run(WORKER)
