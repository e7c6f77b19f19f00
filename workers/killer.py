"""The killer: a dying process's exit path, zapping its VMAs (exit_mmap -> unmap_vmas)."""
from __future__ import annotations

from emul.kernel.mm import unmap_vma
from workers.base import Worker, compile_for, run


def warm(w: Worker) -> None:
    compile_for(unmap_vma, w.zram, w.mm, w.ctx, 0, 0)


def unmap(w: Worker, args: dict) -> dict:
    """Unmap each [start, end) in turn; the phase's time is from the first to the last PTE."""
    from emul.kernel.context import W_T_END, W_T_START
    first = None
    for start, end in args["ranges"]:
        unmap_vma(w.zram, w.mm, w.ctx, int(start), int(end))
        first = w.ctx.stat[W_T_START] if first is None else first
    if first is not None:
        w.ctx.stat[W_T_START] = first
    return {"t_start": int(w.ctx.stat[W_T_START]), "t_end": int(w.ctx.stat[W_T_END])}


WORKER = Worker("killer", {"unmap": unmap}, warm)

if __name__ == "__main__":
    run(WORKER)
