"""``emul calibrate``: measure this machine's real zram swap-slot freeing, fit a cost profile.

What is measured (each in a fresh child process pinned with psutil; anonymous memory from
``mmap``, ``MADV_NOHUGEPAGE`` so every page is a 4 KiB folio and a PTE; every figure is the
median over ``--repeats`` repeats, the workloads interleaved within a repeat):

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
    ``do_swap_page`` per page, which frees the swap entry. ``swapin`` uses the data below;
    ``swapin-same`` pages filled with one byte (zram stores them as ZRAM_SAME: no zsmalloc
    object, no decompression), which splits the swap-in into ``fault`` and ``decompress``.
``concurrent-k``
    k processes, pinned to k CPUs (k = 1 .. min(4, CPUs)), each with N MiB in zram, unmap at
    once: the parent writes a start time 50 ms ahead into shared memory and wakes them (an
    Event); each spins on its own CPU until the clock reaches it, so the start does not wait for
    the parent to be scheduled. Per-process times and the wall time (first start to last end, CLOCK_MONOTONIC)
    are kept. Not used in the fit: it is the out-of-sample check of the emulator.

A run whose timed call lost its CPU (an involuntary context switch: another task took it) or,
for k > 1, whose starts lie more than 5 % of the unmap time apart, is run again, up to 3 times
(as ``emul bench`` does); if every try was disturbed, the one that finished soonest is kept and
the progress line says PREEMPTED. The median is then taken over the undisturbed repeats when
there are at least two (preemption only adds time), else over all. With root rights the
measuring children and the emulated runs (controller and workers) run at nice -20 in a session
of their own (so in their own autogroup, whose nice is set too: with autogroup scheduling a
process's nice only weighs within its session), so another CPU-bound task takes about 1 % of
their CPU rather than half. Still, calibrate on an otherwise idle machine: the emulated runs
have no preemption filter.

The data: the default data profile of the seed scenarios (compression ratio 2, spread 0.25).
Each page starts with L random bytes and ends in zeros, L drawn uniformly from
``2048 x (1 +/- 0.25)`` bytes, so lz4 (or lzo) stores about L + 20 bytes: a compression ratio
near 2 and the seed's spread. The ratio zram actually achieved is read from ``mm_stat`` and
given to the emulated runs.

The device: an active zram swap device (``/proc/swaps``) that outranks every other active swap
device (a strictly higher priority: with equal ones the kernel round-robins, with a lower one
the pages go elsewhere). Otherwise the command refuses and says why. ``--setup`` (root) takes
an unused ``/dev/zramN`` instead: reset, lz4 if offered, disksize 2 x the largest amount swapped
at once, ``mkswap`` (the binary, or a v1 swap header written here when there is none), swapon
at priority 32767 (the highest, so other active devices are outranked), ``vm.page-cluster=0``;
and afterwards swapoff, reset, the previous algorithm / disksize (a device that had been
configured but held no data) and page-cluster, on success, on error and on Ctrl-C / SIGTERM.

The fit (:func:`derive_profile`; the written YAML repeats it with the numbers): zap_pte from the
zero-page unmap, free_folio = resident - zero-page; the swapped unmap's excess over zap_pte is
the swap-entry free S, split with the shares published in the RFC thread as rk3588-cpu2 does
(slot_free() > 80 % of S, zs_free() ~65 % of slot_free(), free_zspage two thirds of zs_free());
fault from the same-filled swap-in, decompress from the data swap-in's excess over it. emul's
own machinery for each workload (emul run with every fitted cost at 1 ns, so the charging of a
cost is included) is subtracted first, so that emul with the profile reproduces the
single-process figures. Then the same workloads run in emul with the new profile and a table
puts them beside the real ones; the k-concurrent exits, not used in the fit, are the
out-of-sample check of emul's contention model.

Every path under /proc, /sys and /dev is read through a root directory (``HOST_ROOT``), so the
tests give the module a fake one.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from emul.errors import InputError, RunAborted, SystemNotReady

HOST_ROOT = Path("/")

MADV_NOHUGEPAGE = 15
MADV_PAGEOUT = 21
MADV_POPULATE_READ = 22
PROT_READ, PROT_WRITE = 0x1, 0x2
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
SWAP_FLAG_PREFER, SWAP_FLAG_PRIO_MASK = 0x8000, 0x7FFF
SETUP_PRIORITY = 32767

DATA_COMPRESSION_RATIO = 2.0     # the seed scenarios' data profile
DATA_SPREAD = 0.25
SAME_BYTE = 0x5A                 # swapin-same pages: every byte this (never the zero-filled fast path)
MIN_SWAPPED = 0.99               # fraction of the pages that must reach swap / zram
MAX_CONCURRENT = 4
ATTEMPTS = 3                     # runs of a measurement before a preempted one is accepted

# published shares used to split the swap-entry free (see rk3588-cpu2.yaml)
SLOT_FREE_SHARE = 0.8            # cover letter: slot_free > 80 % of freeing a swap entry
ZS_FREE_SHARE = 0.65             # thread: zs_free ~65 % of slot_free
FREE_ZSPAGE_SHARE = 2 / 3        # thread: free_zspage dominates zs_free (taken as two thirds)

WORKLOADS = ("unmap-zero", "unmap-resident", "unmap-swapped", "swapin", "swapin-same")
_DEV_RE = re.compile(r"(?:/dev/)?(zram[0-9]+)")


# =============================================================================== the host view

@dataclass(frozen=True)
class SwapEntry:
    path: str
    kind: str
    size_kb: int
    used_kb: int
    priority: int

    @property
    def zram(self) -> str | None:
        m = re.fullmatch(r"/dev/(zram[0-9]+)", self.path)
        return m.group(1) if m else None


@dataclass(frozen=True)
class Host:
    """/proc, /sys and /dev under a root directory (``/`` on a real run)."""

    root: Path = Path("/")

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def read(self, *parts: str) -> str:
        return self.path(*parts).read_text()

    def swaps(self) -> list[SwapEntry]:
        try:
            lines = self.read("proc", "swaps").splitlines()[1:]
        except FileNotFoundError:
            raise SystemNotReady(f"{self.path('proc', 'swaps')} is missing: is /proc mounted, "
                                 "and is the kernel built with CONFIG_SWAP?") from None
        out = []
        for line in lines:
            f = line.split()
            if len(f) < 5:
                continue
            name = " ".join(f[:-4]).replace("\\040", " ")
            out.append(SwapEntry(name, f[-4], int(f[-3]), int(f[-2]), int(f[-1])))
        return out

    def mounts(self) -> dict[str, str]:
        """device -> mount point."""
        try:
            text = self.read("proc", "mounts")
        except FileNotFoundError:
            return {}
        out = {}
        for line in text.splitlines():
            f = line.split()
            if len(f) >= 2:
                out.setdefault(f[0], f[1])
        return out

    def zram_names(self) -> list[str]:
        block = self.path("sys", "block")
        if not block.is_dir():
            return []
        names = [p.name for p in block.iterdir() if re.fullmatch(r"zram[0-9]+", p.name)]
        return sorted(names, key=lambda n: int(n[4:]))

    def zram_attr(self, name: str, attr: str) -> str:
        return self.read("sys", "block", name, attr).strip()

    def zram_write(self, name: str, attr: str, value: str) -> None:
        p = self.path("sys", "block", name, attr)
        try:
            with open(p, "w") as f:
                f.write(value)
        except OSError as exc:
            raise SystemNotReady(f"writing {value!r} to {p} failed: {exc.strerror or exc}") from None

    def dev(self, name: str) -> Path:
        return self.path("dev", name)

    def page_cluster(self) -> int | None:
        try:
            return int(self.read("proc", "sys", "vm", "page-cluster").strip())
        except (OSError, ValueError):
            return None

    def set_page_cluster(self, value: int) -> None:
        p = self.path("proc", "sys", "vm", "page-cluster")
        try:
            p.write_text(f"{value}\n")
        except OSError as exc:
            raise SystemNotReady(f"writing {value} to {p} failed: {exc.strerror or exc}") from None

    def mem_available_kb(self) -> int | None:
        try:
            for line in self.read("proc", "meminfo").splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return None


def damon_pageout(host: Host) -> list[str]:
    """Running DAMON contexts with a pageout scheme: while a swap device is on, they may page
    other processes' cold memory into it (and steal some CPU) during the measurement."""
    out = []
    base = host.path("sys", "kernel", "mm", "damon", "admin", "kdamonds")
    if not base.is_dir():
        return out
    for kd in sorted(p for p in base.iterdir() if p.name.isdigit()):
        try:
            if (kd / "state").read_text().strip() != "on":
                continue
            for action in kd.glob("contexts/*/schemes/*/action"):
                if action.read_text().strip() == "pageout":
                    out.append(f"kdamond {kd.name}")
                    break
        except OSError:
            continue
    return out


def parse_comp_algorithm(text: str) -> tuple[str, list[str]]:
    """'lzo [lz4] zstd' -> ('lz4', ['lzo', 'lz4', 'zstd'])."""
    algs = [a.strip("[]") for a in text.split()]
    sel = [a.strip("[]") for a in text.split() if a.startswith("[")]
    return (sel[0] if sel else (algs[0] if len(algs) == 1 else "")), algs


@dataclass(frozen=True)
class ZramState:
    name: str
    disksize: int
    comp_algorithm: str
    algorithms: tuple[str, ...]
    orig_data_size: int
    same_pages: int

    @property
    def configured(self) -> bool:
        return self.disksize != 0


def zram_state(host: Host, name: str) -> ZramState:
    try:
        disksize = int(host.zram_attr(name, "disksize") or 0)
        sel, algs = parse_comp_algorithm(host.zram_attr(name, "comp_algorithm"))
        mm = mm_stat(host, name)
    except FileNotFoundError as exc:
        raise SystemNotReady(f"{exc.filename}: missing; is {name} a zram device?") from None
    return ZramState(name, disksize, sel, tuple(algs), mm.get("orig_data_size", 0),
                     mm.get("same_pages", 0))


MM_STAT_FIELDS = ("orig_data_size", "compr_data_size", "mem_used_total", "mem_limit",
                  "mem_used_max", "same_pages", "pages_compacted", "huge_pages",
                  "huge_pages_since")


def mm_stat(host: Host, name: str) -> dict[str, int]:
    vals = host.zram_attr(name, "mm_stat").split()
    return {k: int(v) for k, v in zip(MM_STAT_FIELDS, vals)}


# =============================================================================== the device plan

@dataclass(frozen=True)
class DevicePlan:
    name: str                    # zram0
    setup: bool                  # configure it for the measurement (and restore it after)
    prior: ZramState             # its state before
    swap_kb_free: int = 0        # (without setup) room on it
    priority: int = 0


def _busy_reason(host: Host, name: str, swaps: list[SwapEntry], mounts: dict[str, str]) -> str:
    dev = f"/dev/{name}"
    if any(s.zram == name for s in swaps):
        return f"{dev} is in use as swap (listed in /proc/swaps)"
    if dev in mounts:
        return f"{dev} is mounted on {mounts[dev]}"
    holders = host.path("sys", "block", name, "holders")
    if holders.is_dir() and any(holders.iterdir()):
        return f"{dev} is held by {', '.join(p.name for p in holders.iterdir())}"
    st = zram_state(host, name)
    if st.configured and st.orig_data_size:
        return (f"{dev} is configured (disksize {st.disksize}) and holds "
                f"{st.orig_data_size} bytes of data")
    return ""


def plan_device(host: Host, device: str | None, setup: bool, need_kb: int,
                euid: int | None = None) -> DevicePlan:
    """Which zram device the measurement uses, or a SystemNotReady saying exactly what is
    missing. need_kb: the most swap in use at once (largest k x N MiB)."""
    if device is not None:
        m = _DEV_RE.fullmatch(device)
        if not m:
            raise InputError("--device", None, f"expected /dev/zramN, got {device!r}")
        device = m.group(1)
    names = host.zram_names()
    if not names:
        raise SystemNotReady(
            f"no zram device: {host.path('sys', 'block')} has no zram* entry. Load the "
            "module (modprobe zram, or a kernel with CONFIG_ZRAM=y), then run "
            "`emul calibrate --setup` as root, or set up a zram swap device yourself")
    if device is not None and device not in names:
        raise SystemNotReady(f"no such zram device: /dev/{device} (this machine has "
                             f"{', '.join('/dev/' + n for n in names)})")
    swaps = host.swaps()
    mounts = host.mounts()
    if setup:
        euid = os.geteuid() if euid is None else euid
        if euid != 0:
            raise SystemNotReady(
                f"--setup needs root (you are uid {euid}): it resets a zram device, sets its "
                "size and compressor, runs mkswap and swapon, and restores it afterwards. Run "
                "it as root, or set up a zram swap device yourself and run without --setup")
        candidates = [device] if device else names
        reasons = []
        for name in candidates:
            why = _busy_reason(host, name, swaps, mounts)
            if not why:
                st = zram_state(host, name)
                others = [s for s in swaps if s.priority >= SETUP_PRIORITY]
                if others:
                    raise SystemNotReady(
                        f"{others[0].path} is active swap at priority {others[0].priority}, "
                        f"which /dev/{name} (swapped on at {SETUP_PRIORITY}, the highest) cannot "
                        "outrank: the pages could go there. swapoff it for the measurement")
                if device is None and st.configured:
                    reasons.append(f"/dev/{name} is configured (disksize {st.disksize}); name "
                                   "it with --device to use it (restored afterwards)")
                    continue
                return DevicePlan(name, True, st)
            reasons.append(why)
        if device:
            raise SystemNotReady(
                f"device busy: {reasons[0]}. "
                + ("It is already swap: run without --setup to measure on it as it is"
                   if "swap" in reasons[0] else "Pick another with --device, or free it"))
        raise SystemNotReady(
            "no unused zram device for --setup: " + "; ".join(reasons) + ". Add one "
            "(cat /sys/class/zram-control/hot_add), or run without --setup to measure on "
            "the active zram swap device")
    zswaps = [s for s in swaps if s.zram and (device is None or s.zram == device)]
    if not zswaps:
        if device:
            raise SystemNotReady(f"/dev/{device} is not active swap (not in /proc/swaps); "
                                 f"run `emul calibrate --setup --device /dev/{device}` as root "
                                 "to configure it for the measurement")
        listed = ", ".join(s.path for s in swaps) or "nothing"
        raise SystemNotReady(
            f"no zram swap device is active (/proc/swaps lists {listed}); run "
            f"`emul calibrate --setup` as root to configure /dev/{names[0]} for the "
            "measurement (restored afterwards), or set up zram swap yourself")
    chosen = max(zswaps, key=lambda s: s.priority)
    rivals = [s for s in swaps if s is not chosen and s.priority >= chosen.priority]
    if rivals:
        r = rivals[0]
        raise SystemNotReady(
            f"{r.path} (priority {r.priority}) is active swap at a priority >= {chosen.path}'s "
            f"({chosen.priority}): the kernel could put the measured pages there. Raise zram's "
            f"priority (swapoff {chosen.path}; swapon -p 32767 {chosen.path}), swapoff "
            f"{r.path}, or use --setup on an unused zram device")
    free_kb = chosen.size_kb - chosen.used_kb
    if free_kb < need_kb * 1.05:
        raise SystemNotReady(
            f"{chosen.path} has {free_kb // 1024} MiB of swap free; the measurement swaps up "
            f"to {need_kb // 1024} MiB at once: use a smaller --mib, or --setup")
    return DevicePlan(chosen.zram, False, zram_state(host, chosen.zram), free_kb,
                      chosen.priority)


# =============================================================================== setup / restore

def swap_header(nr_pages: int, page_size: int, label: bytes = b"emul-calibrate") -> bytes:
    """The first page of a version-1 Linux swap area (union swap_header, include/linux/swap.h):
    bootbits[1024], version, last_page, nr_badpages, uuid[16], volume_name[16], ..., and
    "SWAPSPACE2" in the page's last 10 bytes."""
    import struct
    if nr_pages < 10:
        raise ValueError("a swap area needs at least 10 pages")
    hdr = bytearray(page_size)
    struct.pack_into("<III", hdr, 1024, 1, nr_pages - 1, 0)
    hdr[1036:1052] = uuid.uuid4().bytes
    hdr[1052:1068] = label[:16].ljust(16, b"\0")
    hdr[page_size - 10:] = b"SWAPSPACE2"
    return bytes(hdr)


def _libc():
    return ctypes.CDLL(None, use_errno=True)


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
        libc = _libc()
        flags = SWAP_FLAG_PREFER | (priority & SWAP_FLAG_PRIO_MASK)
        if libc.swapon(os.fsencode(dev), ctypes.c_int(flags)) != 0:
            e = ctypes.get_errno()
            raise SystemNotReady(f"swapon({dev}) failed: {os.strerror(e)}")

    def swapoff(self, dev: Path) -> None:
        libc = _libc()
        if libc.swapoff(os.fsencode(dev)) != 0:
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
            h.set_page_cluster(0)
            self.done.append("page-cluster")
        self.log(f"set up {dev}: {self.algorithm}, disksize {self.disksize >> 20} MiB, {how}, "
                 f"swapon at priority {SETUP_PRIORITY}"
                 + (f", vm.page-cluster {self.prior_page_cluster} -> 0"
                    if "page-cluster" in self.done else ""))

    def restore(self) -> None:
        """Undo what was done, in reverse; signals wait until it is over."""
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
        if "swapon" in self.done:
            for attempt in range(5):
                try:
                    self.ops.swapoff(dev)
                    break
                except OSError as exc:
                    if attempt == 4:
                        self.restore_problems.append(
                            f"{exc.strerror}: run `swapoff {dev}; echo 1 > "
                            f"/sys/block/{name}/reset` by hand")
                        self.done.clear()
                        return
                    time.sleep(0.5 * (attempt + 1))
        try:
            h.zram_write(name, "reset", "1")
            now, _ = parse_comp_algorithm(h.zram_attr(name, "comp_algorithm"))
            if prior.comp_algorithm and now != prior.comp_algorithm:
                h.zram_write(name, "comp_algorithm", prior.comp_algorithm)
            if prior.disksize:
                h.zram_write(name, "disksize", str(prior.disksize))
        except (SystemNotReady, OSError) as exc:
            self.restore_problems.append(str(exc))
        self.done.clear()
        self.log(f"restored {dev}: swapoff, reset, comp_algorithm {prior.comp_algorithm}, "
                 f"disksize {prior.disksize}"
                 + (f", vm.page-cluster {self.prior_page_cluster}"
                    if self.prior_page_cluster is not None else ""))


def swap_state(host: Host, name: str) -> dict:
    """What --setup must leave as it found: /proc/swaps, the device's settings, page-cluster."""
    st = zram_state(host, name)
    return {"swaps": [s.path for s in host.swaps()], "disksize": st.disksize,
            "comp_algorithm": st.comp_algorithm, "page_cluster": host.page_cluster()}


# =============================================================================== measurement

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


def _data_chunks(seed: int, npages: int, page_size: int, step: int = 2048):
    """(first page, last page + 1, block) of the data pages: page i holds L_i random bytes then
    zeros, L_i uniform in page / ratio x (1 +/- spread). Blocks are hi = the longest L wide."""
    import numpy as np
    rng = np.random.default_rng(seed)
    mean = page_size / DATA_COMPRESSION_RATIO
    lo, hi = int(mean * (1 - DATA_SPREAD)), int(mean * (1 + DATA_SPREAD))
    lens = rng.integers(lo, hi + 1, npages)
    cols = np.arange(hi)
    for a in range(0, npages, step):
        b = min(npages, a + step)
        block = rng.integers(0, 256, (b - a, hi), dtype=np.uint8)
        block[cols[None, :] >= lens[a:b, None]] = 0
        yield a, b, block


def _fill_data(arr, seed: int, page_size: int) -> None:
    """Write the data pages (the mapping starts zeroed: only the random heads are written)."""
    for a, b, block in _data_chunks(seed, arr.shape[0], page_size):
        arr[a:b, :block.shape[1]] = block


def _check_data(arr, seed: int, page_size: int) -> bool:
    """The first block of pages read back equals what was written."""
    a, b, block = next(_data_chunks(seed, arr.shape[0], page_size))
    w = block.shape[1]
    return bool((arr[a:b, :w] == block).all() and not arr[a:b, w:].any())


BOOST_NICE = -20


def _boost() -> None:
    """Run at nice -20 when allowed (root or CAP_SYS_NICE): on a shared machine another
    CPU-bound task then takes about 1 % of the CPU from a measurement instead of half of it.
    With autogroup scheduling (kernel.sched_autogroup_enabled) a nice value only weighs within
    the session's group, so the process first starts a session of its own and sets that group's
    nice too. Used alike for the measuring children and the emul runs (whose workers inherit
    it); the group goes away with them."""
    try:
        os.setsid()
    except OSError:
        pass
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(BOOST_NICE))
    except OSError:
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, BOOST_NICE)
    except OSError:
        pass


def can_boost() -> bool:
    return os.geteuid() == 0 or os.getpriority(os.PRIO_PROCESS, 0) <= BOOST_NICE


def _child(task: Task, conn, arm, go) -> None:
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


def _child_body(task: Task, conn, arm, go) -> dict:
    import numpy as np
    import psutil
    me = psutil.Process()
    me.cpu_affinity([task.cpu])
    _boost()
    libc = _libc()
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    n, ps = task.nbytes, task.page_size
    npages = n // ps
    addr = libc.mmap(None, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), f"mmap of {n} bytes failed")
    libc.madvise(addr, n, MADV_NOHUGEPAGE)      # EINVAL without THP: nothing to prevent then
    arr = np.frombuffer((ctypes.c_uint8 * n).from_address(addr), dtype=np.uint8).reshape(npages, ps)

    def populate_read() -> None:
        if libc.madvise(addr, n, MADV_POPULATE_READ) != 0:
            e = ctypes.get_errno()
            if e != 22:    # EINVAL: a kernel before 5.14 -- touch every page instead
                raise OSError(e, f"madvise(MADV_POPULATE_READ): {os.strerror(e)}")
            int(arr[:, 0].sum())

    info: dict = {"cpu": task.cpu}
    swapped = task.kind not in ("unmap-zero", "unmap-resident")
    if task.kind == "unmap-zero":
        populate_read()
    elif task.kind == "swapin-same":
        for a in range(0, npages, 4096):
            arr[a:a + 4096] = SAME_BYTE
    else:
        _fill_data(arr, task.seed, ps)
    info["rss_kb"] = _vm_kb("VmRSS")
    if swapped:
        swap0 = _vm_kb("VmSwap")
        t0 = time.perf_counter_ns()
        for attempt in range(5):
            if libc.madvise(addr, n, MADV_PAGEOUT) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"madvise(MADV_PAGEOUT): {os.strerror(e)}"
                              + (" (Linux 5.4 or later needed)" if e == 22 else ""))
            if attempt == 0:
                info["pageout_ns"] = (time.perf_counter_ns() - t0) / npages
            got = (_vm_kb("VmSwap") - swap0) * 1024 / n
            if got >= 0.999:
                break
        info["swapped_fraction"] = got
        if got < MIN_SWAPPED:
            raise SystemNotReady(
                f"MADV_PAGEOUT put only {100 * got:.1f}% of the pages in swap (VmSwap): is swap "
                "full, or limited for this cgroup (memory.swap.max)?")
    conn.send(("ready", info))
    arm.wait(600)            # woken together, then each spins on its own CPU until the start time
    while time.clock_gettime_ns(time.CLOCK_MONOTONIC) < go.value:
        pass
    before = me.num_ctx_switches()
    if task.kind.startswith("swapin"):
        t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        populate_read()
        t1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        info["swap_left_kb"] = _vm_kb("VmSwap")
        info["content_ok"] = (bool((arr[:2048] == SAME_BYTE).all())
                              if task.kind == "swapin-same" else _check_data(arr, task.seed, ps))
        libc.munmap(addr, n)
    else:
        t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        rc = libc.munmap(addr, n)
        t1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        if rc != 0:
            raise OSError(ctypes.get_errno(), "munmap failed")
    after = me.num_ctx_switches()
    info.update(t0=t0, t1=t1, ns=t1 - t0, ns_per_page=(t1 - t0) / npages,
                involuntary=after.involuntary - before.involuntary,
                ran_on=me.cpu_num())
    return info


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
        mp = self.mp
        arm, go = mp.Event(), mp.RawValue("q", 0)
        procs, conns = [], []
        before = mm_stat(self.host, self.device)
        try:
            for cpu in cpus:
                parent, child = mp.Pipe()
                self.seed += 1
                task = Task(kind, self.nbytes, self.page_size, cpu, self.seed)
                p = mp.Process(target=_child, args=(task, child, arm, go), daemon=True)
                p.start()
                child.close()
                procs.append(p)
                conns.append(parent)
            ready = [self._recv(c, p, "ready") for c, p in zip(conns, procs)]
            if kind not in ("unmap-zero", "unmap-resident"):
                self._check_zram(before, len(cpus), kind)
            # a common start time, 50 ms ahead: the children spin until then on their own
            # CPUs, so the start does not wait for this process to be scheduled
            go.value = time.clock_gettime_ns(time.CLOCK_MONOTONIC) + 50_000_000
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

    def _recv(self, conn, proc, want: str) -> dict:
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


def measure(host: Host, device: str, mib: int, repeats: int, cpus: list[int],
            progress: Callable[[str], None]) -> dict:
    """Every workload ``repeats`` times; returns medians (ns/page) and the raw samples."""
    page_size = os.sysconf("SC_PAGE_SIZE")
    m = Measurer(host, device, mib, page_size, progress)
    kmax = min(MAX_CONCURRENT, len(cpus))
    samples: dict[str, list[float]] = {w: [] for w in WORKLOADS}
    samples["pageout"] = []
    clean: dict[str, list[bool]] = {w: [] for w in samples}
    conc: dict[int, dict[str, list]] = {k: {"per_process_ns": [], "wall_ns": [],
                                            "involuntary": [], "start_skew_ns": []}
            for k in range(1, kmax + 1)}
    retried = {"clean": 0, "preempted": 0}

    def attempt(kind: str, k: int) -> list[dict]:
        """Up to ATTEMPTS runs: the first whose timed call kept its CPU (no involuntary
        context switch) and, for k > 1, whose starts lie within 5 % of the time each took;
        else the one that ended soonest after its first start (preemption only adds time)."""
        tries = []
        for _ in range(ATTEMPTS):
            res = m.run(kind, cpus[:k])
            t0s = [x["t0"] for x in res]
            skew = max(t0s) - min(t0s)
            clean = (all(x["involuntary"] == 0 for x in res)
                     and skew <= 0.05 * statistics.median(x["ns"] for x in res))
            if clean:
                retried["clean"] += 1
                return res
            tries.append(res)
        retried["preempted"] += 1
        return min(tries, key=lambda rs: max(x["t1"] for x in rs) - min(x["t0"] for x in rs))

    for r in range(1, repeats + 1):
        for w in WORKLOADS:
            res = attempt(w, 1)[0]
            samples[w].append(res["ns_per_page"])
            clean[w].append(res["involuntary"] == 0)
            extra = ""
            if "pageout_ns" in res:
                if w == "unmap-swapped":
                    samples["pageout"].append(res["pageout_ns"])
                    clean["pageout"].append(True)     # not timed for preemption
                extra = (f" ({100 * res['swapped_fraction']:.1f}% swapped, pageout "
                         f"{res['pageout_ns']:.0f} ns/page)")
            if w.startswith("swapin"):
                extra += f", {res['swap_left_kb']} kB left in swap"
                if not res["content_ok"]:
                    raise RunAborted(f"{w}: the pages read back do not hold what was written")
            if res["involuntary"]:
                extra += f", PREEMPTED {res['involuntary']}x in every try"
            progress(f"repeat {r}/{repeats}: {w:15} {res['ns'] / 1e6:8.2f} ms, "
                     f"{res['ns_per_page']:6.0f} ns/page{extra}")
        for k in range(1, kmax + 1):
            res = attempt("concurrent", k)
            wall = max(x["t1"] for x in res) - min(x["t0"] for x in res)
            per = [x["ns"] for x in res]
            inv = [x["involuntary"] for x in res]
            skew = max(x["t0"] for x in res) - min(x["t0"] for x in res)
            conc[k]["per_process_ns"].append(per)
            conc[k]["wall_ns"].append(wall)
            conc[k]["involuntary"].append(inv)
            conc[k]["start_skew_ns"].append(skew)
            progress(f"repeat {r}/{repeats}: {k} unmapping at once on CPUs "
                     f"{','.join(str(c) for c in cpus[:k])}: wall {wall / 1e6:.2f} ms, each "
                     + " / ".join(f"{p / 1e6:.2f}" for p in per)
                     + f" ms (starts within {skew / 1e3:.0f} us)"
                     + (f", PREEMPTED in every try ({inv})" if any(inv) else ""))
    med, used = {}, {}
    for w, v in samples.items():
        if v:
            med[w], used[w] = clean_median(v, clean[w])
    for k, v in conc.items():
        ok = [not any(inv) for inv in v["involuntary"]]
        v["wall_ns_median"], v["clean_repeats"] = clean_median(v["wall_ns"], ok)
        v["per_process_median"], _ = clean_median([statistics.median(x) for x in
                                                   v["per_process_ns"]], ok)
    ratio = statistics.median(m.ratios) if m.ratios else DATA_COMPRESSION_RATIO
    comp_len = statistics.median(m.comp_lens) if m.comp_lens else page_size / ratio
    return {
        "page_size": page_size, "mib": mib, "pages": m.npages, "repeats": repeats,
        "cpus": cpus[:kmax], "device": device,
        "ns_per_page": med, "samples": samples,
        "compression_ratio": ratio, "comp_len_mean": comp_len, "spread": DATA_SPREAD,
        "clean_runs": retried["clean"], "preempted_runs": retried["preempted"],
        "clean_repeats": used,
        "concurrent": {str(k): {
            "wall_ns": v["wall_ns_median"],
            "per_process_ns": v["per_process_median"],
            "wall_ns_per_page": v["wall_ns_median"] / m.npages,
            "clean_repeats": v["clean_repeats"],
            "samples": v} for k, v in conc.items()},
    }


# =============================================================================== the fit

def zspage_geometry(comp_len_mean: float, spread: float, page_size: int) -> tuple[float, float]:
    """Per object freed, when every object is eventually freed: the zspage pages given back
    (pages_per_zspage / objs_per_zspage of its class) and the zspages freed (1 / objs), averaged
    over compressed lengths uniform in mean x (1 +/- spread) (emul's data model)."""
    from emul.kernel.zs_classes import build_size_classes, class_index_for
    table = build_size_classes(page_size)
    lo = max(1, int(comp_len_mean * (1 - spread)))
    hi = min(page_size, max(lo, int(comp_len_mean * (1 + spread))))
    pages, zspages = [], []
    for n in range(lo, hi + 1):
        c = class_index_for(table, n)
        pages.append(table.pages_per_zspage[c] / table.objs_per_zspage[c])
        zspages.append(1 / table.objs_per_zspage[c])
    return float(sum(pages) / len(pages)), float(sum(zspages) / len(zspages))


def pages_per_object(comp_len_mean: float, spread: float, page_size: int) -> float:
    return zspage_geometry(comp_len_mean, spread, page_size)[0]


@dataclass
class Fit:
    costs_ns: dict[str, int]
    lines: list[str] = field(default_factory=list)     # the derivation, for the YAML's comments
    clamped: list[str] = field(default_factory=list)   # costs a negative residual set to 0


def derive_profile(meas: dict, machinery: dict | None = None) -> Fit:
    """The cost profile from the median figures (ns per page).

    meas: ``ns_per_page`` {unmap-zero, unmap-resident, unmap-swapped, swapin, swapin-same,
    pageout}, ``comp_len_mean`` (bytes zram stored per page), ``spread``, ``page_size``.
    machinery: emul's own time per page for the same workloads, run with every fitted cost at
    1 ns (MACHINERY_COSTS: so that the charging of each cost is included)
    {unmap-resident, unmap-swapped, swapin, swapin-same} (None: not subtracted).
    """
    f = meas["ns_per_page"]
    mach = {k: float((machinery or {}).get(k, 0.0))
            for k in ("unmap-resident", "unmap-swapped", "swapin", "swapin-same")}
    ps = int(meas["page_size"])
    kib = ps / 1024
    z, r, s = f["unmap-zero"], f["unmap-resident"], f["unmap-swapped"]
    fi, fs, po = f["swapin"], f["swapin-same"], f.get("pageout", 0.0)
    comp_len = float(meas["comp_len_mean"])
    ppo = pages_per_object(comp_len, float(meas.get("spread", DATA_SPREAD)), ps)
    fit = Fit({})
    L = fit.lines
    clamp = fit.clamped

    def nonneg(name: str, v: float) -> float:
        if v < 0:
            clamp.append(name)
            return 0.0
        return v

    used = meas.get("clean_repeats") or {}
    reps = meas.get("repeats")

    def how(w: str) -> str:
        if w not in used or not reps:
            return ""
        return (f"  [{used[w]} of {reps} undisturbed]" if used[w]
                else f"  [all {reps}: fewer than 2 undisturbed]")

    L.append("Measured on this machine (ns per page; median over the undisturbed repeats, see "
             "emul/calibrate/):")
    L.append(f"  z  unmap, zero-page PTEs      {z:8.1f}{how('unmap-zero')}")
    L.append(f"  r  unmap, resident pages      {r:8.1f}{how('unmap-resident')}")
    L.append(f"  s  unmap, swapped to zram     {s:8.1f}{how('unmap-swapped')}")
    L.append(f"  fi swap-in, data pages        {fi:8.1f}{how('swapin')}")
    L.append(f"  fs swap-in, same-filled pages {fs:8.1f}{how('swapin-same')}")
    L.append(f"  po MADV_PAGEOUT, data pages   {po:8.1f}")
    L.append("  (z: PTEs of the shared zero page, no folio behind them; fi, fs: one "
             "MADV_POPULATE_READ;")
    L.append("  fs: pages of one byte value, stored as ZRAM_SAME: no zsmalloc object, no "
             "decompression)")
    L.append(f"  zram stored {comp_len:.0f} bytes per data page (ratio {ps / comp_len:.2f}); at "
             f"+/-{100 * float(meas.get('spread', DATA_SPREAD)):.0f}% their zsmalloc classes give")
    L.append(f"  back {ppo:.3f} zspage pages per object freed")
    if machinery:
        L.append("emul's own machinery for the same workloads on this machine (every cost the "
                 "fit sets at 1 ns,")
        L.append("so that each is charged -- a charge reads the cycle counter and spins, some "
                 "tens of ns the")
        L.append("zero profile would not show; subtracted so that emul with this profile "
                 "reproduces the above):")
        for k, v in mach.items():
            L.append(f"  m[{k}] = {v:.1f}")
    else:
        L.append("emul's own machinery was not measured (--no-emulate): it comes on top.")
    mr, ms, mi, mf = (mach["unmap-resident"], mach["unmap-swapped"], mach["swapin"],
                      mach["swapin-same"])
    # --- resident unmap: zap_pte + free_folio
    rmodel = nonneg("free_folio", r - mr)
    zap = min(nonneg("zap_pte", z - mr), rmodel)
    folio = rmodel - zap
    L.append("Resident unmap = zap_pte + free_folio + m[unmap-resident]; the zero-page unmap "
             "has no folio:")
    L.append(f"  zap_pte    = z - m[unmap-resident]     = {zap:.0f}")
    L.append(f"  free_folio = r - m[unmap-resident] - zap_pte = {folio:.0f}")
    # --- swapped unmap: zap_pte + S
    S = nonneg("swap_entry_free", s - ms - zap)
    sef = (1 - SLOT_FREE_SHARE) * S
    slot = (1 - ZS_FREE_SHARE) * SLOT_FREE_SHARE * S
    ztot = ZS_FREE_SHARE * SLOT_FREE_SHARE * S
    zs = (1 - FREE_ZSPAGE_SHARE) * ztot
    fz = FREE_ZSPAGE_SHARE * ztot / ppo if ppo else 0.0
    L.append("Swapped unmap = zap_pte + S + m[unmap-swapped], S the swap-entry free:")
    L.append(f"  S = s - m[unmap-swapped] - zap_pte = {S:.0f}, split with the shares published "
             "for the RFC")
    L.append("  (as rk3588-cpu2 does; not measured here): slot_free() is > 80 % of freeing a "
             "swap entry,")
    L.append("  zs_free() ~65 % of slot_free(), free_zspage two thirds of zs_free():")
    L.append(f"  swap_entry_free  = 0.2 S                    = {sef:.0f}")
    L.append(f"  slot_free        = 0.35 x 0.8 S             = {slot:.0f}")
    L.append(f"  zs_free          = 1/3 x 0.65 x 0.8 S       = {zs:.0f}")
    L.append(f"  free_zspage_page = 2/3 x 0.65 x 0.8 S / {ppo:.3f} = {fz:.0f} per page given back")
    # --- swap-in: fault + decompress + the entry free
    fault = nonneg("fault", fs - mf - sef - slot)
    dec = nonneg("decompress_kib", fi - mi - fault - sef - slot - ztot)
    dkib = dec / (comp_len / 1024) if comp_len else 0.0
    L.append("Swap-in (do_swap_page; the entry is freed in the fault, as on zram):")
    L.append("  same-filled: fault + swap_entry_free + slot_free + m[swapin-same]")
    L.append(f"    fault = fs - m[swapin-same] - swap_entry_free - slot_free = {fault:.0f}")
    L.append("  data: fault + decompress + swap_entry_free + slot_free + zs_free "
             "+ free_zspage + m[swapin]")
    L.append(f"    decompress = fi - m[swapin] - fault - {sef + slot + ztot:.0f} = {dec:.0f} per "
             f"page, / {comp_len / 1024:.2f} KiB compressed")
    L.append(f"    decompress_kib = {dkib:.0f}")
    L.append("  slot_free_cold = 0: the fault path's slot_free is taken at its unmap cost. "
             "rk3588-cpu2 fits a")
    L.append("  cold-cache surcharge to the RFC's bitmap gain; that needs the patched kernel, "
             "not measured here.")
    # --- swap-out
    comp = nonneg("compress_kib", (po - zs - ppo * fz) / kib) if po else 0.0
    L.append("Swap-out: zs_malloc, alloc_zspage_page taken equal to their free-side twins (as "
             "rk3588-cpu2);")
    L.append(f"  compress_kib = (po - zs_malloc - {ppo:.3f} x alloc_zspage_page) / {kib:g} KiB = "
             f"{comp:.0f}")
    L.append("  (all of MADV_PAGEOUT's other work -- rmap, TLB flush, LRU, slot allocation -- is "
             "charged here:")
    L.append("  it is swap-out's only other modelled cost)")
    L.append("wake_up: not measured; rk3588-cpu2's inferred 1,000 ns (only paid when a GC polls).")
    costs = {"zap_pte": zap, "free_folio": folio, "swap_entry_free": sef, "slot_free": slot,
             "zs_free": zs, "free_zspage_page": fz, "zs_malloc": zs, "alloc_zspage_page": fz,
             "compress_kib": comp, "decompress_kib": dkib, "fault": fault, "wake_up": 1000.0,
             "slot_free_cold": 0.0}
    if clamp:
        L.append("A negative residual was set to 0 for: " + ", ".join(clamp)
                 + " (emul's machinery exceeds the real figure there)")
    fit.costs_ns = {k: int(round(v)) for k, v in costs.items()}
    return fit


def default_output() -> Path:
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", platform.node() or "host").strip("-") or "host"
    return Path("profiles") / f"calibrated-{host}.yaml"


def profile_yaml(meas: dict, fit: Fit, machine: dict, setup_note: str) -> str:
    import yaml
    host = machine.get("hostname") or "host"
    head = [
        f"Cost profile calibrated by `emul calibrate` on {host}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}.",
        f"Machine: {machine.get('arch')}, {machine.get('cpu_model') or '?'}, "
        f"{machine.get('cpus')} CPUs; Linux {machine.get('kernel')}.",
        f"Device: /dev/{meas['device']}, {meas.get('comp_algorithm') or '?'} "
        f"({setup_note}).",
        f"{meas['mib']} MiB per process ({meas['pages']} pages), {meas['repeats']} repeats, "
        f"measured on CPU {meas['cpus'][0]} at nice {meas.get('nice', 0)}.",
        f"Data: each page L random bytes then zeros, L uniform in {meas['page_size'] // 2} x "
        f"(1 +/- {meas['spread']}); zram achieved ratio {meas['compression_ratio']:.2f}.",
        "",
    ]
    text = "".join(f"# {x}".rstrip() + "\n" for x in head + fit.lines)
    doc = {
        "name": Path(meas.get("output", f"calibrated-{host}")).stem,
        "description": f"calibrated on {host} ({machine.get('cpu_model') or machine.get('arch')}"
                       f", Linux {machine.get('kernel')}) by emul calibrate",
        "page_size": f"{meas['page_size'] // 1024}K",
        "costs_ns": fit.costs_ns,
        "measured": {
            "ns_per_page": {k: round(v, 1) for k, v in meas["ns_per_page"].items()},
            "compression_ratio": round(meas["compression_ratio"], 3),
            "comp_len_mean": round(meas["comp_len_mean"], 1),
            "concurrent": {k: {"wall_ns_per_page": round(v["wall_ns_per_page"], 1),
                               "per_process_ns": round(v["per_process_ns"])}
                           for k, v in meas["concurrent"].items()},
            "machinery_ns_per_page": {k: round(v, 1)
                                      for k, v in (meas.get("machinery") or {}).items()},
        },
    }
    return text + yaml.safe_dump(doc, sort_keys=False)


# =============================================================================== the emulator

def emul_scenario(key: str, meas: dict, repeats: int, cpus: list[int], k: int = 1) -> dict:
    """The scenario that emulates workload ``key`` (sync strategy, the killer or swap-in worker
    on the CPU the real one ran on)."""
    mib = meas["mib"]
    ps = meas["page_size"]
    if ps not in (4096, 16384):
        raise SystemNotReady(f"emul models 4K and 16K pages; this kernel uses {ps}-byte pages")
    c0, c1 = cpus[0], (cpus[1] if len(cpus) > 1 else cpus[0])
    data = {"compression_ratio": round(float(meas["compression_ratio"]), 3),
            "spread": float(meas["spread"])}
    doc = {
        "name": f"calibrate-{key}", "experiment": "unmap", "page_size": f"{ps // 1024}K",
        "repeats": repeats, "seed": 1, "profile": "zero",
        "zram": {"disksize": f"{2 * max(k, 1) * mib}M"},
        "processes": [{"name": "victim", "vma": f"{mib}M", "swapped": 1.0}],
        "data": data,
        "workers": {"killer": {"cpu": c0}, "gc": {"cpu": c1}, "swapout": {"cpu": c0},
                    "swapin": {"cpu": c0}},
        "variants": [{"name": "sync", "strategy": "sync"}],
    }
    if key == "unmap-resident":
        doc["processes"][0]["swapped"] = 0.0
    elif key in ("swapin", "swapin-same"):
        doc["experiment"] = "swapin"
        doc["processes"][0]["name"] = "app"
        if key == "swapin-same":
            doc["data"] = {"compression_ratio": 2.0, "spread": 0.0, "same_filled": 1.0}
    elif key.startswith("concurrent-"):
        doc["processes"] = [{"name": "victim" if i == 0 else f"victim{i + 1}", "vma": f"{mib}M",
                             "swapped": 1.0} for i in range(k)]
        doc["workers"]["killer"] = {"cpu": cpus[:k]}
    return doc


MACHINERY_COSTS = ("zap_pte", "free_folio", "swap_entry_free", "slot_free", "zs_free",
                   "free_zspage_page", "zs_malloc", "alloc_zspage_page", "compress_kib",
                   "decompress_kib", "fault")


def write_machinery_profile(path: Path) -> Path:
    """A profile charging 1 ns for every cost the fit sets (not slot_free_cold, wake_up):
    emul's machinery including the charging itself, which the zero profile skips."""
    import yaml
    path.write_text(yaml.safe_dump({
        "name": "machinery", "description": "emul calibrate: every fitted cost at 1 ns",
        "page_size": "4K", "costs_ns": {k: 1 for k in MACHINERY_COSTS}}, sort_keys=False))
    return path


def run_emulated(key: str, doc: dict, profile: str, workdir: Path, k: int = 1) -> dict:
    """``emul run`` the scenario in a subprocess; ns per page (per process for concurrent):
    the measured actors' wall time / pages each, median over the repeats."""
    import yaml
    tag = f"{key}-{Path(profile).stem}"
    sc = workdir / f"{tag}.yaml"
    sc.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = workdir / tag
    cmd = [sys.executable, "-m", "emul.cli", "run", str(sc), "-o", str(out), "--profile", profile]
    # its own session (see _boost): a Ctrl-C here does not reach it, so stop it on the way out
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_boost)
    try:
        _, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.terminate()          # emul run stops its workers and exits (code 3)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if proc.returncode != 0:
        tail = (err.strip().splitlines() or ["(no output)"])[-1]
        raise RunAborted(f"emulating {key} failed (emul run exit {proc.returncode}): {tail}")
    rows = [row for row in json.loads((out / "results.json").read_text())["repeats"]
            if row["ptes"]]
    per = [row["time_ns"] / (row["ptes"] / k) for row in rows]
    return {"ns_per_page": statistics.median(per), "samples": per, "results": str(out)}


# =============================================================================== the command

def _pinned_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


@contextlib.contextmanager
def _signals_as_interrupt():
    """SIGTERM and SIGHUP end the run like Ctrl-C: through every finally: (the device restored)."""
    def raise_(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)
    old = {s: signal.signal(s, raise_) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_calibrate(args, console, progress: Callable[[str], None]) -> int:
    """emul calibrate: plan the device, measure (setting it up and restoring it with --setup),
    then fit, write the profile and compare (see the module docstring)."""
    host = Host(Path(HOST_ROOT))
    if not 1 <= args.mib <= 65536:
        raise InputError("--mib", None, f"expected MiB per process, 1..65536, got {args.mib}")
    if not 1 <= args.repeats <= 1000:
        raise InputError("--repeats", None, f"expected a count 1..1000, got {args.repeats}")
    cpus = _pinned_cpus()
    kmax = min(MAX_CONCURRENT, len(cpus))
    need_kb = kmax * args.mib * 1024
    plan = plan_device(host, args.device, args.setup, need_kb)
    avail = host.mem_available_kb()
    if avail is not None and avail < need_kb * 1.6:
        raise SystemNotReady(f"{avail // 1024} MiB of memory available; the measurement needs "
                             f"about {need_kb * 1.6 // 1024:.0f} MiB ({kmax} x {args.mib} MiB "
                             "plus zram's copy): use a smaller --mib")
    output = Path(args.output) if args.output else default_output()
    if output.suffix not in (".yaml", ".yml"):
        raise InputError("--output", None, f"expected a .yaml file (so that --profile takes it "
                         f"as a path), got {output}")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError("--output", None, f"cannot create {output.parent}: {exc.strerror}") from None
    page_size = os.sysconf("SC_PAGE_SIZE")
    dev = f"/dev/{plan.name}"
    before = swap_state(host, plan.name)
    progress(f"device {dev}: " + (f"set up for the measurement (state before: swaps "
                                  f"{before['swaps'] or 'none'}, disksize {before['disksize']}, "
                                  f"{before['comp_algorithm']}, page-cluster "
                                  f"{before['page_cluster']})" if plan.setup
                                  else f"active swap, priority {plan.priority}, "
                                       f"{plan.swap_kb_free // 1024} MiB free, "
                                       f"{plan.prior.comp_algorithm}"))
    progress(f"{args.mib} MiB per process, {args.repeats} repeats, concurrent k = 1..{kmax} on "
             f"CPUs {','.join(map(str, cpus[:kmax]))}")
    progress("measuring children and emul runs at nice -20, each in a scheduling group "
             "(session) of its own" if can_boost() else
             "not root: measuring at normal priority (other tasks on this machine will disturb "
             "the figures more)")
    damon = damon_pageout(host)
    if damon:
        progress(f"note: DAMON ({', '.join(damon)}) runs a pageout scheme: while the swap device "
                 "is on it may page other processes' cold memory into it and take some CPU")
    setup_note = "its existing swap set-up"
    restored_ok = True
    with _signals_as_interrupt():
        if plan.setup:
            disksize = 2 * kmax * (args.mib << 20)
            setup = ZramSwapSetup(host, plan, disksize, page_size, log=progress)
            try:
                with setup:
                    setup_note = (f"set up by --setup: disksize {disksize >> 20} MiB, swap "
                                  f"priority {SETUP_PRIORITY}, vm.page-cluster 0")
                    meas = measure(host, plan.name, args.mib, args.repeats, cpus, progress)
            finally:
                after = swap_state(host, plan.name)
                if setup.restore_problems or after != before:
                    restored_ok = False
                    print(f"emul: WARNING: {dev} not restored as found: before {before}, after "
                          f"{after}; " + "; ".join(setup.restore_problems), file=sys.stderr)
                else:
                    progress(f"swap state restored: swaps {after['swaps'] or 'none'}, "
                             f"{plan.name} disksize {after['disksize']}, "
                             f"{after['comp_algorithm']}, page-cluster {after['page_cluster']}")
        else:
            meas = measure(host, plan.name, args.mib, args.repeats, cpus, progress)
        meas["comp_algorithm"] = (setup.algorithm if plan.setup else plan.prior.comp_algorithm)
        meas["nice"] = BOOST_NICE if can_boost() else 0
        meas["state_before"], meas["state_after"] = before, swap_state(host, plan.name)

        workdir = Path(tempfile.mkdtemp(prefix="emul-calibrate-"))
        try:
            return _fit_and_compare(args, console, progress, meas, workdir, cpus, kmax, output,
                                    setup_note, restored_ok)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _fit_and_compare(args, console, progress, meas: dict, workdir: Path, cpus: list[int],
                     kmax: int, output: Path, setup_note: str, restored_ok: bool) -> int:
    """Machinery runs, the fit, the profile, the emulated runs and the table."""
    from emul.errors import EXIT_ABORTED, EXIT_OK
    from emul.report.results import machine_info
    machine = machine_info()
    machinery = None
    erepeats = max(5, args.repeats)      # emul runs take seconds: at least 5 for a median
    progress(f"{meas['clean_runs']} measurements kept their CPU, {meas['preempted_runs']} "
             f"were disturbed in all {ATTEMPTS} tries")
    if not args.no_emulate:
        machinery = {}
        mprof = write_machinery_profile(workdir / "machinery.yaml")
        for key in ("unmap-resident", "unmap-swapped", "swapin", "swapin-same"):
            progress(f"emul's own machinery (every cost 1 ns): {key} ...")
            res = run_emulated(key, emul_scenario(key, meas, erepeats, cpus), str(mprof),
                               workdir)
            machinery[key] = res["ns_per_page"]
            progress(f"  {key}: {res['ns_per_page']:.0f} ns/page")
    meas["machinery"] = machinery
    fit = derive_profile(meas, machinery)
    meas["output"] = str(output)
    output.write_text(profile_yaml(meas, fit, machine, setup_note))
    from emul.config.profiles import load_profile
    load_profile(str(output))     # what was written loads
    progress(f"profile written: {output}")
    console.print(f"profile: {output}")
    if fit.clamped:
        console.print(f"note: set to 0 (emul's machinery exceeds the real figure): "
                      f"{', '.join(fit.clamped)}")
    emulated: dict[str, dict] = {}
    if not args.no_emulate:
        keys = [("unmap-resident", 1), ("unmap-swapped", 1), ("swapin", 1),
                ("swapin-same", 1)] + [(f"concurrent-{k}", k) for k in range(1, kmax + 1)]
        for key, k in keys:
            progress(f"emulating {key} with {output.name} ...")
            res = run_emulated(key, emul_scenario(key, meas, erepeats, cpus, k),
                               str(output.resolve()), workdir, k)
            emulated[key] = res
            progress(f"  {key}: {res['ns_per_page']:.0f} ns/page")
        console.print(side_by_side(meas, emulated, output.name))
        for line in slowdown_lines(meas, emulated):
            console.print(line)
    record = output.with_suffix(".json")
    record.write_text(json.dumps({"measurements": meas, "emulated": emulated,
                                  "costs_ns": fit.costs_ns, "machine": machine}, indent=1,
                                 default=str))
    console.print(f"measurements and emulated figures: {record}")
    return EXIT_OK if restored_ok else EXIT_ABORTED


LABELS = {
    "unmap-zero": "unmap, zero-page PTEs",
    "unmap-resident": "unmap, resident",
    "unmap-swapped": "unmap, swapped (zram)",
    "swapin": "swap-in, data pages",
    "swapin-same": "swap-in, same-filled pages",
}


def side_by_side_rows(meas: dict, emulated: dict) -> list[tuple[str, float, float | None]]:
    rows = []
    for key in WORKLOADS:
        rows.append((LABELS[key], meas["ns_per_page"][key],
                     emulated.get(key, {}).get("ns_per_page")))
    for k, v in meas["concurrent"].items():
        rows.append((f"{k} unmapping at once (wall / pages each)", v["wall_ns_per_page"],
                     emulated.get(f"concurrent-{k}", {}).get("ns_per_page")))
    return rows


def side_by_side(meas: dict, emulated: dict, profile_name: str):
    from rich.table import Table
    t = Table(title=f"real kernel vs emul ({profile_name}), sync, {meas['mib']} MiB per process",
              caption="The single-process rows are in-sample: the profile was fitted to them "
                      "(ratio near 1 checks the fit). The concurrent rows were not used in the "
                      "fit: they are the out-of-sample check of the emulator's contention "
                      "model. ratio = emulated / real.")
    for col, just in (("workload", "left"), ("real kernel ns/page", "right"),
                      ("emulated ns/page", "right"), ("ratio", "right")):
        t.add_column(col, justify=just)
    for label, real, emu in side_by_side_rows(meas, emulated):
        t.add_row(label, f"{real:,.0f}", "-" if emu is None else f"{emu:,.0f}",
                  "-" if emu is None or not real else f"{emu / real:.2f}")
    return t


def slowdown_lines(meas: dict, emulated: dict) -> list[str]:
    out = []
    c = meas["concurrent"]
    if "1" not in c:
        return out
    for k in sorted(c, key=int)[1:]:
        real = c[k]["wall_ns"] / c["1"]["wall_ns"]
        e1, ek = emulated.get("concurrent-1"), emulated.get(f"concurrent-{k}")
        emu = ek["ns_per_page"] / e1["ns_per_page"] if e1 and ek else math.nan
        out.append(f"{k} at once vs 1 alone (wall): real kernel {real:.2f}x, emul {emu:.2f}x")
    return out
