"""Swap-out in the set-up phase: reclaim every chosen page of a process through zram's write path."""
from __future__ import annotations

from emul.kernel.mm import swap_out_range
from workers.base import Worker, run


def swapout(w: Worker, args: dict) -> None:
    for start, end, every_ppm in args["ranges"]:
        swap_out_range(w.zram, w.mm, w.ctx, int(start), int(end), int(every_ppm), w.page)


WORKER = Worker("swapout", {"swapout": swapout})

if __name__ == "__main__":
    run(WORKER)
