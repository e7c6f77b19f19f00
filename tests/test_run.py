"""End to end: the real `emul run` command on tiny scenarios, real workers, real shared memory."""
from __future__ import annotations

import json
import os
import signal
import subprocess

import psutil
import pytest

from conftest import ROOT, emul_cmd, run_emul, shm_entries, tiny_scenario, two_cpus, write_yaml

PAGES = 8 * 1024 * 1024 // 4096


def load(outdir):
    return json.loads((outdir / "results.json").read_text())


def interrupt_mid_run(scenario, out, act) -> tuple[subprocess.Popen, str, list[int]]:
    """Start `emul run`, wait until its second repeat begins, call act(controller process),
    and wait for the run to end. Returns the process, its stderr and the workers' pids."""
    proc = subprocess.Popen(emul_cmd("run", str(scenario), "-o", str(out)), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if "repeat 2/" in line:
                break
        controller = psutil.Process(proc.pid)
        worker_pids = [c.pid for c in controller.children()]
        act(controller)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc, err, worker_pids


def assert_nothing_left(proc, worker_pids) -> None:
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                   for p in worker_pids)
    assert not {n for n in shm_entries() if n.startswith(f"emul-{proc.pid}-")}


def test_tiny_run_end_to_end(tmp_path, no_leftovers):
    sc = write_yaml(tmp_path / "tiny.yaml", tiny_scenario())
    out = tmp_path / "out"
    r = run_emul("run", str(sc), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "ratio" in r.stdout and "bitmap" in r.stdout
    assert "verdict" in r.stdout and "everything freed first" in r.stdout
    doc = load(out)
    assert doc["schema"] == "emul-results" and doc["version"] == 3 and doc["status"] == "ok"
    assert doc["machine"]["arch"] and doc["profile"]["name"] == "zero"
    assert len(doc["repeats"]) == 4
    for row in doc["repeats"]:
        assert row["audit"]["ok"], row["audit"]["problems"]
        assert row["ptes"] == PAGES
        assert row["zram_stats"]["notify_free"] == PAGES
        assert row["lazy"] + row["in_place"] + row["miss_free"] == PAGES
        assert row["zram_stats"]["pages_stored"] == row["miss_free"]
        assert set(row["workers"]["killer"]["cpus_seen"]) <= set(row["workers"]["killer"]
                                                                 ["cpus_allowed"])
        if row["strategy"] == "sync":
            assert row["lazy"] == 0 and row["in_place"] == PAGES
        else:
            assert row["gc_freed"] == row["lazy"]        # every queued slot freed exactly once
            assert row["peak_backlog"] <= 500            # the cap holds
            assert row["in_place"] == row["fallback"]    # in place only when over the cap
    assert {s["variant"] for s in doc["summary"]} == {"sync", "bitmap"}
    assert (out / "summary.txt").read_text().count("bitmap") >= 1


def test_bitmap_over_cap_falls_back_and_frees_every_slot_once(tmp_path, no_leftovers):
    """A slow GC (20 us per slot_free) behind a fast killer: the cap is hit, the rest is freed in
    place and counted, and the GC frees every queued slot exactly once (the audit checks the
    pool for double frees and the table for lost slots)."""
    prof = tmp_path / "slowgc.yaml"
    prof.write_text("name: slowgc\ndescription: slow slot_free\ncosts_ns: {slot_free: 20000}\nunlisted_ns: 0\n")
    sc = write_yaml(tmp_path / "cap.yaml", tiny_scenario(
        repeats=1, variants=[{"name": "bitmap", "strategy": "bitmap", "cap": 100}]))
    out = tmp_path / "out"
    r = run_emul("run", str(sc), "--profile", str(prof), "-o", str(out))
    assert r.returncode == 0, r.stderr
    row = load(out)["repeats"][0]
    assert row["audit"]["ok"], row["audit"]["problems"]
    assert row["fallback"] > 0
    assert row["peak_backlog"] <= 100
    assert row["lazy"] + row["fallback"] + row["miss_free"] == PAGES
    assert row["gc_freed"] == row["lazy"]
    assert row["pool_pages_after"] == 0 or row["miss_free"] > 0


@pytest.mark.parametrize("mutation, key, expected", [
    ({"variants": [{"name": "b", "strategy": "bitmap", "cap": "lots"}]}, "variants[0].cap",
     "expected a slot count or a size like 64M"),
    ({"workers": {"killer": {"cpu": 4096}}}, "workers.killer.cpu", "not available"),
    ({"variants": [{"strategy": "nosuch"}]}, "variants[0].strategy", "sync"),
    ({"zram": {"disksize": "big"}}, "zram.disksize", "expected a size"),
])
def test_bad_scenario_gets_one_clear_line(tmp_path, no_leftovers, mutation, key, expected):
    path = write_yaml(tmp_path / "bad.yaml", tiny_scenario(**mutation))
    r = run_emul("run", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and str(path) in line and key in line and expected in line, line


def test_unknown_profile_and_missing_file(tmp_path, no_leftovers):
    r = run_emul("run", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "nope.yaml" in r.stderr and "Traceback" not in r.stderr
    sc = write_yaml(tmp_path / "tiny.yaml", tiny_scenario())
    r = run_emul("run", str(sc), "--profile", "nosuch")
    assert r.returncode == 2 and "nosuch" in r.stderr and "Traceback" not in r.stderr


def test_killed_worker_ends_the_run_cleanly(tmp_path, no_leftovers):
    """SIGKILL the killer mid-run: exit 3 with a one-line reason, partial results marked
    aborted, and no process, arena or control socket left behind."""
    sc = write_yaml(tmp_path / "long.yaml", tiny_scenario(
        repeats=200, profile="rk3588-cpu2", processes=[{"vma": "32M"}],
        zram={"disksize": "64M"}))
    out = tmp_path / "out"
    ctl_dirs_before = {d for d in os.listdir("/tmp") if d.startswith("emul-ctl-")}

    def kill_the_killer(controller):
        victims = [c for c in controller.children() if "workers killer" in " ".join(c.cmdline())]
        assert len(victims) == 1
        victims[0].send_signal(signal.SIGKILL)

    proc, err, worker_pids = interrupt_mid_run(sc, out, kill_the_killer)
    assert proc.returncode == 3, err
    assert "Traceback" not in err
    assert "worker killer" in err and "SIGKILL" in err
    assert_nothing_left(proc, worker_pids)
    assert {d for d in os.listdir("/tmp") if d.startswith("emul-ctl-")} <= ctl_dirs_before
    doc = load(out)
    assert doc["status"] == "aborted" and "killer" in doc["reason"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_controller_cleans_up(tmp_path, no_leftovers, sig):
    """Ctrl-C (SIGINT) or SIGTERM mid-run: workers stop first, then the arena and socket go;
    exit 3 and partial results marked aborted."""
    sc = write_yaml(tmp_path / "long.yaml", tiny_scenario(repeats=200, profile="rk3588-cpu2"))
    out = tmp_path / "out"
    proc, err, worker_pids = interrupt_mid_run(sc, out, lambda c: c.send_signal(sig))
    assert proc.returncode == 3, err
    assert "Traceback" not in err and "interrupted" in err
    assert_nothing_left(proc, worker_pids)
    assert load(out)["status"] == "aborted"


def test_stopped_worker_is_detected(tmp_path, no_leftovers):
    """A worker that stops answering (SIGSTOP) ends the run within seconds, exit 3."""
    sc = write_yaml(tmp_path / "long.yaml", tiny_scenario(repeats=200, profile="rk3588-cpu2"))
    stopped: list[psutil.Process] = []

    def stop_the_gc(controller):
        gc = [c for c in controller.children() if "workers gc" in " ".join(c.cmdline())]
        assert len(gc) == 1
        stopped.append(gc[0])
        gc[0].send_signal(signal.SIGSTOP)

    proc, err, worker_pids = interrupt_mid_run(sc, tmp_path / "out", stop_the_gc)
    assert proc.returncode == 3, err
    assert "worker gc0" in err and "stopped answering" in err and "Traceback" not in err
    assert_nothing_left(proc, worker_pids)


def test_swapin_reads_back_what_was_written(tmp_path, no_leftovers):
    """Swap-in of same-filled, huge and pattern pages returns the written content (the audit
    counts every checksum mismatch) and frees every slot through the strategy."""
    sc = write_yaml(tmp_path / "swapin.yaml", tiny_scenario(
        experiment="swapin", workers={"swapin": {"cpu": 0}, "gc": {"cpu": two_cpus()[1]}},
        data={"patterns": ["1024 one\n", "1024 three\n"], "same_filled": 0.2,
              "incompressible": 0.1}))
    out = tmp_path / "out"
    r = run_emul("run", str(sc), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "swap-in (median" in r.stdout
    for row in load(out)["repeats"]:
        assert row["audit"]["ok"], row["audit"]["problems"]
        assert row["ptes"] == PAGES                      # every page faulted back in
        assert row["zram_stats"]["same_pages"] == 0      # ... and its slot freed
        assert row["zram_stats_before"]["same_pages"] > 0
        assert row["zram_stats_before"]["huge_pages"] > 0
        assert row["lazy"] + row["in_place"] + row["miss_free"] == PAGES


RECLAIM_PROFILE = "name: slow\ndescription: slow zap, slow GC\ncosts_ns: {zap_pte: 20000, slot_free: 50000}\nunlisted_ns: 0\n"


def reclaim_scenario(tmp_path, **over):
    a, _ = two_cpus()
    return write_yaml(tmp_path / "reuse.yaml", tiny_scenario(
        repeats=3, zram={"disksize": "20M"},   # 16M victim + 4M background: allocation wraps
        processes=[{"name": "victim", "vma": "16M"}],
        # all on one CPU: the GC gets a third of it, so the slots it has queued wait long
        # enough for reclaim's allocation to wrap onto them (on two CPUs the GC's in-order
        # drain stays just ahead of the allocator, and the reuse window closes)
        workers={"killer": {"cpu": a}, "gc": {"cpu": a}, "swapout": {"cpu": a},
                 "reclaim": {"cpu": a, "vma": "4M"}},
        variants=[{"name": "bitmap", "strategy": "bitmap"}], **over))


def run_reuse(tmp_path, **over):
    (tmp_path / "slow.yaml").write_text(RECLAIM_PROFILE)
    out = tmp_path / "out"
    r = run_emul("run", str(reclaim_scenario(tmp_path, **over)), "--profile",
                 str(tmp_path / "slow.yaml"), "-o", str(out))
    return r, load(out)


def test_queued_slots_reused_by_reclaim_are_freed_exactly_once(tmp_path, no_leftovers):
    """Reclaim writes into slots the GC still holds queued (the device is small, so allocation
    wraps onto just-freed slots): the old content is freed once, by the write, the new one never
    by the GC — the audit checks both, and every read checks the data."""
    r, doc = run_reuse(tmp_path)
    assert r.returncode == 0, r.stderr
    rows = doc["repeats"]
    for row in rows:
        assert row["audit"]["ok"], row["audit"]["problems"]
        assert row["reclaimed"] > 0 and row["refaulted"] > 0
        # every queued slot was freed exactly once: by the GC, or by the write that reused it
        assert row["lazy"] == row["gc_freed"] + row["reused_queued"]
    assert sum(row["reused_queued"] for row in rows) >= 1000


@pytest.mark.parametrize("switch, finding", [
    ("reuse_keeps_queued", "lost data"),          # the GC frees the new content
    ("reuse_leaks_old", "leaked objects"),        # the old object is never freed
    ("reuse_frees_twice", "double free"),         # the old object is freed twice
])
def test_audit_fails_when_reuse_is_broken_on_purpose(tmp_path, no_leftovers, switch, finding):
    """Each debug switch breaks the write order in one way; the audit must catch it and the
    run must fail (exit 1)."""
    r, doc = run_reuse(tmp_path, debug={switch: True})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "audit failed" in r.stderr and "Traceback" not in r.stderr
    assert doc["status"] == "audit-failed"
    broken = [row for row in doc["repeats"] if not row["audit"]["ok"]]
    assert broken and all(row["reused_queued"] > 0 for row in broken)
    assert any(finding in " ".join(row["audit"]["problems"]) for row in broken)


def test_unknown_debug_switch_is_refused(tmp_path, no_leftovers):
    r = run_emul("run", str(reclaim_scenario(tmp_path, debug={"nosuch": True})),
                 "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "debug.nosuch" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_mixed_actors_with_lockstat(tmp_path, no_leftovers):
    """Killer, swap-in, GC and reclaim at once: audit clean, both actors timed, lock_stat rows
    for every lock class with the class lock taken by several workers."""
    a, b = two_cpus()
    sc = write_yaml(tmp_path / "mixed.yaml", tiny_scenario(
        experiment="mixed", lockstat=True, zram={"disksize": "24M"},
        processes=[{"name": "dying", "vma": "8M", "role": "victim"},
                   {"name": "fg", "vma": "4M", "role": "app"}],
        workers={"killer": {"cpu": a}, "swapin": {"cpu": b}, "gc": {"cpu": b},
                 "reclaim": {"cpu": a, "vma": "2M"}, "swapout": {"cpu": a}}))
    out = tmp_path / "out"
    r = run_emul("run", str(sc), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "lock_stat" in r.stdout and "zs_class_lock" in r.stdout
    for row in load(out)["repeats"]:
        assert row["audit"]["ok"], row["audit"]["problems"]
        assert row["ptes"] == PAGES and row["other_actors_ns"]["swapin"] > 0
        locks = {l["class name"]: l for l in row["lock_stat"]}
        assert set(locks) == {"zram_slot_lock", "zs_class_lock", "zs_pool_lock", "zone_lock",
                              "swap_lock", "gc_queue_lock"}
        assert locks["zs_class_lock"]["acquisitions"] > PAGES
        assert set(row["workers"]) >= {"killer", "swapin", "reclaim"}
