"""The reclaim worker (kswapd / direct reclaim) cycling a background process's pages through zram."""
from __future__ import annotations

from emul.kernel.mm import reclaim_run
from workers.base import Worker, compile_for, run


def warm(w: Worker) -> None:
    compile_for(reclaim_run, w.zram, w.mm, w.ctx, w.ctl, 0, 0, w.page)


def reclaim(w: Worker, args: dict) -> dict:
    reclaim_run(w.zram, w.mm, w.ctx, w.ctl, int(args["start"]), int(args["end"]), w.page)
    return {}


WORKER = Worker("reclaim", {"reclaim": reclaim}, warm)

if __name__ == "__main__":
    run(WORKER)
