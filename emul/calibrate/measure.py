"""The measurement: every workload in fresh children (emul/calibrate/child.py), ``--repeats``
times, the workloads interleaved within a repeat; medians in ns per page.

``unmap-zero``
    ``munmap`` of N MiB whose PTEs all map the shared zero page (``MADV_POPULATE_READ`` on
    untouched memory): the page-table walk and PTE clear with no folio and no swap entry behind
    them. It splits the resident unmap into ``zap_pte`` and ``free_folio``.
``unmap-resident``
    ``munmap`` of N MiB of written (resident) pages.
``unmap-swapped``
    ``munmap`` of N MiB pushed to zram with ``MADV_PAGEOUT`` first. Before the timer starts, the
    child checks ``VmSwap`` (at least 99 % of the pages must be in swap) and the parent checks
    that zram's ``mm_stat`` grew by as many pages (they went to zram, not to another device).
    The timing covers the ``munmap`` call alone. ``MADV_PAGEOUT``'s own time is kept too
    (``pageout``: swap-out per page, used for ``compress_kib``).
``swapin`` / ``swapin-same``
    N MiB pushed to zram, then faulted back with one ``MADV_POPULATE_READ`` (timed alone):
    ``do_swap_page`` per page, which frees the swap entry. ``swapin`` uses the data pages
    (emul/calibrate/data.py); ``swapin-same`` pages filled with one byte (ZRAM_SAME), which
    splits the swap-in into ``fault`` and ``decompress``.
``concurrent-k``
    k processes, pinned to k CPUs (k = 1 .. min(4, CPUs)), each with N MiB in zram, unmap at
    once: the parent writes a start time 50 ms ahead into shared memory and wakes them (an
    Event); each spins on its own CPU until the clock reaches it. Per-process times and the
    wall time (first start to last end, CLOCK_MONOTONIC) are kept. Not used in the fit: it is
    the out-of-sample check of the emulator.

A run whose timed call lost its CPU (an involuntary context switch: another task took it) or,
for k > 1, whose starts lie more than 5 % of the unmap time apart, is run again, up to 3 times
(as ``emul bench`` does); if every try was disturbed, the one that finished soonest is kept and
the progress line says PREEMPTED. The median is then taken over the undisturbed repeats when
there are at least two (preemption only adds time), else over all.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from emul.calibrate.child import MIN_SWAPPED, Task, run_child
from emul.calibrate.data import DATA_COMPRESSION_RATIO, DATA_SPREAD
from emul.calibrate.host import Host, mm_stat
from emul.errors import RunAborted, SystemNotReady

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

WORKLOADS = ("unmap-zero", "unmap-resident", "unmap-swapped", "swapin", "swapin-same")
MAX_CONCURRENT = 4
ATTEMPTS = 3                     # runs of a measurement before a preempted one is accepted
START_AHEAD_NS = 50_000_000      # the common start: far enough ahead for every child to spin


class Measurer:
    """Runs the children; checks zram's mm_stat around every swap-out."""

    def __init__(self, host: Host, device: str, mib: int, page_size: int,
                 progress: Callable[[str], None]) -> None:
        self.host, self.device, self.page_size = host, device, page_size
        self.nbytes = mib << 20
        self.npages = self.nbytes // page_size
        self.progress = progress
        self.ratios: list[float] = []
        self.comp_lens: list[float] = []
        self.seed = 1
        import multiprocessing
        self.mp = multiprocessing.get_context("fork")

    def run(self, kind: str, cpus: list[int]) -> list[dict]:
        """One child per CPU, started together; each child's figures."""
        mp = self.mp
        arm, go = mp.Event(), mp.RawValue("q", 0)
        procs, conns = [], []
        before = mm_stat(self.host, self.device)
        try:
            for cpu in cpus:
                parent, child = mp.Pipe()
                self.seed += 1
                task = Task(kind, self.nbytes, self.page_size, cpu, self.seed)
                p = mp.Process(target=run_child, args=(task, child, arm, go), daemon=True)
                p.start()
                child.close()
                procs.append(p)
                conns.append(parent)
            ready = [self._recv(c, p, "ready") for c, p in zip(conns, procs)]
            if kind not in ("unmap-zero", "unmap-resident"):
                self._check_zram(before, len(cpus), kind)
            # the children spin until then on their own CPUs, so the start does not wait for
            # this process to be scheduled
            go.value = time.clock_gettime_ns(time.CLOCK_MONOTONIC) + START_AHEAD_NS
            arm.set()
            done = [self._recv(c, p, "done") for c, p in zip(conns, procs)]
            for p in procs:
                p.join(30)
            for r, d in zip(ready, done):
                d.update({k: v for k, v in r.items() if k not in d})
            return done
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join(10)
            for c in conns:
                c.close()

    def _recv(self, conn: Connection, proc: BaseProcess, want: str) -> dict:
        deadline = time.monotonic() + 600
        while not conn.poll(0.2):
            if not proc.is_alive() and not conn.poll(0):
                raise RunAborted(f"a measuring child died (exit {proc.exitcode})")
            if time.monotonic() > deadline:
                raise RunAborted("a measuring child did not answer in 600 s")
        kind, payload = conn.recv()
        if kind == "error":
            if payload.startswith("SystemNotReady: "):
                raise SystemNotReady(payload.split(": ", 1)[1])
            raise RunAborted(f"measuring child failed: {payload}")
        if kind != want:
            raise RunAborted(f"measuring child said {kind!r}, expected {want!r}")
        return payload

    def _check_zram(self, before: dict, nproc: int, kind: str) -> None:
        """The pages in swap went to this zram device (and, same-filled, as ZRAM_SAME); the
        compression it achieved, for the emulated runs."""
        after = mm_stat(self.host, self.device)
        stored = (after["orig_data_size"] - before["orig_data_size"]) // self.page_size
        want = nproc * self.npages
        if stored < MIN_SWAPPED * want:
            raise SystemNotReady(
                f"the pages reached swap (VmSwap) but /dev/{self.device} stored only {stored} of "
                f"{want} (mm_stat): they went to another swap device. See /proc/swaps")
        if kind == "swapin-same":
            same = after["same_pages"] - before["same_pages"]
            if same < MIN_SWAPPED * want:
                raise RunAborted(f"zram stored {same} of {want} one-byte pages as same-filled")
        else:
            compr = after["compr_data_size"] - before["compr_data_size"]
            if compr > 0:
                self.ratios.append(stored * self.page_size / compr)
                self.comp_lens.append(compr / stored)


def clean_median(values: list[float], clean: list[bool]) -> tuple[float, int]:
    """Median of the undisturbed samples when there are at least two (preemption only adds
    time), else of all; and how many were used as clean (0: all were used)."""
    ok = [v for v, c in zip(values, clean) if c]
    if len(ok) >= 2:
        return statistics.median(ok), len(ok)
    return statistics.median(values), 0


def _wall_ns(res: list[dict]) -> int:
    """First start to last end."""
    return max(x["t1"] for x in res) - min(x["t0"] for x in res)


def _start_skew_ns(res: list[dict]) -> int:
    t0s = [x["t0"] for x in res]
    return max(t0s) - min(t0s)


class Repeats:
    """The samples of every repeat, how many runs kept their CPU, and the progress lines."""

    def __init__(self, m: Measurer, cpus: list[int], kmax: int,
                 progress: Callable[[str], None]) -> None:
        self.m, self.cpus, self.progress = m, cpus, progress
        self.samples: dict[str, list[float]] = {w: [] for w in WORKLOADS}
        self.samples["pageout"] = []
        self.clean: dict[str, list[bool]] = {w: [] for w in self.samples}
        self.conc: dict[int, dict[str, list]] = {
            k: {"per_process_ns": [], "wall_ns": [], "involuntary": [], "start_skew_ns": []}
            for k in range(1, kmax + 1)}
        self.retried = {"clean": 0, "preempted": 0}

    def attempt(self, kind: str, k: int) -> list[dict]:
        """Up to ATTEMPTS runs: the first whose timed call kept its CPU (no involuntary
        context switch) and, for k > 1, whose starts lie within 5 % of the time each took;
        else the one that ended soonest after its first start (preemption only adds time)."""
        tries = []
        for _ in range(ATTEMPTS):
            res = self.m.run(kind, self.cpus[:k])
            clean = (all(x["involuntary"] == 0 for x in res)
                     and _start_skew_ns(res) <= 0.05 * statistics.median(x["ns"] for x in res))
            if clean:
                self.retried["clean"] += 1
                return res
            tries.append(res)
        self.retried["preempted"] += 1
        return min(tries, key=_wall_ns)

    def single(self, r: int, repeats: int, w: str) -> None:
        """Workload ``w`` in one process: its sample, and a progress line."""
        res = self.attempt(w, 1)[0]
        self.samples[w].append(res["ns_per_page"])
        self.clean[w].append(res["involuntary"] == 0)
        extra = ""
        if "pageout_ns" in res:
            if w == "unmap-swapped":
                self.samples["pageout"].append(res["pageout_ns"])
                self.clean["pageout"].append(True)     # not timed for preemption
            extra = (f" ({100 * res['swapped_fraction']:.1f}% swapped, pageout "
                     f"{res['pageout_ns']:.0f} ns/page)")
        if w.startswith("swapin"):
            extra += f", {res['swap_left_kb']} kB left in swap"
            if not res["content_ok"]:
                raise RunAborted(f"{w}: the pages read back do not hold what was written")
        if res["involuntary"]:
            extra += f", PREEMPTED {res['involuntary']}x in every try"
        self.progress(f"repeat {r}/{repeats}: {w:15} {res['ns'] / 1e6:8.2f} ms, "
                      f"{res['ns_per_page']:6.0f} ns/page{extra}")

    def concurrent(self, r: int, repeats: int, k: int) -> None:
        """k processes unmapping at once: their times, the wall time, and a progress line."""
        res = self.attempt("concurrent", k)
        wall = _wall_ns(res)
        per = [x["ns"] for x in res]
        inv = [x["involuntary"] for x in res]
        skew = _start_skew_ns(res)
        rec = self.conc[k]
        rec["per_process_ns"].append(per)
        rec["wall_ns"].append(wall)
        rec["involuntary"].append(inv)
        rec["start_skew_ns"].append(skew)
        self.progress(f"repeat {r}/{repeats}: {k} unmapping at once on CPUs "
                      f"{','.join(str(c) for c in self.cpus[:k])}: wall {wall / 1e6:.2f} ms, "
                      "each " + " / ".join(f"{p / 1e6:.2f}" for p in per)
                      + f" ms (starts within {skew / 1e3:.0f} us)"
                      + (f", PREEMPTED in every try ({inv})" if any(inv) else ""))

    def medians(self) -> tuple[dict[str, float], dict[str, int]]:
        """Per workload the clean median and how many repeats it used; the concurrent
        medians are added to their sample records."""
        med, used = {}, {}
        for w, v in self.samples.items():
            if v:
                med[w], used[w] = clean_median(v, self.clean[w])
        for v in self.conc.values():
            ok = [not any(inv) for inv in v["involuntary"]]
            v["wall_ns_median"], v["clean_repeats"] = clean_median(v["wall_ns"], ok)
            v["per_process_median"], _ = clean_median([statistics.median(x) for x in
                                                       v["per_process_ns"]], ok)
        return med, used


def measure(host: Host, device: str, mib: int, repeats: int, cpus: list[int],
            progress: Callable[[str], None]) -> dict:
    """Every workload ``repeats`` times; returns medians (ns/page) and the raw samples."""
    page_size = os.sysconf("SC_PAGE_SIZE")
    m = Measurer(host, device, mib, page_size, progress)
    kmax = min(MAX_CONCURRENT, len(cpus))
    rep = Repeats(m, cpus, kmax, progress)
    for r in range(1, repeats + 1):
        for w in WORKLOADS:
            rep.single(r, repeats, w)
        for k in range(1, kmax + 1):
            rep.concurrent(r, repeats, k)
    return _summary(m, rep, device, mib, repeats, cpus[:kmax])


def _summary(m: Measurer, rep: Repeats, device: str, mib: int, repeats: int,
             cpus: list[int]) -> dict:
    """The measurement record the fit, the profile and the comparison read."""
    med, used = rep.medians()
    ratio = statistics.median(m.ratios) if m.ratios else DATA_COMPRESSION_RATIO
    comp_len = statistics.median(m.comp_lens) if m.comp_lens else m.page_size / ratio
    return {
        "page_size": m.page_size, "mib": mib, "pages": m.npages, "repeats": repeats,
        "cpus": cpus, "device": device,
        "ns_per_page": med, "samples": rep.samples,
        "compression_ratio": ratio, "comp_len_mean": comp_len, "spread": DATA_SPREAD,
        "clean_runs": rep.retried["clean"], "preempted_runs": rep.retried["preempted"],
        "clean_repeats": used,
        "concurrent": {str(k): {
            "wall_ns": v["wall_ns_median"],
            "per_process_ns": v["per_process_median"],
            "wall_ns_per_page": v["wall_ns_median"] / m.npages,
            "clean_repeats": v["clean_repeats"],
            "samples": v} for k, v in rep.conc.items()},
    }
