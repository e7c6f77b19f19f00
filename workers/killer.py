"""The killer: a dying process's exit path, zapping its VMAs (exit_mmap -> unmap_vmas); in a
replay, one of lmkd's reaper threads taking kills off the storm's schedule."""
from __future__ import annotations

import numpy as np

from emul.kernel.mm import unmap_vma
from emul.kernel.replay import reap_run
from workers.base import Worker, run, run_ranges


def unmap(w: Worker, args: dict) -> None:
    run_ranges(w, unmap_vma, args["ranges"])


def reap(w: Worker, args: dict) -> None:
    ranges = np.asarray(args["ranges"], dtype=np.int64).reshape(-1, 2)
    reap_run(w.zram, w.mm, w.ctx, w.ctl, np.ascontiguousarray(ranges[:, 0]),
             np.ascontiguousarray(ranges[:, 1]), int(args["ticks_per_us"]))


WORKER = Worker("killer", {"unmap": unmap, "reap": reap})

if __name__ == "__main__":
    run(WORKER)
