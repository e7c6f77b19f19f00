"""The swap-in worker: a process touching its swapped-out memory (do_swap_page per page)."""
from __future__ import annotations

from emul.kernel.mm import swap_in_range
from workers.base import Worker, run, run_ranges


def swapin(w: Worker, args: dict) -> None:
    run_ranges(w, swap_in_range, args["ranges"], w.page)


WORKER = Worker("swapin", {"swapin": swapin})

if __name__ == "__main__":
    run(WORKER)
