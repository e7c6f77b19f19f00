"""One measuring child: a fresh forked process pinned to one CPU that maps, fills and (for the
swap workloads) pages out N MiB, then times a single call.

Anonymous memory from ``mmap``, ``MADV_NOHUGEPAGE`` so every page is a base-page folio and a
PTE. The timed call is ``munmap`` (the unmap workloads) or one ``MADV_POPULATE_READ`` (swap-in),
and nothing else: the set-up is over before the child reports "ready", and the start is a time
the parent wrote into shared memory, which the child spins for on its own CPU (so k children
start together without waiting for the parent to be scheduled). The child counts its
involuntary context switches around the call: another task took its CPU, the figure is
disturbed. Protocol on the pipe: ("ready", info), then ("done", info) or ("error", text).
"""
from __future__ import annotations

import ctypes
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emul.calibrate.data import check_data, check_same, fill_data, fill_same
from emul.calibrate.host import libc
from emul.harness.priority import boost
from emul.errors import SystemNotReady

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.synchronize import Event

    import psutil

MADV_NOHUGEPAGE = 15
MADV_PAGEOUT = 21
MADV_POPULATE_READ = 22
PROT_READ, PROT_WRITE = 0x1, 0x2
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
EINVAL = 22

MIN_SWAPPED = 0.99               # fraction of the pages that must reach swap / zram
PAGEOUT_TRIES = 5                # MADV_PAGEOUT may leave some pages resident: ask again


@dataclass(frozen=True)
class Task:
    kind: str                    # one of WORKLOADS, or "concurrent"
    nbytes: int
    page_size: int
    cpu: int
    seed: int


def _vm_kb(field_: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_ + ":"):
                return int(line.split()[1])
    return 0


class Mapping:
    """``nbytes`` of private anonymous memory without huge pages, seen as an array of pages;
    the calls on it are the ones measured."""

    def __init__(self, nbytes: int, page_size: int) -> None:
        import numpy as np
        self.libc = lib = libc()
        lib.mmap.restype = ctypes.c_void_p
        lib.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                             ctypes.c_int, ctypes.c_long]
        lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.n, self.npages = nbytes, nbytes // page_size
        addr = lib.mmap(None, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap of {nbytes} bytes failed")
        self.addr = addr
        lib.madvise(addr, nbytes, MADV_NOHUGEPAGE)  # EINVAL without THP: nothing to prevent then
        self.arr = np.frombuffer((ctypes.c_uint8 * nbytes).from_address(addr),
                                 dtype=np.uint8).reshape(self.npages, page_size)

    def populate_read(self) -> None:
        """Fault every page in for reading: the zero page on untouched memory, a swap-in on
        swapped-out memory."""
        if self.libc.madvise(self.addr, self.n, MADV_POPULATE_READ) != 0:
            e = ctypes.get_errno()
            if e != EINVAL:    # EINVAL: a kernel before 5.14 -- touch every page instead
                raise OSError(e, f"madvise(MADV_POPULATE_READ): {os.strerror(e)}")
            int(self.arr[:, 0].sum())

    def page_out(self) -> None:
        if self.libc.madvise(self.addr, self.n, MADV_PAGEOUT) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"madvise(MADV_PAGEOUT): {os.strerror(e)}"
                          + (" (Linux 5.4 or later needed)" if e == EINVAL else ""))

    def unmap(self) -> int:
        return self.libc.munmap(self.addr, self.n)


def run_child(task: Task, conn: Connection, arm: Event, go: ctypes.c_int64) -> None:
    """The child process: measure, and report the figures or the failure as text (an
    exception object may not survive the pipe)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        conn.send(("done", _child_body(task, conn, arm, go)))
    except BaseException as exc:     # noqa: BLE001 - reported to the parent as text
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass
    finally:
        conn.close()


def _child_body(task: Task, conn: Connection, arm: Event, go: ctypes.c_int64) -> dict:
    import psutil
    me = psutil.Process()
    me.cpu_affinity([task.cpu])
    boost()
    m = Mapping(task.nbytes, task.page_size)
    info: dict = {"cpu": task.cpu}
    _fill(task, m)
    info["rss_kb"] = _vm_kb("VmRSS")
    if task.kind not in ("unmap-zero", "unmap-resident"):
        _page_out(m, info)
    conn.send(("ready", info))
    _wait_start(arm, go)
    info.update(_timed_call(task, m, me))
    return info


def _fill(task: Task, m: Mapping) -> None:
    """The pages' contents: zero-page PTEs, one byte value, or the data profile."""
    if task.kind == "unmap-zero":
        m.populate_read()
    elif task.kind == "swapin-same":
        fill_same(m.arr)
    else:
        fill_data(m.arr, task.seed, task.page_size)


def _page_out(m: Mapping, info: dict) -> None:
    """MADV_PAGEOUT until (nearly) every page is in swap as VmSwap counts; the first call's
    time per page is kept (``pageout``: swap-out per page, for compress_kib)."""
    swap0 = _vm_kb("VmSwap")
    t0 = time.perf_counter_ns()
    for attempt in range(PAGEOUT_TRIES):
        m.page_out()
        if attempt == 0:
            info["pageout_ns"] = (time.perf_counter_ns() - t0) / m.npages
        got = (_vm_kb("VmSwap") - swap0) * 1024 / m.n
        if got >= 0.999:
            break
    info["swapped_fraction"] = got
    if got < MIN_SWAPPED:
        raise SystemNotReady(
            f"MADV_PAGEOUT put only {100 * got:.1f}% of the pages in swap (VmSwap): is swap "
            "full, or limited for this cgroup (memory.swap.max)?")


def _wait_start(arm: Event, go: ctypes.c_int64) -> None:
    """Woken together, then each spins on its own CPU until the start time."""
    arm.wait(600)
    while time.clock_gettime_ns(time.CLOCK_MONOTONIC) < go.value:
        pass


def _timed_call(task: Task, m: Mapping, me: psutil.Process) -> dict:
    """The measured call alone between the two clock reads; the context switches are counted
    around it (and, for swap-in, the read-back check and the unmap after it)."""
    before = me.num_ctx_switches()
    out: dict = {}
    if task.kind.startswith("swapin"):
        t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        m.populate_read()
        t1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        out["swap_left_kb"] = _vm_kb("VmSwap")
        out["content_ok"] = (check_same(m.arr) if task.kind == "swapin-same"
                             else check_data(m.arr, task.seed, task.page_size))
        m.unmap()
    else:
        t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        rc = m.unmap()
        t1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        if rc != 0:
            raise OSError(ctypes.get_errno(), "munmap failed")
    after = me.num_ctx_switches()
    out.update(t0=t0, t1=t1, ns=t1 - t0, ns_per_page=(t1 - t0) / m.npages,
               involuntary=after.involuntary - before.involuntary,
               ran_on=me.cpu_num())
    return out
