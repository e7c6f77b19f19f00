"""`emul compare`, `emul report` and the CSV export: on results documents built here (no
emulator needed) and on one tiny real run, so a change to what `emul run` writes is caught."""
from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path

import pytest

from conftest import run_emul, tiny_scenario, write_yaml
from emul.report import results
from emul.report.compare import Run, compare, scenario_diff
from emul.report.export import write_csv
from emul.report.io import load_results
from emul.report.summary import summarize

LOCK_CLASSES = ("zram_slot_lock", "zs_class_lock")


def make_row(variant: str, repeat: int, time_ns: float, lockstat: bool = True) -> dict:
    """A repeat row with the keys summarize(), the tables and compare read."""
    lazy = 0 if variant == "sync" else 900
    return {
        "variant": variant, "strategy": variant, "group": "", "repeat": repeat,
        "profile": "zero", "experiment": "unmap", "time_ns": time_ns, "ptes": 1000,
        "ns_per_page": time_ns / 1000, "lazy": lazy, "in_place": 1000 - lazy, "fallback": 0,
        "miss_free": 0, "gc_freed": lazy, "gc_busy_ns": 1e5 if lazy else 0.0,
        "gc_drain_ns": 2e4 if lazy else 0.0, "peak_backlog": lazy // 2,
        "peak_backlog_bytes": 0, "batch_saved": 0,
        "other_actors_ns": {}, "zram_stats": {"pages_stored": 0, "gc_slots": 0},
        "lock_stat": [{"class name": c, "con-bounces": 1, "contentions": 3 + repeat,
                       "waittime-min": 0.1, "waittime-max": 1.0, "waittime-total": 2.0,
                       "waittime-avg": 0.5, "acq-bounces": 4,
                       "acquisitions": 100 if lockstat else 0, "holdtime-min": 0.01,
                       "holdtime-max": 0.2, "holdtime-total": 3.0, "holdtime-avg": 0.03}
                      for c in LOCK_CLASSES],
        "workers": {"killer": {"role": "killer", "cpus_allowed": [0], "cpus_seen": [0],
                               "cpu_s": 0.1, "wall_s": 0.2, "voluntary": 1, "involuntary": 2}},
        "audit": {"ok": True, "problems": [], "counts": {"queued": 0}},
    }


def make_doc(times: dict[str, list[float]], **over) -> dict:
    rows = [make_row(v, i, t) for v, ts in times.items() for i, t in enumerate(ts)]
    scenario = {"name": "tiny", "description": "", "experiment": "unmap", "page_size": 4096,
                "repeats": max(len(ts) for ts in times.values()), "seed": 3, "profile": "zero",
                "zram": {"disksize": 16 << 20, "nr_slots": 4096},
                "variants": [{"name": v, "strategy": v} for v in times],
                "lockstat": True, "debug": {}, "source": "tiny.yaml"}
    profile = {"name": "zero", "description": "", "costs_ns": {}, "source": "zero.yaml"}
    doc = {"schema": results.SCHEMA, "version": results.SCHEMA_VERSION, "status": "ok",
           "reason": "", "created": "2026-01-01T00:00:00+0000", "command": ["emul"],
           "scenario": scenario, "scenario_source": "tiny.yaml", "vary": None, "groups": [],
           "machine": {"arch": "x86_64", "cpu_model": "Test CPU", "cpus": 2},
           "profile": profile, "profiles": {"zero": profile}, "ticks_per_ns": 1.0,
           "repeats": rows, "summary": summarize(rows, list(times))}
    doc.update(over)
    return doc


def save(doc: dict, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / "results.json"
    path.write_text(json.dumps(doc))
    return path


def plant(doc: dict, variant: str, factor: float) -> dict:
    """A copy of doc with variant's time_ns multiplied by factor in every repeat."""
    out = copy.deepcopy(doc)
    for row in out["repeats"]:
        if row["variant"] == variant:
            row["time_ns"] *= factor
    # as if run with changed code: a copy with the same code hash would be an A/A pair
    if (out.get("host") or {}).get("emul"):
        out["host"]["emul"]["code"] = "planted"
    return out


def table_line(stdout: str, variant: str, metric: str) -> str:
    """The row of compare's table that starts variant's block with metric."""
    hits = [ln for ln in stdout.splitlines()
            if f" {variant} " in ln and f" {metric} " in ln and "|" in ln]
    assert hits, stdout
    # the plain format cuts a wide table into blocks, each repeating the key (variant, metric):
    # the row is the first block's line and the later blocks' cells after the key
    cells = hits[0].rstrip("|").split("|")
    for more in hits[1:]:
        cells += more.rstrip("|").split("|")[3:]
    return "|".join(cells) + "|"


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- one tiny real run, shared by the module ------------------------------------------------

@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """A real `emul run` of the tiny scenario, 4 repeats a variant: enough for a permutation
    test over 4 + 4 repeats to reach p < 0.05 (2 of the 70 splits are as extreme)."""
    tmp = tmp_path_factory.mktemp("real")
    scen = write_yaml(tmp / "tiny.yaml", tiny_scenario(repeats=4))
    r = run_emul("run", str(scen), "-o", str(tmp / "run"))
    assert r.returncode == 0, r.stdout + r.stderr
    return tmp / "run"


def test_compare_flags_a_planted_difference_and_not_an_equal_pair(real_run: Path,
                                                                  tmp_path: Path,
                                                                  monkeypatch) -> None:
    # no history of earlier runs: the floor is the estimate from these two runs alone
    monkeypatch.setenv("EMUL_HISTORY", str(tmp_path / "none.jsonl"))
    doc = json.loads((real_run / "results.json").read_text())
    # B: bitmap 10x slower in every repeat (far beyond any noise); sync exactly as in A
    b = save(plant(doc, "bitmap", 10.0), tmp_path / "b")
    r = run_emul("compare", str(real_run), str(b))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "B / A" in r.stdout                       # the ratio column
    assert "same scenario in every run" in r.stdout
    bitmap = table_line(r.stdout, "bitmap", "unmap time")
    assert "10.00×*" in bitmap
    sync = table_line(r.stdout, "sync", "unmap time")
    assert "1.00×" in sync and "*" not in sync
    # the header names each run's machine, profile, scenario and time
    assert doc["machine"]["arch"] in r.stdout and doc["created"] in r.stdout
    assert "tiny (unmap)" in r.stdout and " zero " in r.stdout


def test_report_rerenders_the_summary_and_writes_csv(real_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(real_run, run)
    (run / "summary.txt").unlink()
    r = run_emul("report", str(run), "--csv")
    assert r.returncode == 0, r.stdout + r.stderr
    text = (run / "summary.txt").read_text()
    assert "ratio" in text and "bitmap" in text and "sync" in text and "workers" in text
    doc = load_results(run)
    rows = read_csv(run / "repeats.csv")
    assert len(rows) == len(doc["repeats"]) == 8
    assert [(x["variant"], int(x["repeat"])) for x in rows] == \
        [(x["variant"], x["repeat"]) for x in doc["repeats"]]
    assert [float(x["time_ns"]) for x in rows] == [x["time_ns"] for x in doc["repeats"]]
    assert {x["audit.ok"] for x in rows} == {"True"}
    assert [x["variant"] for x in read_csv(run / "summary.csv")] == ["sync", "bitmap"]
    assert not (run / "lock_stat.csv").exists()      # lockstat off: nothing was collected


def test_report_refuses_other_schema_versions(tmp_path: Path) -> None:
    for version, word in ((results.SCHEMA_VERSION - 1, "older"),
                          (results.SCHEMA_VERSION + 1, "newer")):
        path = save(make_doc({"sync": [1e6, 1e6]}, version=version), tmp_path / f"v{version}")
        r = run_emul("report", str(path))
        assert r.returncode == 2
        err = r.stderr.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in r.stderr
        assert f"version {version}" in err and f"reads version {results.SCHEMA_VERSION}" in err and word in err
        assert not (path.parent / "summary.txt").exists()


@pytest.mark.parametrize("content, expected", [
    (None, "no such file"),
    ("{not json", "not JSON"),
    ('{"schema": "something-else", "version": 2}', "expected 'emul-results'"),
    ("[1, 2]", "not an emul results file"),
])
def test_bad_inputs_are_one_line_errors(tmp_path: Path, content: str | None,
                                        expected: str) -> None:
    good = save(make_doc({"sync": [1e6, 1e6]}), tmp_path / "good")
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    for args in (("compare", str(good), str(bad)), ("report", str(bad))):
        r = run_emul(*args)
        assert r.returncode == 2, r.stdout + r.stderr
        assert r.stderr.startswith("emul: ") and len(r.stderr.strip().splitlines()) == 1
        assert expected in r.stderr and str(bad) in r.stderr


def test_compare_needs_two_runs(tmp_path: Path) -> None:
    r = run_emul("compare", str(save(make_doc({"sync": [1e6, 1e6]}), tmp_path / "a")))
    assert r.returncode == 2 and "at least two runs" in r.stderr


def test_significance_on_built_documents() -> None:
    a = make_doc({"sync": [100e3, 101e3, 99e3, 102e3, 98e3],
                  "bitmap": [50e3, 51e3, 49e3, 52e3, 48e3]})
    b = plant(a, "bitmap", 2.0)
    rows = compare([Run("A", Path("a"), a), Run("B", Path("b"), b)])
    cell = {(r.variant, r.metric): r.cells[1] for r in rows}
    assert cell[("bitmap", "unmap time")].significant
    assert cell[("bitmap", "unmap time")].ratio == pytest.approx(2.0)
    assert not cell[("sync", "unmap time")].significant
    assert cell[("sync", "unmap time")].ratio == pytest.approx(1.0)
    # lock contentions appear when lock_stat was collected; all-zero metrics do not
    assert ("sync", "zs_class_lock contentions") in cell
    assert ("sync", "GC drain") not in cell and ("bitmap", "GC drain") in cell


def test_missing_variant_different_scenario_and_machine(tmp_path: Path) -> None:
    a = make_doc({"sync": [1e6, 1.1e6], "bitmap": [5e5, 5.1e5]})
    b = make_doc({"sync": [1e6, 1.1e6]},
                 machine={"arch": "aarch64", "cpu_model": "RK3588", "cpus": 8})
    b["scenario"]["zram"]["disksize"] = 32 << 20
    b["scenario"]["source"] = "elsewhere.yaml"          # not a difference
    r = run_emul("compare", str(save(a, tmp_path / "a")), str(save(b, tmp_path / "b")))
    assert r.returncode == 0, r.stderr
    assert "scenarios differ" in r.stdout and "zram.disksize" in r.stdout
    assert "variants" in r.stdout and "source" not in r.stdout.split("compared with")[0]
    assert "different machines" in r.stdout and "aarch64 RK3588" in r.stdout
    bitmap = table_line(r.stdout, "bitmap", "unmap time")
    assert bitmap.split("|")[4].strip() == "-"          # B has no bitmap: its cell says so
    assert scenario_diff(a["scenario"], b["scenario"]) == ["zram.disksize",
                                                           "variants (2 vs 1 entries)"]


def test_replay_metrics_are_compared() -> None:
    a = make_doc({"sync": [1e6, 1e6, 1e6, 1e6], "bitmap": [1e6, 1e6, 1e6, 1e6]},
                 replay_summary=[], replay_options={"target_mb": 10.0})
    for row in a["repeats"]:
        row["replay"] = {
            "kills": [{"name": "k", "start_ms": 0.0, "anon_freed_ms": 4.0,
                       "swap_freed_ms": 8.0 if row["variant"] == "bitmap" else 4.0}],
            "timeline": {"t_ms": [0.0, 2.0, 4.0], "returned_mb": [0.0, 6.0, 12.0]}}
    b = copy.deepcopy(a)
    for row in b["repeats"]:
        row["replay"]["timeline"]["returned_mb"] = [0.0, 12.0, 12.0]
    rows = compare([Run("A", Path("a"), a), Run("B", Path("b"), b)])
    cell = {(r.variant, r.metric): r.cells for r in rows}
    assert cell[("bitmap", "kill → swap freed (median of kills)")][0].median == 8.0
    to_target = cell[("sync", "time to 10 MiB returned")]
    assert to_target[0].median == 4.0 and to_target[1].median == 2.0
    assert to_target[1].ratio == pytest.approx(0.5)


def test_csv_export_parses_back(tmp_path: Path) -> None:
    doc = make_doc({"sync": [1e6, 1.1e6], "bitmap": [5e5, 5.5e5]},
                   replay_summary=[{"strategy": "sync", "kills": 1}])
    for row in doc["repeats"]:
        row["replay"] = {"kills": [{"name": "a", "start_ms": 0.0, "anon_freed_ms": 1.0,
                                    "swap_freed_ms": None}],
                         "timeline": {"t_ms": [0.0, 2.0, 4.0], "returned_mb": [0, 1, 2],
                                      "gc_backlog": [0, 5, 0]}}
    paths = {p.name: p for p in write_csv(tmp_path, doc)}
    assert set(paths) == {"repeats.csv", "summary.csv", "lock_stat.csv", "workers.csv",
                          "kills.csv", "replay_summary.csv", "timeline.csv"}
    reps = read_csv(paths["repeats.csv"])
    assert len(reps) == 4 and reps[1]["variant"] == "sync" and reps[1]["repeat"] == "1"
    for col in ("time_ns", "ns_per_page", "lazy", "in_place", "fallback", "miss_free",
                "gc_freed", "gc_drain_ns", "peak_backlog", "audit.ok", "zram_stats.pages_stored"):
        assert col in reps[0], col
    assert float(reps[2]["time_ns"]) == 5e5 and reps[2]["strategy"] == "bitmap"
    locks = read_csv(paths["lock_stat.csv"])
    assert len(locks) == 4 * len(LOCK_CLASSES)
    assert (locks[1]["class name"], locks[1]["contentions"]) == ("zs_class_lock", "3")
    assert read_csv(paths["workers.csv"])[0]["cpus_seen"] == "0"
    kills = read_csv(paths["kills.csv"])
    assert len(kills) == 4 and kills[0]["swap_freed_ms"] == ""       # None: never freed
    tl = read_csv(paths["timeline.csv"])
    assert len(tl) == 4 * 3
    assert list(tl[0])[:5] == ["variant", "strategy", "group", "repeat", "t_ms"]
    assert [(r["t_ms"], r["gc_backlog"]) for r in tl[:3]] == [("0.0", "0"), ("2.0", "5"),
                                                             ("4.0", "0")]
    assert len(read_csv(paths["summary.csv"])) == 2


def test_csv_exports_generic_timelines(tmp_path: Path) -> None:
    """A normal run's rows may carry row["timeline"]: exported as they come, whatever series;
    next to a replay's timelines they go to two files."""
    doc = make_doc({"sync": [1e6], "bitmap": [5e5]})
    for row in doc["repeats"]:
        row["timeline"] = {"t_ms": [0.0, 1.0], "held_mb": [3.5, 0.0], "queued": [0, 7]}
    names = {p.name for p in write_csv(tmp_path / "one", doc)}
    assert "timeline.csv" in names and "replay_timeline.csv" not in names
    tl = read_csv(tmp_path / "one" / "timeline.csv")
    assert [(r["variant"], r["t_ms"], r["held_mb"], r["queued"]) for r in tl] == [
        ("sync", "0.0", "3.5", "0"), ("sync", "1.0", "0.0", "7"),
        ("bitmap", "0.0", "3.5", "0"), ("bitmap", "1.0", "0.0", "7")]
    doc["repeats"][0]["replay"] = {"kills": [], "timeline": {"t_ms": [0.0], "pool_mb": [1.0]}}
    names = {p.name for p in write_csv(tmp_path / "two", doc)}
    assert {"timeline.csv", "replay_timeline.csv"} <= names
    assert read_csv(tmp_path / "two" / "replay_timeline.csv")[0]["pool_mb"] == "1.0"


def test_report_calls_plots_when_present(tmp_path: Path, monkeypatch, capsys) -> None:
    """`emul report` renders the plots through emul.report.plots, looked up when it runs."""
    import sys
    import types

    from emul import cli
    path = save(make_doc({"sync": [1e6, 1e6], "bitmap": [5e5, 5e5]}), tmp_path / "run")
    calls = []
    fake = types.ModuleType("emul.report.plots")

    def render_all(doc: dict, outdir: Path) -> list[Path]:
        calls.append((doc["scenario"]["name"], Path(outdir)))
        return [Path(outdir) / "fake.png"]

    fake.render_all = render_all
    monkeypatch.setitem(sys.modules, "emul.report.plots", fake)
    assert cli.main(["report", str(path), "-o", str(tmp_path / "out")]) == 0
    assert calls == [("tiny", tmp_path / "out")]
    assert (tmp_path / "out" / "summary.txt").exists()
    assert "fake.png" in capsys.readouterr().out
