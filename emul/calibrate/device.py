"""--setup: configure an unused /dev/zramN as swap for the measurement, and restore it.

Set-up: reset, lz4 if offered, disksize 2 x the largest amount swapped at once, ``mkswap`` (the
binary, or a v1 swap header written here when there is none), swapon at priority 32767 (the
highest, so other active devices are outranked), ``vm.page-cluster=0``. Restore, in reverse:
page-cluster, swapoff, reset, the previous algorithm / disksize (a device that had been
configured but held no data) -- on success, on error and on Ctrl-C / SIGTERM / SIGHUP, which
wait while the restore runs.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import struct
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from emul.calibrate.host import Host, libc, parse_comp_algorithm
from emul.calibrate.plan import SETUP_PRIORITY, DevicePlan
from emul.errors import SystemNotReady

SWAP_FLAG_PREFER, SWAP_FLAG_PRIO_MASK = 0x8000, 0x7FFF
SWAPOFF_TRIES = 5                # swapoff can fail with EBUSY while pages are being read back


def swap_header(nr_pages: int, page_size: int, label: bytes = b"emul-calibrate") -> bytes:
    """The first page of a version-1 Linux swap area (union swap_header, include/linux/swap.h):
    bootbits[1024], version, last_page, nr_badpages, uuid[16], volume_name[16], ..., and
    "SWAPSPACE2" in the page's last 10 bytes. Written when there is no mkswap binary."""
    if nr_pages < 10:
        raise ValueError("a swap area needs at least 10 pages")
    hdr = bytearray(page_size)
    struct.pack_into("<III", hdr, 1024, 1, nr_pages - 1, 0)
    hdr[1036:1052] = uuid.uuid4().bytes
    hdr[1052:1068] = label[:16].ljust(16, b"\0")
    hdr[page_size - 10:] = b"SWAPSPACE2"
    return bytes(hdr)


@dataclass
class SwapOps:
    """The privileged operations --setup performs (replaced by fakes in the tests)."""

    def mkswap(self, dev: Path, disksize: int, page_size: int) -> str:
        exe = shutil.which("mkswap") or next(
            (p for p in ("/usr/sbin/mkswap", "/sbin/mkswap") if os.access(p, os.X_OK)), None)
        if exe:
            r = subprocess.run([exe, str(dev)], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemNotReady(f"mkswap {dev} failed: {(r.stderr or r.stdout).strip()}")
            return f"mkswap ({exe})"
        fd = os.open(dev, os.O_WRONLY)
        try:
            os.write(fd, swap_header(disksize // page_size, page_size))
            os.fsync(fd)
        finally:
            os.close(fd)
        return "a swap header written by emul (no mkswap binary)"

    def swapon(self, dev: Path, priority: int) -> None:
        flags = SWAP_FLAG_PREFER | (priority & SWAP_FLAG_PRIO_MASK)
        if libc().swapon(os.fsencode(dev), ctypes.c_int(flags)) != 0:
            e = ctypes.get_errno()
            raise SystemNotReady(f"swapon({dev}) failed: {os.strerror(e)}")

    def swapoff(self, dev: Path) -> None:
        if libc().swapoff(os.fsencode(dev)) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"swapoff({dev}) failed: {os.strerror(e)}")


class ZramSwapSetup:
    """``with ZramSwapSetup(host, plan, disksize): ...`` configures the device as swap and
    restores it on the way out, whatever ends the block. ``log`` receives what it did."""

    def __init__(self, host: Host, plan: DevicePlan, disksize: int, page_size: int,
                 ops: SwapOps | None = None, log: Callable[[str], None] = print) -> None:
        self.host, self.plan, self.disksize, self.page_size = host, plan, disksize, page_size
        self.ops = ops or SwapOps()
        self.log = log
        self.done: list[str] = []         # steps taken, undone in reverse
        self.prior_page_cluster = host.page_cluster()
        self.algorithm = ""
        self.restore_problems: list[str] = []

    def __enter__(self) -> ZramSwapSetup:
        try:
            self._configure()
        except BaseException:
            self.restore()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def _configure(self) -> None:
        h, name, prior = self.host, self.plan.name, self.plan.prior
        dev = h.dev(name)
        h.zram_write(name, "reset", "1")
        self.done.append("reset")
        algo = "lz4" if "lz4" in prior.algorithms else prior.comp_algorithm
        current, _ = parse_comp_algorithm(h.zram_attr(name, "comp_algorithm"))
        if algo and algo != current:
            h.zram_write(name, "comp_algorithm", algo)
        self.algorithm = algo or current
        h.zram_write(name, "disksize", str(self.disksize))
        how = self.ops.mkswap(dev, self.disksize, self.page_size)
        self.ops.swapon(dev, SETUP_PRIORITY)
        self.done.append("swapon")
        if not any(s.zram == name for s in h.swaps()):
            raise SystemNotReady(f"swapon {dev} returned success but /proc/swaps does not list it")
        if self.prior_page_cluster not in (None, 0):
            h.set_page_cluster(0)      # no swap readahead: every page swapped in is its own fault
            self.done.append("page-cluster")
        self.log(f"set up {dev}: {self.algorithm}, disksize {self.disksize >> 20} MiB, {how}, "
                 f"swapon at priority {SETUP_PRIORITY}"
                 + (f", vm.page-cluster {self.prior_page_cluster} -> 0"
                    if "page-cluster" in self.done else ""))

    def restore(self) -> None:
        """Undo what was done, in reverse; signals wait until it is over, so a second Ctrl-C
        cannot leave the device half restored."""
        if not self.done:
            return
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM,
                                                        signal.SIGHUP})
        try:
            self._restore()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _restore(self) -> None:
        h, name, prior = self.host, self.plan.name, self.plan.prior
        dev = h.dev(name)
        if "page-cluster" in self.done:
            try:
                h.set_page_cluster(self.prior_page_cluster)
            except SystemNotReady as exc:
                self.restore_problems.append(str(exc))
        if "swapon" in self.done and not self._swapoff(dev):
            self.done.clear()
            return
        self._reset_to_prior()
        self.done.clear()
        self.log(f"restored {dev}: swapoff, reset, comp_algorithm {prior.comp_algorithm}, "
                 f"disksize {prior.disksize}"
                 + (f", vm.page-cluster {self.prior_page_cluster}"
                    if self.prior_page_cluster is not None else ""))

    def _swapoff(self, dev: Path) -> bool:
        """swapoff, retried with a growing pause; False (and how to finish by hand) if it
        never succeeds: a reset of a device still swapped on would fail anyway."""
        for attempt in range(SWAPOFF_TRIES):
            try:
                self.ops.swapoff(dev)
                return True
            except OSError as exc:
                if attempt == SWAPOFF_TRIES - 1:
                    self.restore_problems.append(
                        f"{exc.strerror}: run `swapoff {dev}; echo 1 > "
                        f"/sys/block/{self.plan.name}/reset` by hand")
                    return False
                time.sleep(0.5 * (attempt + 1))
        return False

    def _reset_to_prior(self) -> None:
        """reset, then the compressor and disksize the device had before."""
        h, name, prior = self.host, self.plan.name, self.plan.prior
        try:
            h.zram_write(name, "reset", "1")
            now, _ = parse_comp_algorithm(h.zram_attr(name, "comp_algorithm"))
            if prior.comp_algorithm and now != prior.comp_algorithm:
                h.zram_write(name, "comp_algorithm", prior.comp_algorithm)
            if prior.disksize:
                h.zram_write(name, "disksize", str(prior.disksize))
        except (SystemNotReady, OSError) as exc:
            self.restore_problems.append(str(exc))


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run like Ctrl-C: through every finally: (the device restored)."""
    def raise_(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)
    old = {s: signal.signal(s, raise_) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
