"""emul calibrate: its refusals (fake /proc and /sys, never the real device), the device set-up
and restore sequence (fake sysfs, fake swapon), the swap header, and the profile fit.

The real measurement runs only with EMUL_REAL_ZRAM=1 (root, a free /dev/zramN): the test marked
``realzram``.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_emul

from emul import cli
from emul.calibrate import host as calhost
from emul.calibrate.compare import side_by_side_rows
from emul.calibrate.device import SwapOps, ZramSwapSetup, swap_header
from emul.calibrate.emulate import emul_scenario
from emul.calibrate.fit import derive_profile, pages_per_object
from emul.calibrate.host import Host, parse_comp_algorithm, swap_state
from emul.calibrate.measure import WORKLOADS, clean_median
from emul.calibrate.plan import _busy_reason, plan_device
from emul.calibrate.profile import profile_yaml
from emul.errors import SystemNotReady
from emul.config.profiles import load_profile

MM_EMPTY = "       0        0        0        0        0        0        0        0        0\n"
SWAPS_HEAD = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


def fake_root(tmp_path: Path, zram: dict[str, dict] | None = None, swaps: list[str] = (),
              mounts: list[str] = ()) -> Path:
    """A root directory with proc/swaps, proc/mounts and sys/block/zramN/{disksize,...}."""
    root = tmp_path / "root"
    (root / "proc" / "sys" / "vm").mkdir(parents=True)
    (root / "proc" / "swaps").write_text(SWAPS_HEAD + "".join(s + "\n" for s in swaps))
    (root / "proc" / "mounts").write_text("".join(m + "\n" for m in mounts))
    (root / "proc" / "sys" / "vm" / "page-cluster").write_text("3\n")
    (root / "proc" / "meminfo").write_text("MemAvailable:   16000000 kB\n")
    (root / "sys" / "block" / "vda").mkdir(parents=True)
    (root / "dev").mkdir()
    for name, attrs in (zram or {}).items():
        d = root / "sys" / "block" / name
        (d / "holders").mkdir(parents=True)
        (d / "disksize").write_text(f"{attrs.get('disksize', 0)}\n")
        (d / "comp_algorithm").write_text(attrs.get("comp_algorithm", "[lzo-rle] lzo lz4 zstd\n"))
        (d / "mm_stat").write_text(attrs.get("mm_stat", MM_EMPTY))
        (d / "reset").write_text("")
        (root / "dev" / name).write_text("")
    return root


class FakeHost(Host):
    """Writes behave as zram's sysfs does: reset zeroes disksize and brings back the default
    compressor; comp_algorithm selects one of the offered names."""

    def zram_write(self, name, attr, value):
        d = self.path("sys", "block", name)
        algs = parse_comp_algorithm((d / "comp_algorithm").read_text())[1]
        if attr == "reset":
            (d / "disksize").write_text("0\n")
            value, attr = "lzo-rle", "comp_algorithm"
        if attr == "comp_algorithm":
            assert value in algs
            value = " ".join(f"[{a}]" if a == value else a for a in algs) + "\n"
        (d / attr).write_text(value)


def host(root: Path) -> Host:
    return FakeHost(root)


def selected(h: Host, name: str) -> str:
    return parse_comp_algorithm(h.zram_attr(name, "comp_algorithm"))[0]


# ----------------------------------------------------------------------------- refusals

def test_no_zram_device(tmp_path):
    root = fake_root(tmp_path)
    with pytest.raises(SystemNotReady, match="no zram device.*modprobe zram") as e:
        plan_device(host(root), None, setup=False, need_kb=1024)
    assert e.value.exit_code == 2
    with pytest.raises(SystemNotReady, match="no zram device"):
        plan_device(host(root), None, setup=True, need_kb=1024, euid=0)


def test_no_active_zram_swap_without_setup(tmp_path):
    root = fake_root(tmp_path, {"zram0": {}})
    with pytest.raises(SystemNotReady, match=r"no zram swap device is active.*--setup"):
        plan_device(host(root), None, setup=False, need_kb=1024)


def test_setup_needs_root(tmp_path, monkeypatch):
    root = fake_root(tmp_path, {"zram0": {}})
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SystemNotReady, match=r"--setup needs root \(you are uid 1000\)") as e:
        plan_device(host(root), None, setup=True, need_kb=1024)
    assert e.value.exit_code == 2


@pytest.mark.parametrize("how", ["swap", "mounted", "holder", "data"])
def test_device_busy(tmp_path, how):
    attrs = {"disksize": 536870912}
    swaps, mounts = [], []
    if how == "swap":
        swaps = ["/dev/zram1                              partition\t524284\t\t1024\t\t100"]
    elif how == "mounted":
        mounts = ["/dev/zram1 /mnt/scratch ext4 rw,relatime 0 0"]
    elif how == "data":
        attrs["mm_stat"] = "  4096000  2048000   2400000  0  2400000  0  0  0  0\n"
    root = fake_root(tmp_path, {"zram0": {}, "zram1": attrs}, swaps, mounts)
    if how == "holder":
        (root / "sys" / "block" / "zram1" / "holders" / "dm-0").mkdir()
    want = {"swap": "in use as swap", "mounted": "mounted on /mnt/scratch",
            "holder": "held by dm-0", "data": "holds 4096000 bytes"}[how]
    with pytest.raises(SystemNotReady, match=f"device busy: /dev/zram1 .*{want}"):
        plan_device(host(root), "/dev/zram1", setup=True, need_kb=1024, euid=0)
    # without --device, the free zram0 is taken instead
    plan = plan_device(host(root), None, setup=True, need_kb=1024, euid=0)
    assert plan.name == "zram0" and plan.setup


def test_all_busy_and_configured_needs_device(tmp_path):
    root = fake_root(tmp_path, {"zram0": {"disksize": 4096 * 1024}},
                     ["/dev/zram1 partition 1000 0 5"])
    with pytest.raises(SystemNotReady, match="no unused zram device.*name it with --device"):
        plan_device(host(root), None, setup=True, need_kb=1024, euid=0)
    plan = plan_device(host(root), "zram0", setup=True, need_kb=1024, euid=0)
    assert plan.prior.disksize == 4096 * 1024


def test_other_swap_outranks_zram(tmp_path):
    root = fake_root(tmp_path, {"zram0": {"disksize": 1 << 30}},
                     ["/dev/vdb partition 4194300 0 200", "/dev/zram0 partition 1048572 0 100"])
    with pytest.raises(SystemNotReady, match=r"/dev/vdb \(priority 200\).*swapon -p 32767"):
        plan_device(host(root), None, setup=False, need_kb=1024)


def test_active_zram_swap_is_used(tmp_path):
    root = fake_root(tmp_path, {"zram0": {"disksize": 1 << 30}},
                     ["/swapfile file 4194300 0 -2", "/dev/zram0 partition 1048572 0 100"])
    plan = plan_device(host(root), None, setup=False, need_kb=1024)
    assert (plan.name, plan.setup, plan.priority) == ("zram0", False, 100)
    with pytest.raises(SystemNotReady, match="use a smaller --mib"):
        plan_device(host(root), None, setup=False, need_kb=4 << 20)


def test_cli_refusal_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(calhost, "HOST_ROOT", fake_root(tmp_path))
    rc = cli.main(["calibrate", "--setup", "--no-emulate", "--output", str(tmp_path / "p.yaml")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("emul: no zram device") and "Traceback" not in err
    assert not (tmp_path / "p.yaml").exists()


def test_cli_bad_device_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(calhost, "HOST_ROOT", fake_root(tmp_path, {"zram0": {}}))
    assert cli.main(["calibrate", "--device", "/dev/sda"]) == 2
    assert "--device: expected /dev/zramN" in capsys.readouterr().err


# ----------------------------------------------------------------------------- set-up / restore

class FakeOps(SwapOps):
    """swapon / swapoff edit the fake /proc/swaps; mkswap writes the header into the fake dev."""

    def __init__(self, root: Path, fail_swapoff: int = 0) -> None:
        self.root, self.calls, self.fail_swapoff = root, [], fail_swapoff

    def mkswap(self, dev, disksize, page_size):
        self.calls.append("mkswap")
        dev.write_bytes(swap_header(disksize // page_size, page_size))
        return "fake mkswap"

    def swapon(self, dev, priority):
        self.calls.append(f"swapon {priority}")
        p = self.root / "proc" / "swaps"
        p.write_text(p.read_text() + f"/dev/{dev.name} partition 1000 0 {priority}\n")

    def swapoff(self, dev):
        self.calls.append("swapoff")
        if self.fail_swapoff:
            self.fail_swapoff -= 1
            raise OSError(16, "busy")
        p = self.root / "proc" / "swaps"
        p.write_text("".join(x for x in p.read_text().splitlines(True)
                             if not x.startswith(f"/dev/{dev.name} ")))


@pytest.mark.parametrize("prior_disksize", [0, 1 << 26])
def test_setup_restores_even_on_interrupt(tmp_path, prior_disksize):
    root = fake_root(tmp_path, {"zram0": {"disksize": prior_disksize}})
    h = host(root)
    plan = plan_device(h, "zram0", setup=True, need_kb=1024, euid=0)
    before = swap_state(h, "zram0")
    ops = FakeOps(root, fail_swapoff=1)
    setup = ZramSwapSetup(h, plan, 1 << 27, 4096, ops=ops, log=lambda s: None)
    with pytest.raises(KeyboardInterrupt):
        with setup:
            assert [s.zram for s in h.swaps()] == ["zram0"]
            assert h.zram_attr("zram0", "disksize") == str(1 << 27)
            assert selected(h, "zram0") == "lz4"
            assert h.page_cluster() == 0
            raise KeyboardInterrupt
    assert ops.calls == ["mkswap", "swapon 32767", "swapoff", "swapoff"]   # retried once
    after = swap_state(h, "zram0")
    assert after == before and not setup.restore_problems
    assert selected(h, "zram0") == "lzo-rle"


def test_setup_failure_midway_restores(tmp_path):
    root = fake_root(tmp_path, {"zram0": {}})
    h = host(root)
    plan = plan_device(h, None, setup=True, need_kb=1024, euid=0)

    class BadSwapon(FakeOps):
        def swapon(self, dev, priority):
            raise SystemNotReady("swapon failed: Operation not permitted")

    with pytest.raises(SystemNotReady, match="swapon failed"):
        with ZramSwapSetup(h, plan, 1 << 27, 4096, ops=BadSwapon(root), log=lambda s: None):
            pytest.fail("the block must not run")
    assert h.zram_attr("zram0", "disksize") == "0"          # reset again
    assert selected(h, "zram0") == "lzo-rle"


def test_swap_header():
    hdr = swap_header(32768, 4096)
    assert len(hdr) == 4096 and hdr[-10:] == b"SWAPSPACE2"
    version, last_page, bad = struct.unpack_from("<III", hdr, 1024)
    assert (version, last_page, bad) == (1, 32767, 0)
    assert hdr[1052:1066] == b"emul-calibrate"


def test_parse_comp_algorithm():
    assert parse_comp_algorithm("lzo [lz4] zstd") == ("lz4", ["lzo", "lz4", "zstd"])
    assert parse_comp_algorithm("lz4\n") == ("lz4", ["lz4"])


# ----------------------------------------------------------------------------- the fit

FAKE = {
    "page_size": 4096, "comp_len_mean": 2080.0, "spread": 0.25,
    "ns_per_page": {"unmap-zero": 80.0, "unmap-resident": 330.0, "unmap-swapped": 600.0,
                    "swapin": 6000.0, "swapin-same": 4200.0, "pageout": 7000.0},
}
MACHINERY = {"unmap-resident": 30.0, "unmap-swapped": 170.0, "swapin": 300.0,
             "swapin-same": 200.0}


def emulated_total(c: dict, ppo: float, kind: str, mach: float, comp_len: float) -> float:
    """What emul charges per page for a workload with these costs (sync strategy)."""
    entry = c["swap_entry_free"] + c["slot_free"] + c["zs_free"] + ppo * c["free_zspage_page"]
    return mach + {
        "unmap-resident": c["zap_pte"] + c["free_folio"],
        "unmap-swapped": c["zap_pte"] + entry,
        "swapin-same": c["fault"] + c["swap_entry_free"] + c["slot_free"],
        "swapin": c["fault"] + c["decompress_kib"] * comp_len / 1024 + entry,
    }[kind]


def test_derive_profile_reproduces_the_measurements():
    fit = derive_profile(FAKE, MACHINERY)
    c = fit.costs_ns
    assert not fit.clamped
    assert c["zap_pte"] == 50 and c["free_folio"] == 250          # 80 - 30; 330 - 30 - 50
    S = 600 - 170 - 50
    assert c["swap_entry_free"] == round(0.2 * S)
    assert c["slot_free"] == round(0.35 * 0.8 * S)
    assert c["zs_free"] == round(0.65 * 0.8 * S / 3) == c["zs_malloc"]
    assert c["free_zspage_page"] == c["alloc_zspage_page"]
    assert c["slot_free_cold"] == 0 and c["wake_up"] == 1000
    ppo = pages_per_object(2080.0, 0.25, 4096)
    assert 0.45 < ppo < 0.6            # ~2 KiB objects: 8-page zspages of ~15
    for kind, mach in MACHINERY.items():
        got = emulated_total(c, ppo, kind, mach, 2080.0)
        assert got == pytest.approx(FAKE["ns_per_page"][kind], abs=3), kind
    # without the machinery, the same equations hold with m = 0
    bare = derive_profile(FAKE).costs_ns
    assert bare["zap_pte"] == 80 and bare["free_folio"] == 250
    assert emulated_total(bare, ppo, "unmap-swapped", 0, 2080) == pytest.approx(600, abs=3)


def test_derive_profile_clamps_negative_residuals():
    meas = json.loads(json.dumps(FAKE))
    meas["ns_per_page"]["unmap-zero"] = 10.0           # below emul's own 30 ns
    meas["ns_per_page"]["swapin"] = 4300.0             # barely above same-filled
    fit = derive_profile(meas, MACHINERY)
    assert fit.costs_ns["zap_pte"] == 0
    assert fit.costs_ns["free_folio"] == 300
    assert fit.costs_ns["decompress_kib"] == 0
    assert set(fit.clamped) == {"zap_pte", "decompress_kib"}
    assert all(v >= 0 for v in fit.costs_ns.values())


def test_profile_yaml_loads(tmp_path):
    meas = dict(FAKE, device="zram0", mib=16, pages=4096, repeats=3, cpus=[0, 1],
                compression_ratio=1.97, output=str(tmp_path / "calibrated-test.yaml"),
                concurrent={"1": {"wall_ns_per_page": 600.0, "per_process_ns": 2.4e6},
                            "2": {"wall_ns_per_page": 1000.0, "per_process_ns": 4e6}},
                machinery=MACHINERY)
    fit = derive_profile(meas, MACHINERY)
    text = profile_yaml(meas, fit, {"hostname": "box", "arch": "x86_64", "cpus": 2,
                                    "kernel": "6.18"}, "set up by --setup")
    path = tmp_path / "calibrated-test.yaml"
    path.write_text(text)
    p = load_profile(str(path))
    assert p.name == "calibrated-test"
    assert p.costs_ns["zap_pte"] == fit.costs_ns["zap_pte"]
    assert "slot_free() is > 80 %" in text and "zs_free() ~65 %" in text
    assert yaml.safe_load(text)["measured"]["concurrent"]["2"]["wall_ns_per_page"] == 1000.0


def test_emulated_scenarios_validate():
    from emul.config.profiles import builtin_names
    from emul.config.scenario import scenario_from_dict
    from emul.strategies import strategy_names
    cpus = sorted(os.sched_getaffinity(0))
    meas = dict(FAKE, mib=8, compression_ratio=1.97)
    for key, k in [("unmap-resident", 1), ("unmap-swapped", 1), ("swapin", 1),
                   ("swapin-same", 1), ("concurrent-1", 1), (f"concurrent-{min(2, len(cpus))}",
                                                             min(2, len(cpus)))]:
        doc = emul_scenario(key, meas, 3, cpus, k)
        sc = scenario_from_dict(doc, where=key, cpus=set(cpus), strategies=strategy_names(),
                                profiles=builtin_names())
        assert len(sc.processes) == k
        if key == "unmap-resident":
            assert sc.processes[0].swapped == 0.0
        if key.startswith("swapin"):
            assert sc.experiment.value == "swapin"


# ----------------------------------------------------------------------------- the real device

@pytest.mark.realzram
@pytest.mark.skipif(os.environ.get("EMUL_REAL_ZRAM") != "1",
                    reason="measures the real kernel on a real zram device: EMUL_REAL_ZRAM=1")
def test_real_calibration_restores_the_device(tmp_path):
    h = Host(Path("/"))
    name = next((n for n in h.zram_names()
                 if not _busy_reason(h, n, h.swaps(), h.mounts())), None)
    if name is None or os.geteuid() != 0:
        pytest.skip("needs root and a free /dev/zramN")
    before = swap_state(h, name)
    out = tmp_path / "p.yaml"
    r = run_emul("calibrate", "--setup", "--device", f"/dev/{name}", "--mib", "16",
                 "--repeats", "1", "--no-emulate", "--output", str(out), timeout=600)
    assert r.returncode == 0, r.stderr
    assert swap_state(h, name) == before
    p = load_profile(str(out))
    assert p.costs_ns["free_folio"] > 0 and p.costs_ns["fault"] > 0
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["measurements"]["ns_per_page"]["unmap-swapped"] > 0
    assert ROOT.exists()


def test_clean_median_and_side_by_side_rows():
    assert clean_median([100, 500, 110, 900], [True, False, True, False]) == (105, 2)
    assert clean_median([100, 500, 900], [True, False, False]) == (500, 0)   # one: all
    meas = {"ns_per_page": {w: 100.0 for w in WORKLOADS},
            "concurrent": {"1": {"wall_ns_per_page": 400.0}, "2": {"wall_ns_per_page": 700.0}}}
    rows = side_by_side_rows(meas, {"unmap-swapped": {"ns_per_page": 120.0},
                                    "concurrent-2": {"ns_per_page": 350.0}})
    assert ("unmap, swapped (zram)", 100.0, 120.0) in rows
    assert ("2 unmapping at once (wall / pages each)", 700.0, 350.0) in rows
    assert ("unmap, zero-page PTEs", 100.0, None) in rows


def test_cli_output_must_be_yaml(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(calhost, "HOST_ROOT", fake_root(
        tmp_path, {"zram0": {"disksize": 1 << 30}}, ["/dev/zram0 partition 1048572 0 100"]))
    assert cli.main(["calibrate", "--mib", "1", "--output", str(tmp_path / "prof")]) == 2
    assert "--output: expected a .yaml file" in capsys.readouterr().err
