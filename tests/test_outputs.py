"""What a run leaves for people to look at: PNG plots, trace.json, CSV, the summary."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib.image
import pytest

from conftest import run_emul, tiny_scenario, write_yaml
from emul.report import plots


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("outputs")
    doc = tiny_scenario(repeats=2, lockstat=True,
                        variants=[{"name": "sync", "strategy": "sync"},
                                  {"name": "bitmap", "strategy": "bitmap", "cap": 500},
                                  {"name": "array", "strategy": "array"}])
    out = tmp / "out"
    r = run_emul("run", str(write_yaml(tmp / "s.yaml", doc)), "-o", str(out), "--csv")
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def test_every_png_decodes(run_dir: Path) -> None:
    names = {p.name for p in run_dir.glob("*.png")}
    # waits.png: only when some lock was contended (who waited on whom)
    assert names - {"waits.png"} == {"memory.png", "latency.png", "backlog.png", "locks.png",
                                     "workers.png", "timesplit.png"}
    for p in run_dir.glob("*.png"):
        img = matplotlib.image.imread(p)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_figures_show_one_series_per_variant(run_dir: Path) -> None:
    doc = json.loads((run_dir / "results.json").read_text())
    figs = plots.figures(doc)
    variants = ["sync", "bitmap", "array"]
    # every page was swapped out: no resident panel, only the compressed one
    assert all(not any(r["timeline"]["resident_mb"]) for r in doc["repeats"])
    (compressed,) = figs["memory"].axes
    assert [ln.get_label() for ln in compressed.lines
            if not ln.get_label().startswith("_")] == variants
    # the median repeat of each, and where its measured phase ended
    assert len([ln for ln in compressed.get_lines() if ln.get_linestyle() == "--"]) == 3
    backlog = figs["backlog"].axes[0]
    assert [ln.get_label() for ln in backlog.lines if not ln.get_label().startswith("_")
            and "cap" not in ln.get_label()] == variants
    assert "bitmap cap (500 slots)" in [ln.get_label() for ln in backlog.lines]
    assert len(figs["latency"].axes[0].collections) == 3        # one scatter per variant
    # lock classes no variant contended or waited on are left out
    stat = [r["lock_stat"] for r in doc["repeats"]]
    classes = sum(1 for k in range(len(stat[0])) if any(
        s[k]["contentions"] or s[k]["waittime-total"] for s in stat))
    counts, waits = figs["locks"].axes[:2]
    assert len(counts.patches) == len(waits.patches) == 3 * classes
    workers = figs["workers"].axes[0]
    assert len(workers.images) == 1
    seen = {name for row in doc["repeats"] for name in row["workers"]}
    assert workers.images[0].get_array().shape[0] == len(seen) == 2     # killer, gc0


def test_trace_json_is_trace_event_format_with_the_expected_tracks(run_dir: Path) -> None:
    trace = json.loads((run_dir / "trace.json").read_text())
    events = trace["traceEvents"]
    assert all({"ph", "name", "pid"} <= set(e) for e in events)
    tracks = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {n.split(" (")[0] for n in tracks} == {"controller", "swapout", "killer", "gc0"}
    spans = [e for e in events if e["ph"] == "X"]
    assert all(e["dur"] >= 0 and e["ts"] >= 0 and "tid" in e for e in spans)
    names = {e["name"] for e in spans}
    for variant in ("sync", "bitmap", "array"):
        for rep in (1, 2):
            assert f"unmap: {variant} #{rep}" in names and f"audit: {variant} #{rep}" in names
            assert f"killer: {variant} #{rep}" in names
    gc_passes = [e for e in spans if e["name"] == "GC pass"]
    assert gc_passes and sum(e["args"]["freed"] for e in gc_passes) > 0
    counters = {e["name"] for e in events if e["ph"] == "C"}
    assert counters == {"memory held (MiB)", "GC backlog (slots)"}
    ts = [e["ts"] for e in spans if e["tid"] == 0]
    assert ts == sorted(ts)                        # the controller's phases follow each other


def test_csv_export_reads_back(run_dir: Path) -> None:
    with open(run_dir / "repeats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {r["variant"] for r in rows} == {"sync", "bitmap", "array"}
    with open(run_dir / "timeline.csv", newline="") as f:
        tl = list(csv.DictReader(f))
    assert tl and {"t_ms", "resident_mb", "compressed_mb", "gc_backlog"} <= set(tl[0])


def test_report_rerenders_from_the_results_alone(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    r = run_emul("report", str(run_dir / "results.json"), "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out / "summary.txt").exists() and (out / "memory.png").exists()
    assert "verdict" in (out / "summary.txt").read_text()
