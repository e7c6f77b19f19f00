"""Issue 20: who waited on whom — every contention attributed to the holder the waiter found,
with its wait in a log2 histogram, from the waiter's private lock_stat row."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conftest import run_emul, tiny_scenario, two_cpus, write_yaml


def load(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_the_pairs_add_up_to_each_class_and_are_printed(tmp_path, no_leftovers):
    """emul run scenarios/contention-mixed.yaml prints the waiter → holder table, and in every
    repeat the pairs' waits and wait time add up to lock_stat's contentions and wait total of
    their class."""
    out = tmp_path / "out"
    r = run_emul("run", "scenarios/contention-mixed.yaml", "--repeats", "1", "--warmup", "0",
                 "-o", str(out), "--format", "plain")
    assert r.returncode == 0, r.stderr
    assert "who waited on whom" in r.stdout
    doc = load(out)
    seen = 0
    for row in doc["repeats"]:
        for cls in row["lock_stat"]:
            pairs = [w for w in row["lock_who"] if w["class name"] == cls["class name"]]
            assert sum(w["waits"] for w in pairs) == cls["contentions"], cls["class name"]
            total = sum(w["waittime-total"] for w in pairs)
            assert abs(total - cls["waittime-total"]) <= 1e-6 * max(1.0, total)
            for w in pairs:
                assert sum(n for _, n in w["buckets"]) == w["waits"]
            seen += cls["contentions"]
    assert seen > 0, "no contention at all: nothing was attributed"


def test_waits_on_a_gc_that_holds_the_class_lock_are_the_gcs(tmp_path, no_leftovers):
    """With debug gc_hold_ns the GC holds each size_class lock 20 µs longer: every wait of the
    killer on zs_class_lock is attributed to gc0, and every wait of gc0 there to the killer."""
    a, b = two_cpus()
    sc = write_yaml(tmp_path / "hold.yaml", tiny_scenario(
        repeats=1, lockstat=True, debug={"gc_hold_ns": 20000},
        workers={"killer": {"cpu": a}, "gc": {"cpu": b}, "swapout": {"cpu": a}},
        variants=[{"name": "bitmap", "strategy": "bitmap", "cap": 64}]))
    out = tmp_path / "out"
    r = run_emul("run", str(sc), "--warmup", "0", "-o", str(out))
    assert r.returncode == 0, r.stderr
    pairs = [w for row in load(out)["repeats"] for w in row["lock_who"]
             if w["class name"] == "zs_class_lock"]
    killer = [w for w in pairs if w["waiter"] == "killer"]
    assert sum(w["waits"] for w in killer) > 0, pairs
    assert {w["holder"] for w in killer} == {"gc0"}, pairs
    assert {w["holder"] for w in pairs if w["waiter"] == "gc0"} <= {"killer"}, pairs


def test_merge_who_reads_the_private_rows():
    """The attribution area of a worker's lock_stat row, read back: waits, time, buckets, and
    an rwlock's unknown holder shown as "?"."""
    from emul.kernel import lockstat as ls
    rows = ls.new_rows(2)
    base = ls.LS_WHO + (ls.LOCK_CLASS * ls.MAX_HOLDERS + 1) * ls.WHO_ROW
    rows[0, base + ls.WHO_WAITS] = 3
    rows[0, base + ls.WHO_WAIT_TOTAL] = 3000
    rows[0, base + ls.WHO_BUCKETS + 10] = 3
    unknown = ls.LS_WHO + (ls.LOCK_POOL * ls.MAX_HOLDERS + ls.HOLDER_UNKNOWN) * ls.WHO_ROW
    rows[1, unknown + ls.WHO_WAITS] = 1
    got = ls.merge_who(rows, {0: "killer", 1: "gc0"}, ns_per_tick=0.5)
    assert got[0] == {"class name": "zs_class_lock", "waiter": "killer", "holder": "gc0",
                      "waits": 3, "waittime-total": 1.5, "buckets": [[512.0, 3]]}
    assert got[1]["holder"] == "?" and got[1]["class name"] == "zs_pool_lock"
    assert np.all(rows[:, :ls.LS_WHO].reshape(2, ls.NR_LOCK_CLASSES, ls.LS_ROW)[
        :, :, ls.LS_WAIT_MIN] > 0)


def test_a_counter_written_by_one_writer_never_bounces():
    """In-process, the compiled accounting: a writer's consecutive updates of a counter nobody
    else touched are no bounce; an update after another writer's is one, the first of a phase
    included (the rows are seeded with the counters' values at its start)."""
    from emul.kernel import lockstat as ls
    from emul.kernel.context import Ctx
    from emul.kernel.locking import stat_add
    from emul.kernel.zram import STAT_NAMES, ST_PAGES_STORED
    assert ls.SHARED_COUNTERS[:len(STAT_NAMES)] == STAT_NAMES
    stats = np.zeros(len(STAT_NAMES), dtype=np.int64)
    rows = ls.new_rows(2)
    one, two = (Ctx(np.zeros(256, dtype=np.int64), rows[k], np.zeros(64, dtype=np.int64))
                for k in (0, 1))
    for _ in range(5):
        stat_add(stats, one, ST_PAGES_STORED, 1)
    assert ls.merge_counters(rows)["pages_stored"] == {"updates": 5, "bounces": 0}
    stat_add(stats, two, ST_PAGES_STORED, 1)     # its first update, after the first writer's
    stat_add(stats, one, ST_PAGES_STORED, 1)     # the line came from the other writer
    assert ls.merge_counters(rows)["pages_stored"] == {"updates": 7, "bounces": 2}
    ls.reset_rows(rows, np.append(stats, 0))     # a new phase, seeded with the values as they are
    stat_add(stats, two, ST_PAGES_STORED, 1)
    assert ls.merge_counters(rows)["pages_stored"] == {"updates": 1, "bounces": 0}


def test_the_default_scenarios_counters_are_in_the_results(tmp_path, no_leftovers):
    """The default scenario's results carry every shared counter's updates and bounces; one
    only the killer writes (notify_free, in sync: no GC) shows none."""
    out = tmp_path / "out"
    r = run_emul("run", "--repeats", "1", "--warmup", "0", "-o", str(out))
    assert r.returncode == 0, r.stderr
    rows = load(out)["repeats"]
    sync = [row for row in rows if row["strategy"] == "sync"]
    assert sync and all(row["shared_counters"]["notify_free"]["bounces"] == 0 for row in sync)
    assert all(row["shared_counters"]["pages_stored"]["updates"] > 0 for row in rows)
