"""`emul bench --quick` end to end: it runs, prints the floor and a row per strategy, writes JSON.

Behaviour only: the figures depend on the machine and its load, so no timing is checked here.
"""
from __future__ import annotations

import json

from conftest import run_emul

from emul.strategies import STRATEGY_MODULES


def test_bench_quick_prints_every_row(tmp_path, no_leftovers):
    out = tmp_path / "bench.json"
    r = run_emul("bench", "--quick", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "atomic add, uncontended (floor)" in r.stdout
    for name in STRATEGY_MODULES:
        assert f"enqueue: {name}" in r.stdout, name
        assert f"drain: {name}" in r.stdout, name
    assert "bench:" in r.stderr               # one progress line per row
    doc = json.loads(out.read_text())
    assert doc["schema"] == "emul-bench"
    keys = {row["key"] for row in doc["rows"]}
    assert {"atomic_add", "slot_lock", "handoff", "control_rtt", "run_start"} <= keys
    assert {f"enqueue:{n}" for n in STRATEGY_MODULES} <= keys
    floor = next(row for row in doc["rows"] if row["key"] == "atomic_add")
    assert floor["value"] > 0 and floor["x_floor"] == 1.0
