"""What a farm host is: the facts `emul farm hosts` prints and the checks made before a run.

``describe()`` runs in the Dask worker's own process on each host (``client.run``), so it
reports that host: its machine, and the emul that host would run (the worker's Python imports
the same package its ``emul run`` subprocesses do).

Two checks, as pyperf refuses to merge runs whose metadata differ:
  * every host runs the same emul: package version and the hash of every source file
    (``code``), else the host is refused by name before anything runs;
  * ``--spread`` deals one scenario's groups out and merges them as one machine's run, so every
    host must be the same machine: the SAME_MACHINE keys below.
Two hosts with the same ``boot_id`` are one machine (two workers on one box, as the tests run):
the results say so, since their runs disturb each other.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

# what --spread requires to be equal on every host
SAME_MACHINE = ("arch", "cpu_model", "cpus", "topology", "kernel", "emul")


def _first_line(path: str) -> str:
    try:
        return Path(path).read_text().strip().splitlines()[0]
    except (OSError, IndexError):
        return ""


def topology_label() -> str:
    """The clusters and their capacities, e.g. ``0-3 (cap 414) + 4-7 (cap 1024)``."""
    from emul.config.topology import TopologyError, cpu_ranges, read_topology
    try:
        topo = read_topology()
    except TopologyError as err:
        return f"unknown ({err})"
    parts = []
    for cluster in topo.clusters:
        cap = topo.info(cluster[0]).capacity
        parts.append(cpu_ranges(cluster) + (f" (cap {cap})" if cap is not None else ""))
    return " + ".join(parts)


def describe() -> dict[str, Any]:
    """This host, as the farm compares hosts (plain data: it crosses the network)."""
    from emul.harness.hoststate import cpu_model, emul_version
    version = emul_version()
    return {
        "hostname": platform.node(), "arch": platform.machine(), "cpu_model": cpu_model(),
        "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "topology": topology_label(), "kernel": platform.release(),
        "python": platform.python_version(),
        "emul": f"{version['version']} ({version['code']})", "emul_git": version.get("git", ""),
        "boot_id": _first_line("/proc/sys/kernel/random/boot_id"),
    }


def version_mismatches(hosts: dict[str, dict[str, Any]], mine: str) -> list[str]:
    """Hosts whose emul differs from this controller's (``mine``): one line each."""
    return [f"{name} runs emul {info.get('emul', '?')}, this controller {mine}"
            for name, info in hosts.items() if info.get("emul") != mine]


def machine_differences(hosts: dict[str, dict[str, Any]]) -> list[str]:
    """For --spread: each SAME_MACHINE key on which the hosts differ, with their values."""
    out = []
    for key in SAME_MACHINE:
        values = {name: info.get(key) for name, info in hosts.items()}
        if len(set(map(str, values.values()))) > 1:
            out.append(f"{key}: " + ", ".join(f"{n} {v}" for n, v in values.items()))
    return out


def same_machines(hosts: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Groups of hosts that are one machine (the same boot_id), largest first."""
    by: dict[str, list[str]] = {}
    for name, info in hosts.items():
        if info.get("boot_id"):
            by.setdefault(info["boot_id"], []).append(name)
    return sorted((names for names in by.values() if len(names) > 1), key=len, reverse=True)
