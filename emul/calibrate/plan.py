"""Which zram device the measurement uses, or a SystemNotReady saying exactly what is missing.

Without --setup: an active zram swap device (``/proc/swaps``) that outranks every other active
swap device (a strictly higher priority: with equal ones the kernel round-robins, with a lower one
the pages go elsewhere), with room for the most swapped at once. Otherwise the command refuses
and says why. With --setup (root): an unused ``/dev/zramN`` (not swap, not mounted, no holders,
no data), which emul/calibrate/device.py configures and restores.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from emul.calibrate.host import Host, SwapEntry, ZramState, zram_state
from emul.errors import InputError, SystemNotReady

_DEV_RE = re.compile(r"(?:/dev/)?(zram[0-9]+)")
SETUP_PRIORITY = 32767           # --setup swaps on at the highest: it outranks every other device


@dataclass(frozen=True)
class DevicePlan:
    name: str                    # zram0
    setup: bool                  # configure it for the measurement (and restore it after)
    prior: ZramState             # its state before
    swap_kb_free: int = 0        # (without setup) room on it
    priority: int = 0


def _busy_reason(host: Host, name: str, swaps: list[SwapEntry], mounts: dict[str, str]) -> str:
    """Why --setup must not touch the device ("" when it is free)."""
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
    device = _device_name(device)
    names = _zram_names(host, device)
    swaps = host.swaps()
    mounts = host.mounts()
    if setup:
        _check_root(euid)
        return _plan_setup(host, device, names, swaps, mounts)
    return _plan_active(host, device, names, swaps, need_kb)


def _device_name(device: str | None) -> str | None:
    """--device as zramN; /dev/zramN and zramN are both taken."""
    if device is None:
        return None
    m = _DEV_RE.fullmatch(device)
    if not m:
        raise InputError("--device", None, f"expected /dev/zramN, got {device!r}")
    return m.group(1)


def _zram_names(host: Host, device: str | None) -> list[str]:
    """The machine's zram devices; refuses when there is none, or not the one named."""
    names = host.zram_names()
    if not names:
        raise SystemNotReady(
            f"no zram device: {host.path('sys', 'block')} has no zram* entry. Load the "
            "module (modprobe zram, or a kernel with CONFIG_ZRAM=y), then run "
            "`emul calibrate --setup` as root, or set up a zram swap device yourself")
    if device is not None and device not in names:
        raise SystemNotReady(f"no such zram device: /dev/{device} (this machine has "
                             f"{', '.join('/dev/' + n for n in names)})")
    return names


def _check_root(euid: int | None) -> None:
    """--setup resets a device and calls swapon: say so before trying as a user."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise SystemNotReady(
            f"--setup needs root (you are uid {euid}): it resets a zram device, sets its "
            "size and compressor, runs mkswap and swapon, and restores it afterwards. Run "
            "it as root, or set up a zram swap device yourself and run without --setup")


def _plan_setup(host: Host, device: str | None, names: list[str], swaps: list[SwapEntry],
                mounts: dict[str, str]) -> DevicePlan:
    """The named device, or the first free unconfigured one (a configured one only by name:
    its set-up is restored afterwards, but the user must ask for that)."""
    candidates = [device] if device else names
    reasons = []
    for name in candidates:
        why = _busy_reason(host, name, swaps, mounts)
        if not why:
            st = zram_state(host, name)
            _check_outranks(swaps, name)
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


def _check_outranks(swaps: list[SwapEntry], name: str) -> None:
    """An active device already at the highest priority would share the measured pages."""
    others = [s for s in swaps if s.priority >= SETUP_PRIORITY]
    if others:
        raise SystemNotReady(
            f"{others[0].path} is active swap at priority {others[0].priority}, "
            f"which /dev/{name} (swapped on at {SETUP_PRIORITY}, the highest) cannot "
            "outrank: the pages could go there. swapoff it for the measurement")


def _plan_active(host: Host, device: str | None, names: list[str], swaps: list[SwapEntry],
                 need_kb: int) -> DevicePlan:
    """The highest-priority active zram swap device, if it outranks every other swap device
    and has room."""
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
