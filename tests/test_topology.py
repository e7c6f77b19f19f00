"""CPU topology: recorded sysfs trees parse, roles resolve, scenarios pin by role, `emul topo`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emul.errors import InputError
from emul.config.profiles import builtin_names
from emul.config.scenario import scenario_from_dict
from emul.strategies import strategy_names
from emul.config.topology import (Topology, cpu_ranges, machine_topology, migrations_at_least,
    oversubscription_warning, parse_cpulist, read_topology, resolve_cpus)
from emul.config.vary import load_matrix
from tests.conftest import ROOT, run_emul

DATA = ROOT / "tests" / "data" / "sysfs"
RK3588 = DATA / "rk3588"
X86 = DATA / "x86-2cpu"
EIGHT = set(range(8))


@pytest.fixture(scope="module")
def rk() -> Topology:
    return read_topology(RK3588)


@pytest.fixture(scope="module")
def x86() -> Topology:
    return read_topology(X86)


def _copy_tree(tmp_path: Path, src: Path = RK3588) -> Path:
    dst = tmp_path / "sysfs"
    shutil.copytree(src, dst)
    return dst


def _cpu_dir(root: Path) -> Path:
    return root / "devices" / "system" / "cpu"


# ------------------------------------------------------------------------------ reading


def test_cpulist_round_trip() -> None:
    assert parse_cpulist("0-3,6\n") == [0, 1, 2, 3, 6]
    assert parse_cpulist("") == []
    assert cpu_ranges([6, 0, 1, 2, 3]) == "0-3,6"
    assert cpu_ranges([]) == "none"
    with pytest.raises(ValueError):
        parse_cpulist("3-1")


def test_rk3588_tree(rk: Topology) -> None:
    assert rk.online == tuple(range(8)) and rk.present == frozenset(range(8))
    assert [c.capacity for c in rk.cpus] == [397] * 4 + [1024] * 4
    assert not rk.equal_capacity
    assert rk.little == (0, 1, 2, 3) and rk.big == (4, 5, 6, 7)
    assert rk.clusters == ((0, 1, 2, 3), (4, 5), (6, 7))
    assert [c.cluster_id for c in rk.cpus] == [0, 0, 0, 0, 1, 1, 2, 2]
    assert [c.max_freq_khz for c in rk.cpus] == [1800000] * 4 + [2400000] * 4
    assert all(c.siblings == (c.cpu,) for c in rk.cpus)          # no SMT
    a55, a76 = rk.info(2), rk.info(4)
    assert [(k.label, k.size) for k in a55.caches] == [
        ("L1d", 32 << 10), ("L1i", 32 << 10), ("L2", 128 << 10), ("L3", 3 << 20)]
    assert [(k.label, k.size) for k in a76.caches][:3] == [
        ("L1d", 64 << 10), ("L1i", 64 << 10), ("L2", 512 << 10)]
    assert a76.caches[3].shared_cpus == tuple(range(8))
    assert rk.names(2) == ["cpu2", "little", "little[2]", "cluster0", "any"]
    assert rk.names(5) == ["cpu5", "big", "big[1]", "cluster1", "any"]


def test_x86_tree_is_flat(x86: Topology) -> None:
    assert x86.online == (0, 1)
    assert all(c.capacity is None for c in x86.cpus)             # no cpu_capacity on x86
    assert x86.equal_capacity and x86.little == () and x86.big == ()
    # cluster_id 65535 means "unknown": the package groups them
    assert [c.cluster_id for c in x86.cpus] == [None, None] and x86.clusters == ((0, 1),)
    assert [c.max_freq_khz for c in x86.cpus] == [None, None]
    assert [k.size for k in x86.info(0).caches] == [48 << 10, 32 << 10, 1 << 20, 32 << 20]
    assert x86.names(1) == ["cpu1", "cluster0", "any"]


def test_older_arm64_kernel_clusters_by_package(tmp_path: Path) -> None:
    """5.10 BSP kernels: no cluster_id, the cluster index in package_id, thread_siblings_list,
    and a cpuN/cpufreq directory instead of policies."""
    root = _copy_tree(tmp_path)
    cpu = _cpu_dir(root)
    shutil.rmtree(cpu / "cpufreq")
    for n in range(8):
        topo = cpu / f"cpu{n}" / "topology"
        (topo / "cluster_id").unlink()
        (topo / "physical_package_id").write_text(f"{0 if n < 4 else 1 if n < 6 else 2}\n")
        (topo / "core_cpus_list").unlink()
        (topo / "thread_siblings_list").write_text(f"{n}\n")
        (cpu / f"cpu{n}" / "cpufreq").mkdir()
        (cpu / f"cpu{n}" / "cpufreq" / "cpuinfo_max_freq").write_text("2256000\n" if n >= 4 else "1800000\n")
    t = read_topology(root)
    assert t.clusters == ((0, 1, 2, 3), (4, 5), (6, 7))
    assert t.info(6).max_freq_khz == 2256000 and t.info(6).siblings == (6,)


def test_a_missing_tree_is_a_topology_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="no CPU topology"):
        read_topology(tmp_path)


def test_machine_topology_falls_back_to_flat(tmp_path: Path) -> None:
    flat = machine_topology({0, 1}, sysfs_root=tmp_path)          # nothing to read
    assert not flat.known and flat.online == (0, 1) and flat.equal_capacity
    other = machine_topology(set(range(16)), sysfs_root=RK3588)  # CPUs this tree lacks
    assert not other.known and other.online == tuple(range(16))
    assert machine_topology({2, 3}, sysfs_root=RK3588).known


# ------------------------------------------------------------------------------ roles


@pytest.mark.parametrize(("spec", "cpus"), [
    ("little", [0, 1, 2, 3]), ("big", [4, 5, 6, 7]), ("little[1]", [1]), ("big[0]", [4]),
    ("cluster1", [4, 5]), ("cluster2", [6, 7]), ("any", list(range(8))), ("all", list(range(8))),
    ("cpu3", [3]), (3, [3]), ("BIG[3]", [7]), (" little[0] ", [0]),
])
def test_roles_resolve_on_rk3588(rk: Topology, spec, cpus: list[int]) -> None:
    assert resolve_cpus(spec, rk, EIGHT) == cpus


def test_roles_keep_to_allowed_cpus(rk: Topology) -> None:
    assert resolve_cpus("any", rk, {1, 5}) == [1, 5]
    assert resolve_cpus("big", rk, {0, 6, 7}) == [6, 7]
    with pytest.raises(ValueError, match=r'available: 0-3\), got "big", which is CPUs 4-7'):
        resolve_cpus("big", rk, {0, 1, 2, 3})
    with pytest.raises(ValueError, match=r'got "big\[1\]", which is CPU 5'):
        resolve_cpus("big[1]", rk, {4})


@pytest.mark.parametrize(("spec", "message"), [
    ("big[4]", r'expected big\[0\] to big\[3\] \(the big CPUs are 4-7\), got "big\[4\]"'),
    ("cluster3", 'expected cluster0 to cluster2, got "cluster3"'),
    ("medium", r'expected a CPU number like 0 or "cpu0", got "medium" \(a role also works: little, '),
    ("little[x]", 'got "little\\[x\\]"'),
    (True, "got true"), (-1, "got -1"), (None, "got null"), ([1], "got a list"),
])
def test_bad_roles_say_what_was_expected(rk: Topology, spec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_cpus(spec, rk, EIGHT)


@pytest.mark.parametrize("spec", ["little", "big", "little[0]", "big[3]"])
def test_equal_capacities_refuse_little_and_big(x86: Topology, spec: str) -> None:
    with pytest.raises(ValueError, match="no little or big cores.*fallback: any"):
        resolve_cpus(spec, x86, {0, 1})


def test_fallback_any_runs_little_and_big_anywhere(x86: Topology) -> None:
    assert resolve_cpus("little", x86, {0, 1}, fallback_any=True) == [0, 1]
    assert resolve_cpus("big", x86, {1}, fallback_any=True) == [1]
    # little[i] / big[i]: the i-th allowed CPU, modulo, so a list of them still spreads out
    assert [resolve_cpus(f"big[{i}]", x86, {0, 1}, fallback_any=True) for i in range(4)] == [
        [0], [1], [0], [1]]
    assert resolve_cpus("cluster0", x86, {0, 1}) == [0, 1]


def test_offline_and_absent_cpus_are_named(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    (_cpu_dir(root) / "online").write_text("0-2,4-7\n")
    t = read_topology(root)
    assert t.online == (0, 1, 2, 4, 5, 6, 7) and 3 in t.present
    allowed = set(t.online)
    with pytest.raises(ValueError, match=r"CPU 3 is not available on this machine \(available: 0-2,4-7\); CPU 3 is offline"):
        resolve_cpus(3, t, allowed)
    with pytest.raises(ValueError, match="CPU 3 is offline"):
        resolve_cpus("cpu3", t, EIGHT)          # even if the caller claims it may use it
    with pytest.raises(ValueError, match=r"the machine has no CPU 9 \(its CPUs: 0-7\)"):
        resolve_cpus(9, t, allowed)
    assert t.little == (0, 1, 2) and resolve_cpus("little", t, allowed) == [0, 1, 2]
    with pytest.raises(ValueError, match=r"expected little\[0\] to little\[2\]"):
        resolve_cpus("little[3]", t, allowed)


# ------------------------------------------------------------------------------ scenarios


def _build(doc: dict, topo: Topology, cpus=EIGHT):
    return scenario_from_dict({"name": "t", **doc}, where="s.yaml", cpus=cpus,
                              strategies=strategy_names(), profiles=builtin_names(), topology=topo)


def test_scenario_roles_resolve(rk: Topology) -> None:
    sc = _build({"workers": {"killer": {"cpu": ["big[0]", "big[1]", "big[2]", "big[3]"]},
                             "gc": {"cpu": "little[3]"}, "swapout": {"cpu": "cluster1"},
                             "swapin": {"cpu": "little[2]"}, "reclaim": {"cpu": "big"}}}, rk)
    w = sc.workers
    assert w.killers == (4, 5, 6, 7) and w.killer.cpu == 4
    assert w.gc.cpus == (3,)
    assert w.swapout.cpu == 4 and w.swapin.cpu == 2 and w.reclaim.cpu == 4   # one CPU: the first
    assert sc.fallback == "error" and sc.to_dict()["fallback"] == "error"


def test_a_role_in_killer_or_gc_is_one_worker_per_cpu(rk: Topology) -> None:
    w = _build({"workers": {"killer": {"cpu": "little"}, "gc": {"cpu": "cluster2"}}}, rk).workers
    assert w.killers == (0, 1, 2, 3) and w.gc.cpus == (6, 7)
    w = _build({"workers": {"killer": {"cpu": "big", "count": 2}, "gc": {"cpu": "big", "count": 3}}}, rk).workers
    assert w.killers == (4, 5) and w.gc.cpus == (4, 5, 6)
    w = _build({"workers": {"killer": {"cpu": ["cluster1", 0]}}}, rk).workers
    assert w.killers == (4, 5, 0)


def test_scenario_role_errors_name_file_and_key(rk: Topology, x86: Topology) -> None:
    with pytest.raises(InputError) as info:
        _build({"workers": {"gc": {"cpu": [0, "big[7]"]}}}, rk)
    assert str(info.value).startswith('s.yaml: workers.gc.cpu[1]: expected big[0] to big[3]')
    with pytest.raises(InputError) as info:
        _build({"workers": {"killer": {"cpu": "little[2]"}}}, x86, cpus={0, 1})
    assert str(info.value).startswith('s.yaml: workers.killer.cpu: expected a CPU number, cpuN, '
                                      'clusterK or any, got "little[2]": ')
    with pytest.raises(InputError, match='s.yaml: fallback: expected any or error, got "maybe"'):
        _build({"fallback": "maybe"}, x86, cpus={0, 1})


def test_fallback_any_in_a_scenario(x86: Topology) -> None:
    sc = _build({"fallback": "any", "workers": {"killer": {"cpu": ["big[0]", "big[1]"]},
                                                "gc": {"cpu": "little[3]"}}}, x86, cpus={0, 1})
    assert sc.workers.killers == (0, 1) and sc.workers.gc.cpus == (1,) and sc.fallback == "any"


RK_EXPECT = {
    "seed-unmap-little.yaml": {"killers": (2,), "gc": (3,), "swapout": 2},
    "seed-swapin-little.yaml": {"swapin": 2, "gc": (3,), "swapout": 2},
    "seed-unmap-big.yaml": {"killers": (4,), "gc": (5,), "swapout": 4},
    "seed-swapin-big.yaml": {"swapin": 4, "gc": (5,), "swapout": 4},
    "four-exits-big.yaml": {"killers": (4, 5, 6, 7), "gc": (3,), "swapout": 0},
    "four-exits-little.yaml": {"killers": (0, 1, 2, 3), "gc": (4,), "swapout": 5},
}


# scenarios that emulate the board's core classes on any machine (pinned by CPU number)
RK_EMULATED = {"seed-unmap-emulated.yaml", "gc-drain-alone.yaml"}


def test_every_rk3588_scenario_is_listed() -> None:
    assert sorted(p.name for p in (ROOT / "scenarios" / "rk3588").glob("*.yaml")) == sorted(
        [*RK_EXPECT, *RK_EMULATED])


@pytest.mark.parametrize("name", sorted(RK_EMULATED))
def test_an_emulated_rk3588_scenario_loads_on_a_machine_of_equal_cpus(x86: Topology,
                                                                      name: str) -> None:
    (sc,) = load_matrix(ROOT / "scenarios" / "rk3588" / name, cpus={0, 1},
                        strategies=strategy_names(), profiles=builtin_names(), topology=x86)
    assert sc.core_of("killer") == "little"
    assert {sc.core_of("gc", v) for v in sc.variants if v.strategy == "bitmap"} == {"little", "big"}


@pytest.mark.parametrize("name", sorted(RK_EXPECT))
def test_rk3588_scenarios_load_on_the_recorded_board(rk: Topology, x86: Topology, name: str) -> None:
    path = ROOT / "scenarios" / "rk3588" / name
    groups = load_matrix(path, cpus=EIGHT, strategies=strategy_names(), profiles=builtin_names(),
                         topology=rk)
    for sc in groups:
        want, w = RK_EXPECT[name], sc.workers
        assert w.gc.cpus == want["gc"] and w.swapout.cpu == want["swapout"]
        if "killers" in want:
            assert w.killers == want["killers"]
        if "swapin" in want:
            assert w.swapin.cpu == want["swapin"]
        assert sc.fallback == "error"            # for the board: no fallback on purpose
    # on a machine of equal CPUs they are refused, naming the key
    with pytest.raises(InputError, match="no little or big cores"):
        load_matrix(path, cpus={0, 1}, strategies=strategy_names(), profiles=builtin_names(),
                    topology=x86)


# ------------------------------------------------------------------------------ emul topo


def test_emul_topo_on_the_recorded_rk3588() -> None:
    r = run_emul("topo", "--sysfs-root", str(RK3588), timeout=60)
    assert r.returncode == 0, r.stderr
    for text in ("little[2]", "big[0]", "cluster1", "cluster2", "397", "1024", "2400", "512K",
                 "3M (0-7)", "little: 0-3 (capacity 397), big: 4-7 (capacity 1024)"):
        assert text in r.stdout, text
    row = next(line for line in r.stdout.splitlines() if line.startswith("6 "))
    assert row.split()[-4:] == ["big", "big[2]", "cluster2", "any"]


def test_emul_topo_json_and_errors() -> None:
    r = run_emul("topo", "--sysfs-root", str(X86), "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["online"] == [0, 1] and doc["equal_capacity"] and doc["little"] == []
    assert doc["cpus"][1]["names"] == ["cpu1", "cluster0", "any"]
    bad = run_emul("topo", "--sysfs-root", "/nonexistent", timeout=60)
    assert bad.returncode == 2 and "emul: --sysfs-root: no CPU topology under /nonexistent" in bad.stderr


# ------------------------------------------------------------------------------ results


def _worker(cpu_s: float, wall_s: float, allowed: list[int], seen: list[int] | None = None) -> dict:
    return {"role": "x", "cpus_allowed": allowed, "cpus_seen": seen if seen is not None else allowed,
            "cpu_s": cpu_s, "wall_s": wall_s, "voluntary": 0, "involuntary": 0}


def test_oversubscription_warning() -> None:
    clean = {"repeats": [{"workers": {"killer": _worker(1.0, 1.0, [0]), "gc0": _worker(0.9, 1.0, [1]),
                                      "swapout": _worker(0.0, 1.0, [0])}}]}
    assert oversubscription_warning(clean) is None
    shared = {"repeats": [
        {"workers": {"killer": _worker(1.0, 1.0, [0]), "swapin": _worker(0.8, 1.0, [0]),
                     "gc0": _worker(0.9, 1.0, [1])}},
        {"workers": {"killer": _worker(1.0, 1.0, [0]), "swapin": _worker(0.1, 1.0, [0])}},
    ]}
    msg = oversubscription_warning(shared)
    assert msg is not None and "in 1 of 2 repeats" in msg and "killer and swapin busy on CPU 0" in msg
    crowd = {"repeats": [{"workers": {f"k{i}": _worker(1.0, 1.0, [0, 1]) for i in range(3)}}]}
    assert "3 busy workers (k0, k1, k2) on 2 CPUs (0-1)" in oversubscription_warning(crowd)
    assert oversubscription_warning({"repeats": []}) is None


def test_migrations_and_the_worker_table() -> None:
    from rich.console import Console

    from emul.report.tables import worker_table
    assert migrations_at_least(_worker(1, 1, [0, 1], seen=[0, 1])) == 1
    assert migrations_at_least({**_worker(1, 1, [0]), "migrations": 7}) == 7
    doc = {"repeats": [{"workers": {"killer": _worker(1.0, 1.0, [0, 1], seen=[0, 1])}},
                       {"workers": {"killer": _worker(1.0, 1.0, [0, 1], seen=[1])}}]}
    console = Console(width=200, record=True)
    console.print(worker_table(doc))
    text = console.export_text()
    assert "migrations" in text and "≥ 1" in text


_SPECS = st.one_of(
    st.text(max_size=14), st.integers(-3, 10**6), st.none(), st.booleans(), st.floats(),
    st.from_regex(r"(little|big|cluster|cpu|any|all)(\[[0-9]{0,6}\]|[0-9]{0,6})?", fullmatch=True),
)


@settings(max_examples=300, deadline=None)
@given(_SPECS, st.sets(st.integers(0, 9), max_size=10), st.booleans())
def test_fuzz_resolve_gives_allowed_cpus_or_a_value_error(spec, allowed: set[int], fallback: bool) -> None:
    rk, x86 = read_topology(RK3588), read_topology(X86)
    for topo in (rk, x86):
        try:
            cpus = resolve_cpus(spec, topo, allowed, fallback)
        except ValueError as err:
            assert "expected" in str(err) or "not available" in str(err) or "offline" in str(err)
            continue
        assert cpus and set(cpus) <= allowed & set(topo.online) and cpus == sorted(set(cpus))
