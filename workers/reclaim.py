"""The reclaim worker (kswapd / direct reclaim) cycling a background process's pages through zram."""
from __future__ import annotations

from emul.kernel.mm import reclaim_run
from workers.base import Worker, run


def reclaim(w: Worker, args: dict) -> None:
    reclaim_run(w.zram, w.mm, w.ctx, w.ctl, int(args["start"]), int(args["end"]), w.page)


WORKER = Worker("reclaim", {"reclaim": reclaim})

if __name__ == "__main__":
    run(WORKER)
