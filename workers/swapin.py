"""The swap-in worker: a process touching its swapped-out memory (do_swap_page per page)."""
from __future__ import annotations

from emul.kernel.mm import swap_in_range
from workers.base import Worker, compile_for, run


def warm(w: Worker) -> None:
    compile_for(swap_in_range, w.zram, w.mm, w.ctx, 0, 0, w.page)


def swapin(w: Worker, args: dict) -> dict:
    """Fault each [start, end) back in; the phase's time is from the first fault to the last."""
    from emul.kernel.context import W_T_START
    first = None
    faulted = 0
    for start, end in args["ranges"]:
        faulted += swap_in_range(w.zram, w.mm, w.ctx, int(start), int(end), w.page)
        first = w.ctx.stat[W_T_START] if first is None else first
    if first is not None:
        w.ctx.stat[W_T_START] = first
    return {"faulted": int(faulted)}


WORKER = Worker("swapin", {"swapin": swapin}, warm)

if __name__ == "__main__":
    run(WORKER)
