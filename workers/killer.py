"""The killer: a dying process's exit path, zapping its VMAs (exit_mmap -> unmap_vmas); in a
replay, one of lmkd's reaper threads taking kills off the storm's schedule."""
from __future__ import annotations

import numpy as np

from emul.kernel.context import W_T_END, W_T_START
from emul.kernel.mm import unmap_vma
from emul.kernel.replay import reap_run
from workers.base import Worker, compile_for, run, run_ranges


def warm(w: Worker) -> None:
    compile_for(unmap_vma, w.zram, w.mm, w.ctx, 0, 0)
    one = np.zeros(1, dtype=np.int64)
    compile_for(reap_run, w.zram, w.mm, w.ctx, w.ctl, one, one, 0)


def unmap(w: Worker, args: dict) -> dict:
    run_ranges(w, unmap_vma, args["ranges"])
    return {"t_start": int(w.ctx.stat[W_T_START]), "t_end": int(w.ctx.stat[W_T_END])}


def reap(w: Worker, args: dict) -> dict:
    ranges = np.asarray(args["ranges"], dtype=np.int64).reshape(-1, 2)
    n = reap_run(w.zram, w.mm, w.ctx, w.ctl, np.ascontiguousarray(ranges[:, 0]),
                 np.ascontiguousarray(ranges[:, 1]), int(args["ticks_per_us"]))
    return {"kills": int(n), "t_start": int(w.ctx.stat[W_T_START]),
            "t_end": int(w.ctx.stat[W_T_END])}


WORKER = Worker("killer", {"unmap": unmap, "reap": reap}, warm)

if __name__ == "__main__":
    run(WORKER)
