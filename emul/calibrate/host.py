"""This machine as calibrate sees it: /proc/swaps, /proc/mounts, /sys/block/zramN, page-cluster,
MemAvailable, DAMON, and the swap state --setup must leave as it found.

Every path under /proc, /sys and /dev is read through a root directory (``HOST_ROOT``), so the
tests give the module a fake one; nothing here writes except ``zram_write`` and
``set_page_cluster``, which --setup (emul/calibrate/device.py) calls.
"""
from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass
from pathlib import Path

from emul.errors import SystemNotReady

HOST_ROOT = Path("/")

MM_STAT_FIELDS = ("orig_data_size", "compr_data_size", "mem_used_total", "mem_limit",
                  "mem_used_max", "same_pages", "pages_compacted", "huge_pages",
                  "huge_pages_since")


@dataclass(frozen=True)
class SwapEntry:
    """One line of /proc/swaps."""

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
            raise SystemNotReady(
                f"writing {value!r} to {p} failed: {exc.strerror or exc}") from None

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


def this_host() -> Host:
    """The machine the command measures: ``HOST_ROOT`` read at call time, so a test's fake
    root (monkeypatched here) reaches the whole command."""
    return Host(Path(HOST_ROOT))


def libc() -> ctypes.CDLL:
    """The C library, for the calls Python does not wrap (mmap with flags, swapon, swapoff)."""
    return ctypes.CDLL(None, use_errno=True)


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
    """A zram device's settings and contents: what --setup changes and must bring back."""

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
    """The device's state, or SystemNotReady when the name is not a zram device."""
    try:
        disksize = int(host.zram_attr(name, "disksize") or 0)
        sel, algs = parse_comp_algorithm(host.zram_attr(name, "comp_algorithm"))
        mm = mm_stat(host, name)
    except FileNotFoundError as exc:
        raise SystemNotReady(f"{exc.filename}: missing; is {name} a zram device?") from None
    return ZramState(name, disksize, sel, tuple(algs), mm.get("orig_data_size", 0),
                     mm.get("same_pages", 0))


def mm_stat(host: Host, name: str) -> dict[str, int]:
    """/sys/block/zramN/mm_stat by field name: read around each swap-out to check the pages
    went to this device, and for the compression ratio zram achieved."""
    vals = host.zram_attr(name, "mm_stat").split()
    return {k: int(v) for k, v in zip(MM_STAT_FIELDS, vals)}


def swap_state(host: Host, name: str) -> dict:
    """What --setup must leave as it found: /proc/swaps, the device's settings, page-cluster."""
    st = zram_state(host, name)
    return {"swaps": [s.path for s in host.swaps()], "disksize": st.disksize,
            "comp_algorithm": st.comp_algorithm, "page_cluster": host.page_cluster()}
