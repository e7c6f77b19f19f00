"""`emul replay`: storms from the sample traces, the population check, and the outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, run_emul, two_cpus, write_yaml


def base_scenario(tmp_path: Path, **over) -> Path:
    a, b = two_cpus()
    doc = {"name": "replay-test", "experiment": "unmap", "repeats": 1, "seed": 2,
           "profile": "zero", "zram": {"disksize": "1G"},
           "processes": [{"name": "placeholder", "vma": "4K", "swapped": 0.0}],
           "data": {"compression_ratio": 2.0, "spread": 0.25, "same_filled": 0.05},
           "workers": {"killer": {"cpu": [a, b], "count": 2}, "gc": {"cpu": b},
                       "swapout": {"cpu": a}, "swapin": {"cpu": a},
                       "reclaim": {"cpu": b, "vma": "2M"}},
           "lockstat": True}
    doc.update(over)
    return write_yaml(tmp_path / "base.yaml", doc)


def test_burst_replays_against_three_strategies(tmp_path: Path, no_leftovers) -> None:
    out = tmp_path / "out"
    r = run_emul("replay", str(ROOT / "scenarios/traces/burst.log"), "--scenario",
                 str(base_scenario(tmp_path)), "--strategies", "sync,bitmap,array",
                 "--target-mb", "50", "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "kill → swap freed" in r.stdout and "time to 50 MiB returned" in r.stdout
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "ok" and doc["trace"]["format"] == "lmkd"
    assert doc["trace"]["kills"] == 5 and doc["trace"]["skipped_lines"] > 0
    assert [s["strategy"] for s in doc["replay_summary"]] == ["sync", "bitmap", "array"]
    for row in doc["repeats"]:
        assert row["audit"]["ok"], row["audit"]
        kills = row["replay"]["kills"]
        assert len(kills) == 5
        for k in kills:
            # every slot of every victim was freed, after its kill began
            assert k["slots"] > 0 and k["slots_never_freed"] == 0
            assert k["swap_freed_ms"] is not None and k["swap_freed_ms"] >= 0
            assert k["anon_freed_ms"] > 0 and k["reaper_cpu"] in two_cpus()
        if row["strategy"] == "sync":     # freed in the reaper: the swap is gone with the unmap
            assert all(k["swap_freed_ms"] <= k["anon_freed_ms"] for k in kills)
        else:
            assert row["lazy"] > 0
        tl = row["replay"]["timeline"]
        assert len(tl["t_ms"]) >= 3 and tl["t_ms"] == sorted(tl["t_ms"])
        assert len(tl["returned_mb"]) == len(tl["gc_backlog"]) == len(tl["t_ms"])
        # by the end the victims' memory is back: resident pages and compressed pool pages
        total_rss_mb = sum(v["rss_kb"] for v in doc["trace"]["victims"]) / 1024
        assert tl["resident_freed_mb"][-1] >= total_rss_mb * 0.99
        locks = {c["class name"]: c for c in row["lock_stat"]}
        assert locks["zs_class_lock"]["acquisitions"] > 0
    import matplotlib.image
    png = matplotlib.image.imread(out / "replay.png")
    assert png.shape[0] > 100 and png.shape[1] > 300


def test_kills_follow_the_recorded_times(tmp_path: Path, no_leftovers) -> None:
    out = tmp_path / "out"
    r = run_emul("replay", str(ROOT / "scenarios/traces/burst.log"), "--scenario",
                 str(base_scenario(tmp_path)), "--strategies", "sync", "--time-scale", "2",
                 "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((out / "results.json").read_text())
    victims = doc["trace"]["victims"]
    kills = doc["repeats"][0]["replay"]["kills"]
    for v, k in zip(victims, kills):
        assert k["due_ms"] == pytest.approx(2 * v["t_ms"])
        assert k["start_ms"] >= k["due_ms"]          # never before its time


def test_a_storm_larger_than_the_device_is_refused_up_front(tmp_path: Path, no_leftovers) -> None:
    r = run_emul("replay", str(ROOT / "scenarios/traces/storm.log"), "--scenario",
                 str(base_scenario(tmp_path, zram={"disksize": "256M"})), "-o",
                 str(tmp_path / "out"))
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "zram.disksize: expected room for the storm" in err and "--size-scale" in err
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["--strategies", "sync,nope"], "--strategies: expected a comma-separated list"),
    (["--time-scale", "0"], "--time-scale: expected a factor"),
    (["--size-scale", "-1"], "--size-scale: expected a factor"),
])
def test_bad_options_are_clear_errors(tmp_path: Path, args, expected) -> None:
    r = run_emul("replay", str(ROOT / "scenarios/traces/burst.log"), *args)
    assert r.returncode == 2 and expected in r.stderr and "Traceback" not in r.stderr


def test_a_trace_without_kills_is_an_error(tmp_path: Path) -> None:
    trace = tmp_path / "empty.log"
    trace.write_text("03-14 10:02:11.417   612   612 I ActivityManager: nothing to see\n")
    r = run_emul("replay", str(trace))
    assert r.returncode == 2 and "no kill lines found" in r.stderr and "Traceback" not in r.stderr
