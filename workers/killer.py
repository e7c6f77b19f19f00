"""The killer: a dying process's exit path, zapping its VMAs (exit_mmap -> unmap_vmas)."""
from __future__ import annotations

from emul.kernel.context import W_T_END, W_T_START
from emul.kernel.mm import unmap_vma
from workers.base import Worker, compile_for, run, run_ranges


def warm(w: Worker) -> None:
    compile_for(unmap_vma, w.zram, w.mm, w.ctx, 0, 0)


def unmap(w: Worker, args: dict) -> dict:
    run_ranges(w, unmap_vma, args["ranges"])
    return {"t_start": int(w.ctx.stat[W_T_START]), "t_end": int(w.ctx.stat[W_T_END])}


WORKER = Worker("killer", {"unmap": unmap}, warm)

if __name__ == "__main__":
    run(WORKER)
