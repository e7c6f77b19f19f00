"""The swap-in worker: a process touching its swapped-out memory (do_swap_page per page)."""
from __future__ import annotations

from emul.kernel.mm import swap_in_range
from workers.base import Worker, compile_for, run, run_ranges


def warm(w: Worker) -> None:
    compile_for(swap_in_range, w.zram, w.mm, w.ctx, 0, 0, w.page)


def swapin(w: Worker, args: dict) -> dict:
    return {"faulted": run_ranges(w, swap_in_range, args["ranges"], w.page)}


WORKER = Worker("swapin", {"swapin": swapin}, warm)

if __name__ == "__main__":
    run(WORKER)
