"""The portable timing model: costs are targets, emul's own machinery is measured and taken off,
time can be dilated, core classes can be emulated, and every run says where its time went.

Behaviour only: figures are compared as ratios within one run, never against a clock.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import run_emul, tiny_scenario, write_yaml
from emul.config.costs import COST_NAMES
from emul.config.profiles import load_profile
from emul.config.scenario import scenario_from_dict
from emul.config.vary import expand_vary
from emul.harness.group import GroupState
from emul.harness.machinery import Machinery, RoleMachinery

BIG_TARGET_NS = 3000      # far above emul's machinery for any step on any host we run on


def flat_profile(tmp_path: Path, ns: float = BIG_TARGET_NS, **classes: float) -> Path:
    doc = {"name": "flat", "description": "every step the same target (tests)",
           "costs_ns": {n: ns for n in COST_NAMES}, "core_class": "little",
           "classes": {c: {n: v for n in COST_NAMES} for c, v in classes.items()}}
    path = tmp_path / "flat.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run_doc(tmp_path: Path, doc: dict, *args: str) -> tuple[dict, str]:
    sc = write_yaml(tmp_path / "s.yaml", doc)
    r = run_emul("run", str(sc), "-o", str(tmp_path / "out"), *args)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads((tmp_path / "out" / "results.json").read_text()), r.stdout


def test_extra_machinery_is_absorbed_by_the_targets(tmp_path: Path, no_leftovers) -> None:
    """A stand-in for a slower host (debug step_work_ns: physical work added to every step)
    leaves the emulated time alone while the targets have room for it; past its target a step
    overruns, and the run says which."""
    profile = flat_profile(tmp_path)
    doc = tiny_scenario(repeats=3, variants=[
        {"name": "host", "strategy": "sync"},
        {"name": "slower", "strategy": "sync", "step_work_ns": 100},
        {"name": "much-slower", "strategy": "sync", "step_work_ns": 2 * BIG_TARGET_NS}])
    res, out = run_doc(tmp_path, doc, "--profile", str(profile))
    # each variant's least disturbed repeat: a shared host's noise only ever adds time (medians
    # of 3 repeats were moved 11 % and 17 % by a neighbour, in one variant and not the other)
    fastest = {v: min(r["ns_per_page"] for r in res["repeats"] if r["variant"] == v)
               for v in ("host", "slower", "much-slower")}
    # one-sided: the extra work must not add time; "host" itself may come out slower
    assert fastest["slower"] < 1.10 * fastest["host"]
    assert fastest["much-slower"] > 1.2 * fastest["host"]
    overrun = [r["time_split"]["killer"]["overrun_steps"] for r in res["repeats"]
               if r["variant"] == "much-slower"]
    assert all("zap_pte" in o and o["zap_pte"]["machinery_ns"] > BIG_TARGET_NS for o in overrun)
    assert not any(r["time_split"]["killer"]["overrun_steps"] for r in res["repeats"]
                   if r["variant"] == "host")
    out = " ".join(out.split())          # the plain format wraps long lines
    assert "exceeds the profile's target on this host: " in out and "--dilate" in out


def test_the_split_names_every_part_and_adds_up(tmp_path: Path, no_leftovers) -> None:
    res, out = run_doc(tmp_path, tiny_scenario(repeats=2), "--profile", str(flat_profile(tmp_path)))
    assert "where the time went" in out
    for r in res["repeats"]:
        for worker, s in r["time_split"].items():
            parts = (sum(s["costs_ns"].values()) + s["machinery_ns"] + s["design_ns"]
                     + s["loops_ns"] + sum(s["lock_wait_ns"].values()) + s["preempted_ns"]
                     + s["rest_ns"])
            assert parts == pytest.approx(s["measured_ns"])
            assert s["costs_ns"] and s["machinery_ns"] > 0
    assert res["machinery"]["sync"]["ns"]["killer"]["zap_pte"] > 0


def test_an_overrun_is_made_up_by_the_next_steps_waits(tmp_path: Path, no_leftovers) -> None:
    """zap_pte's target below emul's machinery for it, the same ns moved to slot_free: the
    overrun is owed and later waits make it up, so the path keeps its total."""
    flat = 400.0
    doc = tiny_scenario(repeats=3, variants=[
        {"name": "flat", "strategy": "sync"},
        {"name": "owed", "strategy": "sync",
         "costs": {"zap_pte": 1, "slot_free": 2 * flat - 1}}])
    res, out = run_doc(tmp_path, doc, "--profile", str(flat_profile(tmp_path, flat)))
    by = {s["variant"]: s for s in res["summary"]}
    # same total target: the same time, within this shared host's noise
    assert by["owed"]["ns_per_page"] == pytest.approx(by["flat"]["ns_per_page"], rel=0.2)
    for r in res["repeats"]:
        s = r["time_split"]["killer"]
        if r["variant"] == "owed":
            assert s["overrun_ns"]["zap_pte"] > 0
            assert s["repaid_ns"] == pytest.approx(sum(s["overrun_ns"].values()), rel=0.01)
        else:
            assert s["repaid_ns"] == 0 and not s["overrun_ns"]
    assert "the next steps' waits made it up" in " ".join(out.split())


def test_time_another_task_took_is_counted_as_preempted(tmp_path: Path, no_leftovers) -> None:
    """A CPU hog pinned beside the killer: the split names the time the killer stood on the
    runqueue (schedstat), and the time split still adds up."""
    doc = tiny_scenario(repeats=1, variants=[{"name": "sync", "strategy": "sync"}])
    cpu = doc["workers"]["killer"]["cpu"]
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        psutil.Process(hog.pid).cpu_affinity([cpu])
        # at normal priority (--no-boost) the hog takes about half the killer's CPU
        res, _ = run_doc(tmp_path, doc, "--profile", str(flat_profile(tmp_path)),
                         "--no-boost", "--warmup", "0")
    finally:
        hog.kill()
        hog.wait()
    s = res["repeats"][0]["time_split"]["killer"]
    assert s["preempted_ns"] > 0.1 * s["measured_ns"], s
    assert res["repeats"][0]["workers"]["killer"]["runqueue_wait_s"] > 0


def test_emul_machinery_shows_each_step_beside_its_target(tmp_path: Path) -> None:
    sc = write_yaml(tmp_path / "s.yaml", tiny_scenario())
    profile = flat_profile(tmp_path, 1.0)      # every target below emul's machinery
    r = run_emul("machinery", str(sc), "--profile", str(profile), "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    steps = {(x["variant"], x["role"], x["step"]) for x in rows}
    assert {("sync", "killer", "zap_pte"), ("bitmap", "gc", "zs_free")} <= steps
    assert all(x["machinery_ns"] > 0 and x["target_ns"] == 1.0 for x in rows)
    r = run_emul("machinery", str(sc), "--profile", str(profile))
    assert r.returncode == 0 and "zap_pte" in r.stdout and "overrun" in r.stdout
    assert "--dilate" in r.stdout


def test_a_gc_that_starts_after_the_actors_drains_alone(tmp_path: Path, no_leftovers) -> None:
    """gc.start: after: nothing is freed while the killer runs; the GC then drains every
    queued slot in one go (its path alone, for the per-slot figure)."""
    doc = tiny_scenario(repeats=1, variants=[{"name": "bitmap", "strategy": "bitmap",
                                              "cap": 4096}])
    doc["workers"]["gc"]["start"] = "after"
    res, _ = run_doc(tmp_path, doc)
    r = res["repeats"][0]
    assert r["lazy"] == r["ptes"] and r["fallback"] == 0
    assert r["backlog_at_unmap_end"] == r["lazy"] == r["gc_freed"]
    assert r["gc_passes"] >= 1 and r["audit"]["ok"]


def test_class_in_handle_saves_the_pool_read_lock(tmp_path: Path, no_leftovers) -> None:
    """pool_read_lock is paid by zs_free finding the class under pool->lock; the class index
    in the object skips it, so with it dominant the variant is much faster."""
    doc = tiny_scenario(repeats=2, variants=[
        {"name": "base", "strategy": "sync"},
        {"name": "cih", "strategy": "sync", "zsmalloc": ["class_in_handle"]}])
    path = flat_profile(tmp_path, 100.0)
    profile = yaml.safe_load(path.read_text())
    profile["costs_ns"]["pool_read_lock"] = BIG_TARGET_NS
    path.write_text(yaml.safe_dump(profile))
    res, _ = run_doc(tmp_path, doc, "--profile", str(path))
    by = {s["variant"]: s for s in res["summary"]}
    assert by["base"]["ns_per_page"] > 2 * by["cih"]["ns_per_page"]
    base = next(r for r in res["repeats"] if r["variant"] == "base")
    cih = next(r for r in res["repeats"] if r["variant"] == "cih")
    assert "pool_read_lock" in base["time_split"]["killer"]["costs_ns"]
    assert "pool_read_lock" not in cih["time_split"]["killer"]["costs_ns"]


def test_dilation_scales_the_emulated_clock(tmp_path: Path, no_leftovers) -> None:
    res, _ = run_doc(tmp_path, tiny_scenario(repeats=1), "--dilate", "3")
    assert res["dilation"] == 3
    assert res["ticks_per_ns"] == pytest.approx(3 * res["host_ticks_per_ns"])


def test_a_bad_dilation_is_refused(tmp_path: Path) -> None:
    sc = write_yaml(tmp_path / "s.yaml", tiny_scenario())
    r = run_emul("run", str(sc), "--dilate", "0.5", "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "--dilate" in r.stderr and "Traceback" not in r.stderr


def scenario(doc: dict):
    return scenario_from_dict(doc, where="t.yaml", cpus={0, 1}, strategies=["sync", "bitmap"],
                              profiles=["rk3588-cpu2", "zero"])


def test_a_worker_pays_the_targets_of_its_emulated_core_class(tmp_path: Path) -> None:
    profile = load_profile("rk3588-cpu2")
    doc = tiny_scenario(profile="rk3588-cpu2", workers={
        "killer": {"cpu": 0, "core": "little"}, "gc": {"cpu": 1}, "swapout": {"cpu": 0}},
        variants=[{"name": "a55", "strategy": "bitmap"},
                  {"name": "a76", "strategy": "bitmap", "core": {"gc": "big"}}])
    g = GroupState(scenario(doc), profile, progress=lambda text: None)
    g.ticks_per_ns = 1.0
    assert g.core_classes["a55"]["gc0"] == "little" and g.core_classes["a76"]["gc0"] == "big"
    for v in g.sc.variants:
        g.machinery[v.name] = Machinery({"gc": RoleMachinery()}, 1.0, 0.0, 0.0)
    zs_free = COST_NAMES.index("zs_free")
    gc = next(w for w in g.plan.workers if w.role == "gc")
    rows = {v.name: g.cost_rows(v) for v in g.sc.variants}
    assert rows["a55"][gc.index, zs_free] == profile.costs_ns["zs_free"]
    assert rows["a76"][gc.index, zs_free] == profile.classes["big"]["zs_free"]
    killer = next(w for w in g.plan.workers if w.role == "killer")
    assert rows["a76"][killer.index, zs_free] == profile.costs_ns["zs_free"]


def test_an_unknown_core_class_is_refused_with_the_profiles_classes() -> None:
    doc = tiny_scenario(profile="rk3588-cpu2", workers={
        "killer": {"cpu": 0}, "gc": {"cpu": 1, "core": "medium"}, "swapout": {"cpu": 0}})
    with pytest.raises(Exception, match="core class of profile rk3588-cpu2 .little, big.") as e:
        GroupState(scenario(doc), load_profile("rk3588-cpu2"), progress=lambda text: None)
    assert "workers.gc.core" in str(e.value)


def test_vary_sweeps_one_cost_and_one_core_class() -> None:
    doc = tiny_scenario(vary={"costs.zs_free": [100, 300], "core.gc": ["little", "big"]})
    (_, group), = expand_vary(doc, "t.yaml")
    sc = scenario(group)
    bitmap = [v for v in sc.variants if v.strategy == "bitmap"]
    assert {(dict(v.costs)["zs_free"], dict(v.core)["gc"]) for v in bitmap} == {
        (100, "little"), (300, "little"), (100, "big"), (300, "big")}
    assert any("costs.zs_free=300" in v.name for v in bitmap)
