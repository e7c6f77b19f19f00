"""Swap-out in the set-up phase: reclaim every chosen page of a process through zram's write path."""
from __future__ import annotations

from emul.kernel.mm import swap_out_range
from workers.base import Worker, compile_for, run


def warm(w: Worker) -> None:
    compile_for(swap_out_range, w.zram, w.mm, w.ctx, 0, 0, 0, w.page)


def swapout(w: Worker, args: dict) -> dict:
    stored = 0
    for start, end, every_ppm in args["ranges"]:
        stored += swap_out_range(w.zram, w.mm, w.ctx, int(start), int(end), int(every_ppm), w.page)
    return {"stored": int(stored)}


WORKER = Worker("swapout", {"swapout": swapout}, warm)

if __name__ == "__main__":
    run(WORKER)
