"""The machine's CPU topology, the names a scenario may pin workers by, and the checks that go
with pinning.

Everything is read from ``<sysfs_root>/devices/system/cpu`` (``sysfs_root`` is ``/sys`` on a
live machine; tests point it at the recorded trees under ``tests/data/sysfs/``):

  online, present                           which CPUs exist, which of them run
  cpuN/cpu_capacity                         relative compute capacity, the largest = 1024 (arm64;
                                            absent on x86: every CPU counts as equal)
  cpuN/topology/cluster_id                  the CPU's cluster (kernels since about 5.16; x86 says
                                            65535 or -1 when it does not know). CPUs are grouped
                                            by this id; cluster_cpus_list is not read, as x86
                                            lists each CPU alone there while saying 65535
  cpuN/topology/physical_package_id         the package; older arm64 kernels (5.10 BSP) put the
    (package_id)                            cluster here, so it stands in when cluster_id is absent
  cpuN/topology/core_cpus_list              SMT siblings (older kernels: thread_siblings_list)
  cpuN/cpufreq/cpuinfo_max_freq             kHz; or cpufreq/policyM/{related_cpus,cpuinfo_max_freq}
  cpuN/cache/indexM/{level,type,size,shared_cpu_list}

Names (roles) a scenario's ``cpu:`` may use, and what they mean:

  N, cpuN             that CPU
  little, big         the CPUs of the lowest / highest capacity; a machine whose capacities are
                      all equal has neither (an error, unless the scenario says ``fallback: any``)
  little[i], big[i]   the i-th of them in ascending CPU order
  clusterK            every CPU of cluster K; clusters are numbered by their lowest CPU (on RK3588
                      the same numbers as the kernel's cluster_id: 0 = CPUs 0-3, 1 = 4-5, 2 = 6-7)
  any (or all)        every CPU this process may use
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emul.config.sizes import format_size, show_value

__all__ = [
    "CacheInfo",
    "CpuInfo",
    "Topology",
    "TopologyError",
    "cpu_ranges",
    "describe",
    "machine_topology",
    "migrations_at_least",
    "oversubscription_warning",
    "parse_cpulist",
    "read_topology",
    "resolve_cpus",
]

CPU_DIR = ("devices", "system", "cpu")
_UNKNOWN_IDS = {-1, 0xFFFF, 0xFFFFFFFF}   # what kernels print for "no cluster/package known"
_ROLE_RE = re.compile(
    r"(?P<kind>little|big)(?:\[(?P<index>[0-9]{1,4})\])?"
    r"|cluster(?P<cluster>[0-9]{1,4})"
    r"|(?P<any>any|all)"
    r"|cpu(?P<cpu>[0-9]{1,6})",
    re.IGNORECASE,
)
BUSY_SHARE = 0.5     # a worker using at least this share of a CPU over its phase counts as busy


class TopologyError(OSError):
    """The topology could not be read (no such tree, no ``online`` file, unreadable)."""


# --------------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheInfo:
    level: int
    type: str                          # Data, Instruction or Unified
    size: int                          # bytes
    shared_cpus: tuple[int, ...]

    @property
    def label(self) -> str:
        """``L1d``, ``L1i``, ``L2``, ``L3``."""
        suffix = {"Data": "d", "Instruction": "i"}.get(self.type, "")
        return f"L{self.level}{suffix}"


@dataclass(frozen=True)
class CpuInfo:
    cpu: int
    capacity: int | None               # None: the kernel does not say (x86)
    cluster: int                       # K of clusterK
    cluster_id: int | None             # as the kernel reports it (None: absent or unknown)
    package_id: int | None
    siblings: tuple[int, ...]          # SMT siblings, the CPU itself included
    max_freq_khz: int | None
    caches: tuple[CacheInfo, ...] = ()


@dataclass(frozen=True)
class Topology:
    cpus: tuple[CpuInfo, ...]          # the online CPUs, ascending
    present: frozenset[int]            # every CPU the machine has, online or not
    source: str                        # the sysfs root read, or why the topology is a guess
    known: bool = True                 # False: built from a CPU list, not read (see flat)
    _by_cpu: Mapping[int, CpuInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_cpu", {c.cpu: c for c in self.cpus})

    @classmethod
    def flat(cls, cpus: Iterable[int], why: str = "built from a CPU list") -> Topology:
        """Equal CPUs in one cluster: what emul assumes when sysfs cannot be read."""
        ordered = sorted(set(cpus))
        infos = tuple(CpuInfo(cpu=c, capacity=None, cluster=0, cluster_id=None, package_id=None,
                              siblings=(c,), max_freq_khz=None) for c in ordered)
        return cls(cpus=infos, present=frozenset(ordered), source=why, known=False)

    @property
    def online(self) -> tuple[int, ...]:
        return tuple(c.cpu for c in self.cpus)

    def info(self, cpu: int) -> CpuInfo:
        return self._by_cpu[cpu]

    @property
    def equal_capacity(self) -> bool:
        """True when no CPU is faster than another (x86, or every core alike): no little/big."""
        return len({c.capacity for c in self.cpus if c.capacity is not None}) <= 1

    def _of_capacity(self, pick: Any) -> tuple[int, ...]:
        if self.equal_capacity:
            return ()
        caps = [c.capacity for c in self.cpus if c.capacity is not None]
        want = pick(caps)
        return tuple(c.cpu for c in self.cpus if c.capacity == want)

    @property
    def little(self) -> tuple[int, ...]:
        return self._of_capacity(min)

    @property
    def big(self) -> tuple[int, ...]:
        return self._of_capacity(max)

    @property
    def clusters(self) -> tuple[tuple[int, ...], ...]:
        """The CPUs of each cluster; index K is clusterK."""
        out: dict[int, list[int]] = {}
        for c in self.cpus:
            out.setdefault(c.cluster, []).append(c.cpu)
        return tuple(tuple(out[k]) for k in sorted(out))

    def names(self, cpu: int) -> list[str]:
        """Every name a scenario may use that includes ``cpu`` (``any`` last)."""
        out = [f"cpu{cpu}"]
        for kind, members in (("little", self.little), ("big", self.big)):
            if cpu in members:
                out += [kind, f"{kind}[{members.index(cpu)}]"]
        out += [f"cluster{self.info(cpu).cluster}", "any"]
        return out

    def role_hint(self) -> str:
        """The role names this machine has, briefly: ``little, big, little[0..3], ...``."""
        parts = []
        for kind, members in (("little", self.little), ("big", self.big)):
            if members:
                parts += [kind, f"{kind}[0..{len(members) - 1}]" if len(members) > 1 else f"{kind}[0]"]
        n = len(self.clusters)
        parts.append(f"cluster0..{n - 1}" if n > 1 else "cluster0")
        parts.append("any")
        return ", ".join(parts)

    def why_no_little_big(self) -> str:
        if not self.known:
            return f"the CPU topology is not known ({self.source}), so there are no little or big cores"
        caps = {c.capacity for c in self.cpus}
        if caps == {None}:
            return ("this machine's CPUs report no capacity (no cpu_capacity, as on x86), so they "
                    "count as equal and there are no little or big cores")
        same = f" ({caps.pop()})" if len(caps) == 1 else ""
        return f"this machine's CPUs all have the same capacity{same}, so it has no little or big cores"

    def to_dict(self, allowed: Iterable[int] | None = None) -> dict[str, Any]:
        """JSON-safe: what ``emul topo --json`` prints (sizes in bytes, frequencies in kHz)."""
        return {
            "source": self.source, "known": self.known,
            "online": list(self.online), "present": sorted(self.present),
            "allowed": sorted(allowed) if allowed is not None else list(self.online),
            "equal_capacity": self.equal_capacity,
            "little": list(self.little), "big": list(self.big),
            "clusters": [list(c) for c in self.clusters],
            "cpus": [
                {"cpu": c.cpu, "capacity": c.capacity, "cluster": c.cluster,
                 "cluster_id": c.cluster_id, "package_id": c.package_id,
                 "siblings": list(c.siblings), "max_freq_khz": c.max_freq_khz,
                 "caches": [{"level": k.level, "type": k.type, "size": k.size,
                             "shared_cpus": list(k.shared_cpus)} for k in c.caches],
                 "names": self.names(c.cpu)}
                for c in self.cpus
            ],
        }


# --------------------------------------------------------------------------------------------
# Reading sysfs
# --------------------------------------------------------------------------------------------


def parse_cpulist(text: str) -> list[int]:
    """The kernel's CPU list format: ``0-3,6`` -> [0, 1, 2, 3, 6]; empty -> []."""
    out: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        first, last = int(lo), int(hi) if hi else int(lo)
        if last < first or last - first > 65536:
            raise ValueError(f"bad CPU range {part!r}")
        out.update(range(first, last + 1))
    return sorted(out)


def cpu_ranges(cpus: Iterable[int]) -> str:
    """``0-3,6``: the inverse of parse_cpulist (``none`` when empty)."""
    ordered = sorted(set(cpus))
    if not ordered:
        return "none"
    parts: list[str] = []
    start = prev = ordered[0]
    for cpu in ordered[1:] + [-2]:
        if cpu == prev + 1:
            prev = cpu
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cpu
    return ",".join(parts)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _read_list(path: Path) -> list[int] | None:
    text = _read(path)
    try:
        return parse_cpulist(text) if text is not None else None
    except ValueError:
        return None


def _cache_size(text: str | None) -> int | None:
    """sysfs writes ``32K``; be lenient about ``3M`` and a bare byte count too."""
    m = re.fullmatch(r"([0-9]+)\s*([KMG]?)", text or "", re.IGNORECASE)
    if not m:
        return None
    return int(m[1]) << {"": 0, "K": 10, "M": 20, "G": 30}[m[2].upper()]


def _caches(cpu_dir: Path) -> tuple[CacheInfo, ...]:
    out = []
    base = cpu_dir / "cache"
    try:
        names = sorted(p.name for p in base.iterdir() if re.fullmatch(r"index[0-9]+", p.name))
    except OSError:
        return ()
    for name in sorted(names, key=lambda n: int(n[5:])):
        d = base / name
        level, size = _read_int(d / "level"), _cache_size(_read(d / "size"))
        if level is None or size is None:
            continue
        out.append(CacheInfo(level=level, type=_read(d / "type") or "Unified", size=size,
                             shared_cpus=tuple(_read_list(d / "shared_cpu_list") or ())))
    return tuple(out)


def _max_freqs(cpu_root: Path) -> dict[int, int]:
    """kHz per CPU from cpufreq/policyM (a recorded tree need not have cpuN/cpufreq links)."""
    out: dict[int, int] = {}
    try:
        policies = [p for p in (cpu_root / "cpufreq").iterdir() if p.name.startswith("policy")]
    except OSError:
        return out
    for p in policies:
        khz = _read_int(p / "cpuinfo_max_freq")
        cpus = _read_list(p / "related_cpus") or _read_list(p / "affected_cpus") or []
        if khz is not None:
            out.update((c, khz) for c in cpus)
    return out


def _id(value: int | None) -> int | None:
    return None if value is None or value in _UNKNOWN_IDS or value < 0 else value


def read_topology(sysfs_root: str | os.PathLike[str] = "/sys") -> Topology:
    """The topology of the machine whose sysfs is mounted at ``sysfs_root``."""
    root = Path(sysfs_root).joinpath(*CPU_DIR)
    online_text = _read(root / "online")
    if online_text is None:
        raise TopologyError(f"no CPU topology under {sysfs_root} (cannot read {root / 'online'})")
    try:
        online = parse_cpulist(online_text)
    except ValueError as err:
        raise TopologyError(f"{root / 'online'}: {err}") from None
    if not online:
        raise TopologyError(f"{root / 'online'} lists no CPU")
    present = _read_list(root / "present") or []
    try:   # a CPU directory counts as present even if the tree has no `present` file
        present += [int(p.name[3:]) for p in root.iterdir() if re.fullmatch(r"cpu[0-9]+", p.name)]
    except OSError:
        pass
    freqs = _max_freqs(root)
    raw = []
    for cpu in online:
        d = root / f"cpu{cpu}"
        topo = d / "topology"
        package = _id(_read_int(topo / "physical_package_id"))
        if package is None:
            package = _id(_read_int(topo / "package_id"))
        siblings = _read_list(topo / "core_cpus_list") or _read_list(topo / "thread_siblings_list")
        raw.append(dict(
            cpu=cpu, capacity=_read_int(d / "cpu_capacity"),
            cluster_id=_id(_read_int(topo / "cluster_id")), package_id=package,
            siblings=tuple(siblings or (cpu,)),
            max_freq_khz=_read_int(d / "cpufreq" / "cpuinfo_max_freq") or freqs.get(cpu),
            caches=_caches(d)))
    # clusters: by (package, cluster_id), or by package where the kernel has no cluster_id (the
    # 5.10 BSP's arm64 puts the cluster there); numbered by their lowest CPU
    keys = [(r["package_id"], r["cluster_id"]) for r in raw]
    number = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    cpus = tuple(CpuInfo(cluster=number[k], **r) for r, k in zip(raw, keys))  # type: ignore[arg-type]
    return Topology(cpus=cpus, present=frozenset(present) | frozenset(online),
                    source=os.fspath(sysfs_root))


def machine_topology(allowed: Iterable[int], sysfs_root: str | os.PathLike[str] = "/sys") -> Topology:
    """This machine's topology, for checking a scenario against ``allowed`` CPUs.

    If sysfs cannot be read, or ``allowed`` names CPUs that are not online here (the caller is
    describing some other machine, as tests do), the topology is a flat one over ``allowed``:
    numbers and ``any`` work, little/big do not.
    """
    allowed = frozenset(allowed)
    try:
        topo = read_topology(sysfs_root)
    except TopologyError as err:
        return Topology.flat(allowed, why=str(err))
    if not allowed <= set(topo.online):
        return Topology.flat(allowed, why=f"the CPUs given ({cpu_ranges(allowed)}) are not all "
                                          f"online here ({cpu_ranges(topo.online)})")
    return topo


def describe(topo: Topology, allowed: Iterable[int]) -> tuple[list[str], list[str], list[list[str]]]:
    """What ``emul topo`` shows: summary lines, column names, one row per online CPU."""
    allowed = frozenset(allowed)
    lines = [f"source: {topo.source}",
             f"online CPUs: {cpu_ranges(topo.online)} (present: {cpu_ranges(topo.present)}); "
             f"this process may use: {cpu_ranges(allowed & set(topo.online))}"]
    if topo.equal_capacity:
        lines.append(f'{topo.why_no_little_big()}; a scenario naming them needs "fallback: any"')
    else:
        cap = {c.cpu: c.capacity for c in topo.cpus}
        lines.append(f"little: {cpu_ranges(topo.little)} (capacity {cap[topo.little[0]]}), "
                     f"big: {cpu_ranges(topo.big)} (capacity {cap[topo.big[0]]})")
    lines.append("clusters: " + ", ".join(f"cluster{k} = {cpu_ranges(c)}"
                                          for k, c in enumerate(topo.clusters)))
    labels = sorted({k.label for c in topo.cpus for k in c.caches},
                    key=lambda n: (n[1:2], n))
    columns = ["CPU", "capacity", "cluster", "max MHz", *labels, "SMT siblings", "scenario names"]
    rows = []
    for c in topo.cpus:
        caches = {k.label: k for k in c.caches}
        cells = [str(c.cpu), str(c.capacity) if c.capacity is not None else "-", str(c.cluster),
                 str(c.max_freq_khz // 1000) if c.max_freq_khz else "-"]
        for label in labels:
            k = caches.get(label)
            shared = f" ({cpu_ranges(k.shared_cpus)})" if k and len(k.shared_cpus) > 1 else ""
            cells.append(f"{format_size(k.size)}{shared}" if k else "-")
        others = [s for s in c.siblings if s != c.cpu]
        cells.append(cpu_ranges(others) if others else "none")
        names = " ".join(topo.names(c.cpu))
        cells.append(names if c.cpu in allowed else names + " (not allowed here)")
        rows.append(cells)
    return lines, columns, rows


# --------------------------------------------------------------------------------------------
# Resolving a scenario's cpu: value
# --------------------------------------------------------------------------------------------


def _pin(cpu: int, topo: Topology, allowed: frozenset[int], usable: list[int]) -> int:
    if cpu in allowed and cpu in topo.present and cpu in topo.online:
        return cpu
    msg = f"CPU {show_value(cpu)} is not available on this machine (available: {cpu_ranges(usable)})"
    if cpu in topo.present and cpu not in topo.online:
        msg += f"; CPU {cpu} is offline"
    elif cpu not in topo.present and topo.present != set(usable):
        msg += f"; the machine has no CPU {show_value(cpu)} (its CPUs: {cpu_ranges(topo.present)})"
    raise ValueError(msg)


def resolve_cpus(spec: Any, topo: Topology, allowed: Iterable[int], fallback_any: bool = False) -> list[int]:
    """The CPUs a scenario's ``cpu:`` value names, each online and in ``allowed``, ascending.

    ``spec`` is a CPU number, ``"cpuN"`` or a role (see the module docstring). Raises
    ValueError("expected ..., got ...") or, for a CPU that cannot be used, a message naming it.
    With ``fallback_any`` on a machine of equal capacities, ``little``/``big`` mean every allowed
    CPU and ``little[i]``/``big[i]`` the i-th allowed CPU (modulo their count), so a list of
    them still spreads over the CPUs there are.
    """
    allowed = frozenset(allowed)
    usable = sorted(allowed & set(topo.online))
    if isinstance(spec, int) and not isinstance(spec, bool) and spec >= 0:
        return [_pin(spec, topo, allowed, usable)]
    m = _ROLE_RE.fullmatch(spec.strip()) if isinstance(spec, str) else None
    if m is None:
        raise ValueError(f'expected a CPU number like 0 or "cpu0", got {show_value(spec)} '
                         f"(a role also works: {topo.role_hint()})")
    if m["cpu"] is not None:
        return [_pin(int(m["cpu"]), topo, allowed, usable)]
    if m["any"] is not None:
        cpus: Iterable[int] = topo.online
    elif m["cluster"] is not None:
        k, clusters = int(m["cluster"]), topo.clusters
        if k >= len(clusters):
            span = "cluster0" if len(clusters) == 1 else f"cluster0 to cluster{len(clusters) - 1}"
            raise ValueError(f"expected {span}, got {show_value(spec)}")
        cpus = clusters[k]
    else:
        kind, index = m["kind"].lower(), m["index"]
        members = topo.little if kind == "little" else topo.big
        if not members:
            if not fallback_any:
                raise ValueError(f"expected a CPU number, cpuN, clusterK or any, got {show_value(spec)}: "
                                 f'{topo.why_no_little_big()} (with "fallback: any" the scenario '
                                 "would run it on any CPU)")
            members = tuple(usable)
            if index is not None and members:
                members = (members[int(index) % len(members)],)
        elif index is not None:
            i = int(index)
            if i >= len(members):
                raise ValueError(f"expected {kind}[0] to {kind}[{len(members) - 1}] "
                                 f"(the {kind} CPUs are {cpu_ranges(members)}), got {show_value(spec)}")
            members = (members[i],)
        cpus = members
    picked = [c for c in sorted(cpus) if c in allowed]
    if not picked:
        named = cpu_ranges(cpus)
        raise ValueError(f"expected a role naming a CPU this process may use (available: "
                         f"{cpu_ranges(usable)}), got {show_value(spec)}, which is "
                         f"{'CPU' if len(list(cpus)) == 1 else 'CPUs'} {named}")
    return picked


# --------------------------------------------------------------------------------------------
# What the results say about placement
# --------------------------------------------------------------------------------------------


def migrations_at_least(worker: Mapping[str, Any]) -> int:
    """A lower bound on a worker's migrations in one phase: it ran on len(cpus_seen) CPUs, so it
    moved at least that many minus one times. A row with a measured ``migrations`` gives that."""
    if isinstance(worker.get("migrations"), int):
        return worker["migrations"]
    return max(0, len(worker.get("cpus_seen") or ()) - 1)


def oversubscription_warning(doc: Mapping[str, Any]) -> str | None:
    """One line when, in some repeat, more workers were busy (CPU time >= half their wall time)
    than they had CPUs: the extra ones waited for a CPU, and the times include that wait.

    Checked per repeat two ways: busy workers against the union of their allowed CPUs, and
    busy workers pinned to one CPU against each other (two of them on one CPU share it even if
    other CPUs are idle). None when every repeat is clean.
    """
    repeats = doc.get("repeats") or []
    worst: tuple[int, str] | None = None
    hits = 0
    for row in repeats:
        busy: dict[str, list[int]] = {}
        for name, w in (row.get("workers") or {}).items():
            wall, cpu = w.get("wall_s") or 0.0, w.get("cpu_s") or 0.0
            if wall > 0 and cpu / wall >= BUSY_SHARE:
                busy[name] = sorted(w.get("cpus_allowed") or [])
        problems: list[tuple[int, str]] = []     # (workers too many, what); the specific first
        shared: dict[int, list[str]] = {}
        for name, allowed in busy.items():
            if len(allowed) == 1:
                shared.setdefault(allowed[0], []).append(name)
        for cpu, names in sorted(shared.items()):
            if len(names) > 1:
                problems.append((len(names) - 1, f"{' and '.join(names)} busy on CPU {cpu}"))
        cpus = set().union(*busy.values()) if busy else set()
        if len(busy) > len(cpus) and cpus:
            problems.append((len(busy) - len(cpus),
                             f"{len(busy)} busy workers ({', '.join(busy)}) on "
                             f"{len(cpus)} CPU{'s' if len(cpus) != 1 else ''} ({cpu_ranges(cpus)})"))
        if problems:
            hits += 1
            top = max(problems, key=lambda p: p[0])
            if worst is None or top[0] > worst[0]:
                worst = top
    if worst is None:
        return None
    return (f"oversubscribed in {hits} of {len(repeats)} repeats: {worst[1]}; the times include "
            f"waiting for a CPU (give each busy worker its own CPU, see emul topo)")
