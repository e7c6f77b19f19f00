"""Issue 20, item 4: the scaling sweep over the number of concurrent exits (``vary: exits`` and
``vary: killers``, emul/config/vary.py) and its report (emul/report/scaling.py): the points a
machine cannot run without its killers sharing a CPU are named and left out, the others run
(one copy of the process and one killer per exit), and the scaling table, results.json's
``scaling`` and scaling.png give will-it-scale's curve per design."""
from __future__ import annotations

import json
import os
import shutil
import statistics
from pathlib import Path

import pytest
from rich.console import Console

from emul.config.profiles import builtin_names
from emul.config.vary import concurrent_exits, load_matrix, load_sweep
from emul.errors import InputError
from emul.report.scaling import (design_of, scaling_doc, scaling_rows, scaling_table,
                                 skipped_lines)
from emul.report.schema import check_results
from emul.strategies import strategy_names

from conftest import leftovers_checked, run_emul, tiny_scenario, usable_cpus, write_yaml

VMA_MB = 4
DESIGNS = ("sync", "bitmap")


def flat(text: str) -> str:
    """Output with every run of whitespace made one space: progress lines and warnings wrap."""
    return " ".join(text.split())


def sweep_doc(exits: list, **over) -> dict:
    """A scaling sweep of one 4M process, the killers on every usable CPU."""
    cpus = usable_cpus()
    most = max([n for n in exits if isinstance(n, int) and 0 < n <= 64] or [1])
    doc = tiny_scenario(
        name="scal", zram={"disksize": f"{max(32, VMA_MB * most)}M"},
        processes=[{"name": "victim", "vma": f"{VMA_MB}M", "swapped": 1.0}],
        workers={"killer": {"cpu": "all"}, "gc": {"cpu": cpus[-1]}, "swapout": {"cpu": cpus[0]}},
        vary={"exits": exits})
    doc.update(over)
    return doc


TITLE = "scaling: scal — against the number of concurrent exits (vary: exits)"


def scaling_block(stdout: str) -> list[str]:
    """The lines of the plain scaling table, from its title to its last closing border: one
    table, or the blocks of columns a narrow output cuts it into (titled " (k/m)")."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("scaling: "))
    end = start
    while end < len(lines) and lines[end].startswith("scaling: "):
        borders = [i for i in range(end + 1, len(lines)) if lines[i].startswith("+")]
        assert len(borders) >= 2, lines[end:]
        end = borders[1] + 1
    return lines[start:end]


def table_rows(block: list[str]) -> list[dict[str, str]]:
    """The scaling table's data rows as {column: cell}, the blocks of columns joined row by
    row. Every row names its design, and a table cut into blocks repeats the design and exits
    columns in each block, alike."""
    parts: list[list[str]] = []
    for line in block:
        if line.startswith("scaling: "):
            parts.append([])
        elif line.startswith("|") and not line.startswith("|-"):
            parts[-1].append(line)
    merged: list[dict[str, str]] = []
    for part in parts:
        header = [c.strip() for c in part[0].strip("|").split("|")]
        cells = [dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
                 for line in part[1:]]
        assert header[:2] == ["design", "exits"], block      # the key columns, in each block
        if merged:
            assert len(merged) == len(cells), block
            assert [(a["design"], a["exits"]) for a in merged] == [
                (b["design"], b["exits"]) for b in cells], block
        merged = [dict(a, **b) for a, b in zip(merged, cells)] if merged else cells
    assert all(row["design"] for row in merged), block       # the design on every row
    return merged


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One run of the acceptance sweep, exits 1, 2 and n + 1 on a machine of n usable CPUs,
    shared by the tests that read it. Like the no_leftovers fixture (which is per test), the
    run's arenas carry a tag of their own and its control sockets live in a directory of its
    own, and nothing of either, nor a worker, may be left once it ends."""
    cpus = usable_cpus()
    if len(cpus) < 2:
        pytest.skip("a scaling sweep needs at least 2 usable CPUs (exits=2 runs two killers)")
    n = len(cpus)
    tmp = tmp_path_factory.mktemp("scaling")
    ctl = tmp / "ctl"
    ctl.mkdir()
    path = write_yaml(tmp / "sweep.yaml", sweep_doc([1, 2, n + 1]))
    out = tmp / "out"
    with pytest.MonkeyPatch.context() as mp, leftovers_checked(ctl, mp):
        r = run_emul("run", str(path), "-o", str(out), "--warmup", "0", "--format", "plain")
    doc = json.loads((out / "results.json").read_text()) if r.returncode == 0 else None
    return {"n": n, "cpus": cpus, "run": r, "out": out, "doc": doc}


def test_a_sweep_runs_the_points_this_machine_can_and_names_the_other(sweep):
    """The acceptance: exits [1, 2, n+1] on n CPUs runs 1 and 2 exits, each exit on a CPU of
    its own, lists n+1 as needing n+1 CPUs (progress, table, warning, results.json), and the
    scaling figures are the run's own: time the summary's median, linear 100 % at the
    smallest point, vs sync against the same point's sync; every audit clean, scaling.png
    written, nothing of the skipped point run."""
    n, cpus, r, out, doc = sweep["n"], sweep["cpus"], sweep["run"], sweep["out"], sweep["doc"]
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    reason = (f"needs {n + 1} CPUs, one per concurrent exit (the killers have {n} here: "
              f"CPUs {','.join(map(str, cpus))})")
    said = flat(r.stdout)
    assert f"not run: exits={n + 1}: {reason}" in said
    assert f"warning: exits={n + 1}: not run, {reason}" in said

    # the table, after the progress and before the warning
    block = scaling_block(r.stdout)
    assert block[0] == TITLE or block[0].startswith(TITLE + " (1/")
    assert r.stdout.index(block[0]) < r.stdout.index(f"warning: exits={n + 1}: not run")
    shown = {(row["design"], row["exits"]): row for row in table_rows(block)}
    assert set(shown) == {(d, str(k)) for d in DESIGNS for k in (1, 2, n + 1)}, shown
    for d in DESIGNS:
        assert shown[(d, str(n + 1))]["time (±spread)"] == f"needs {n + 1} CPUs"
        assert shown[(d, str(n + 1))]["vs sync"] == "not run"
        assert shown[(d, "1")]["linear"] == "100 %"
        for k in (1, 2):
            assert shown[(d, str(k))]["time (±spread)"].endswith("%)"), shown[(d, str(k))]
    assert shown[("sync", "1")]["vs sync"] == shown[("sync", "2")]["vs sync"] == "baseline"

    check_results(doc, str(out / "results.json"))
    sc = doc["scaling"]
    assert sc["key"] == "exits"

    # the points: run ones on distinct CPUs, one per exit; the last one skipped
    points = sc["points"]
    assert [p["exits"] for p in points] == [1, 2, n + 1]
    assert [p["group"] for p in points] == ["exits=1", "exits=2", f"exits={n + 1}"]
    last = points[-1]
    assert last["skipped"] == reason and last["needs_cpus"] == n + 1 and last["cpus"] == []
    for p in points[:2]:
        assert p["skipped"] is None
        assert len(p["cpus"]) == len(set(p["cpus"])) == p["exits"], p
        assert set(p["cpus"]) <= set(cpus), p
        assert shown[("sync", str(p["exits"]))]["CPUs"] == ",".join(map(str, p["cpus"]))
        assert p["page_size"] == 4096
    killers = {g["variants"][0]["group"]: g["workers"]["killer"]["cpus"] for g in doc["groups"]}
    assert killers == {p["group"]: p["cpus"] for p in points[:2]}

    # the rows: one per design and point, figures from the summary and the repeats
    rows = sc["rows"]
    assert [(x["design"], x["exits"]) for x in rows] == [
        (d, k) for d in DESIGNS for k in (1, 2, n + 1)]
    summary = {s["variant"]: s for s in doc["summary"]}
    for x in rows:
        if x["exits"] == n + 1:
            assert x["point"] == ""
            assert x["skipped"] == reason and x["needs_cpus"] == n + 1 and "time_ms" not in x
            continue
        variant = f"{x['design']} exits={x['exits']}"
        s = summary[variant]
        assert x["variant"] == variant and x["group"] == f"exits={x['exits']}"
        assert x["point"] == "" and x["strategy"] == x["design"]
        assert x["time_ms"] == pytest.approx(s["time_ms_median"], rel=1e-9)
        assert x["spread_pct"] == pytest.approx(s["spread_pct"], rel=1e-9)
        reps = [rep for rep in doc["repeats"] if rep["variant"] == variant]
        assert len(reps) == 2
        assert x["per_exit_ms"] * 1e6 == pytest.approx(statistics.median(
            sum(rep["headline_ns"].values()) / x["exits"] for rep in reps), rel=1e-9)
        assert x["mib_per_s"] == pytest.approx(statistics.median(
            rep["ptes"] * 4096 / 2**20 / (rep["time_ns"] / 1e9) for rep in reps), rel=1e-9)
        if x["design"] == "sync":
            assert x["baseline"] == variant and x["speedup"] == pytest.approx(1.0)
        else:
            sync = summary[f"sync exits={x['exits']}"]
            assert x["baseline"] == f"sync exits={x['exits']}"
            assert x["speedup"] == pytest.approx(s["speedup"], rel=1e-9)
            assert x["speedup"] == pytest.approx(sync["time_ms_median"] / s["time_ms_median"],
                                                 rel=1e-9)
        # the table shows these figures
        cell = shown[(x["design"], str(x["exits"]))]
        assert cell["CPUs"].startswith(",".join(map(str, x["cpus"])))
        assert cell["time (±spread)"] == f"{x['time_ms']:.2f} ms (±{x['spread_pct']:.1f}%)"
        assert cell["per exit"] == f"{x['per_exit_ms']:.2f} ms"
        assert cell["MiB/s"] == f"{x['mib_per_s']:,.0f}"
        assert cell["linear"] == f"{x['linear_pct']:.0f} %"
        assert cell["vs sync"] == ("baseline" if x["design"] == "sync" else
                                   f"{x['speedup']:.2f}×{'*' if x['significant'] else ''}")
    for d in DESIGNS:
        one, two = (next(x for x in rows if x["design"] == d and x["exits"] == k) for k in (1, 2))
        assert one["linear_pct"] == pytest.approx(100.0)
        assert two["linear_pct"] == pytest.approx(
            100.0 * two["mib_per_s"] / (one["mib_per_s"] * 2))

    # every audit clean; nothing of the skipped point ran; the plot
    assert doc["repeats"] and all(rep["audit"]["ok"] for rep in doc["repeats"])
    assert all(s["audit_clean"] == 2 for s in doc["summary"])
    ran = {f"{d} exits={k}" for d in DESIGNS for k in (1, 2)}
    assert {rep["variant"] for rep in doc["repeats"]} == ran
    assert set(summary) == ran
    assert not [v for v in doc["scenario"]["variants"] if v["group"] == f"exits={n + 1}"]
    assert f"warning: exits={n + 1}: not run, {reason}" in flat((out / "summary.txt").read_text())
    png = out / "scaling.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "scaling.png" in said


def test_each_point_runs_one_copy_and_one_killer_per_exit(sweep):
    """exits=2: the group's scenario has the process twice (victim1, victim2) and every repeat
    times two killers; exits=1: the process once, under its own name, and one killer, whose
    own time is the phase's."""
    doc = sweep["doc"]
    assert sweep["run"].returncode == 0, sweep["run"].stderr
    groups = {g["variants"][0]["group"]: g for g in doc["groups"]}
    assert set(groups) == {"exits=1", "exits=2"}
    assert [p["name"] for p in groups["exits=1"]["processes"]] == ["victim"]
    assert [p["name"] for p in groups["exits=2"]["processes"]] == ["victim1", "victim2"]
    assert {p["vma"] for g in groups.values() for p in g["processes"]} == {VMA_MB << 20}
    for rep in doc["repeats"]:
        exits = 2 if rep["variant"].endswith("exits=2") else 1
        own = rep["headline_ns"]
        assert len(own) == exits, rep["variant"]
        assert rep["ptes"] == exits * (VMA_MB << 20) // 4096
        for name, t in own.items():
            assert 0 < t <= rep["time_ns"] * (1 + 1e-9), (rep["variant"], name)
        if exits == 1:
            assert next(iter(own.values())) == pytest.approx(rep["time_ns"], rel=1e-9)


def test_emul_report_prints_the_same_scaling_table(sweep, tmp_path):
    """emul report of the run's directory renders the scaling table from results.json alone,
    line for line as the run printed it."""
    r0 = sweep["run"]
    assert r0.returncode == 0, r0.stderr
    r = run_emul("report", str(sweep["out"]), "-o", str(tmp_path / "rep"), "--format", "plain")
    assert r.returncode == 0, r.stdout + r.stderr
    assert scaling_block(r.stdout) == scaling_block(r0.stdout)
    assert (tmp_path / "rep" / "scaling.png").stat().st_size > 0
    n = sweep["n"]
    warning = f"warning: exits={n + 1}: not run, needs {n + 1} CPUs"
    assert warning in flat(r.stdout)                                    # after the tables
    assert r.stdout.index(scaling_block(r.stdout)[0]) < r.stdout.index("warning: ")
    assert warning in flat((tmp_path / "rep" / "summary.txt").read_text())


def test_emul_report_without_o_writes_summary_txt_with_the_not_run_warning(sweep, tmp_path):
    """emul report DIR with no -o writes summary.txt into DIR itself (here a copy of the run's
    directory, its summary.txt removed), warnings after the tables, the skipped point's line
    among them, as the run wrote it."""
    assert sweep["run"].returncode == 0, sweep["run"].stderr
    n = sweep["n"]
    copy = tmp_path / "copy"
    shutil.copytree(sweep["out"], copy)
    ran = (copy / "summary.txt").read_text()
    (copy / "summary.txt").unlink()
    r = run_emul("report", str(copy), "--format", "plain")
    assert r.returncode == 0, r.stdout + r.stderr
    text = (copy / "summary.txt").read_text()
    line = (f"warning: exits={n + 1}: not run, needs {n + 1} CPUs, one per concurrent exit "
            f"(the killers have {n} here: CPUs {','.join(map(str, sweep['cpus']))})")
    assert line in flat(text), text
    assert text.index(TITLE) < text.index("warning: ")
    assert scaling_block(text) == scaling_block(ran)
    assert [w for w in flat(text).split("warning: ")[1:] if "not run" in w] == \
        [w for w in flat(ran).split("warning: ")[1:] if "not run" in w]


def test_the_sweep_marks_a_lazy_designs_gc_on_a_killers_cpu(sweep):
    """The fixture pins the GC on the last usable CPU and the killers on all of them: at 2
    exits on 2 CPUs the GC shares the second killer's CPU. bitmap's run rows there carry the
    shared CPUs (gc_shares) and the table's CPUs cell says "(GC on <cpu>)"; sync's rows, whose
    GC has nothing to do, carry none and say nothing. Every point's gc_shares is its GC CPUs
    among its killers'."""
    n, cpus, doc = sweep["n"], sweep["cpus"], sweep["doc"]
    assert sweep["run"].returncode == 0, sweep["run"].stderr
    sc = doc["scaling"]
    groups = {g["variants"][0]["group"]: g for g in doc["groups"]}
    shown = {(row["design"], row["exits"]): row
             for row in table_rows(scaling_block(sweep["run"].stdout))}
    for p in sc["points"]:
        if p["skipped"]:
            assert "gc_shares" not in p
            continue
        gc = groups[p["group"]]["workers"]["gc"]["cpus"]
        assert gc == [cpus[-1]]
        assert p["gc_shares"] == sorted(set(gc) & set(p["cpus"])), p
    two = next(p for p in sc["points"] if p["exits"] == 2)
    if n == 2:
        assert two["gc_shares"] == [cpus[1]], two
    for x in sc["rows"]:
        if x["skipped"]:
            assert "gc_shares" not in x
            continue
        point = next(p for p in sc["points"] if p["group"] == x["group"])
        cell = shown[(x["design"], str(x["exits"]))]["CPUs"]
        plain = ",".join(map(str, x["cpus"]))
        if x["design"] == "sync":
            assert x["strategy"] == "sync" and x["gc_shares"] == [], x
            assert cell == plain
        else:
            assert x["strategy"] == "bitmap" and x["gc_shares"] == point["gc_shares"], x
            assert cell == (f"{plain} (GC on {','.join(map(str, x['gc_shares']))})"
                            if x["gc_shares"] else plain)
    if n == 2:
        assert shown[("bitmap", "2")]["CPUs"] == f"{cpus[0]},{cpus[1]} (GC on {cpus[1]})"
        assert "(GC on " not in shown[("sync", "2")]["CPUs"]
        assert "(GC on " not in shown[("bitmap", "1")]["CPUs"]


# ---- load_sweep: which points run (no processes) -----------------------------------------

def sweep_of(tmp_path: Path, doc: dict):
    path = write_yaml(tmp_path / "s.yaml", doc)
    return load_sweep(path, cpus={0, 1}, strategies=strategy_names(), profiles=builtin_names())


def two_procs(k: int = 2) -> list[dict]:
    return [{"name": f"p{i}", "vma": "4M", "swapped": 1.0} for i in range(k)]


def test_points_whose_killers_would_share_a_cpu_are_skipped_with_the_reason(tmp_path):
    groups, skipped = sweep_of(tmp_path, sweep_doc([1, 2, 4]))
    assert [g.variants[0].group for g in groups] == ["exits=1", "exits=2"]
    assert [concurrent_exits(g) for g in groups] == [1, 2]
    assert [g.workers.killers for g in groups] == [(0,), (0, 1)]
    assert [[p.name for p in g.processes] for g in groups] == [["victim"], ["victim1", "victim2"]]
    assert [v.name for v in groups[1].variants] == ["sync exits=2", "bitmap exits=2"]
    assert [(p.group, p.exits, p.needs_cpus, p.reason) for p in skipped] == [
        ("exits=4", 4, 4, ("needs 4 CPUs, one per concurrent exit (the killers have 2 here: "
                           "CPUs 0,1)"))]
    assert skipped[0].to_json()["needs_cpus"] == 4
    # load_matrix: the groups only
    path = write_yaml(tmp_path / "m.yaml", sweep_doc([1, 2, 4]))
    matrix = load_matrix(path, cpus={0, 1}, strategies=strategy_names(), profiles=builtin_names())
    assert [g.variants[0].group for g in matrix] == ["exits=1", "exits=2"]


def test_killers_on_one_cpu_skip_every_point_above_one(tmp_path):
    doc = sweep_doc([1, 2])
    doc["workers"]["killer"] = {"cpu": 0}
    groups, skipped = sweep_of(tmp_path, doc)
    assert [g.variants[0].group for g in groups] == ["exits=1"]
    assert [(p.group, p.reason) for p in skipped] == [
        ("exits=2", "needs 2 CPUs, one per concurrent exit (the killers have 1 here: CPU 0)")]


def test_a_killers_sweep_counts_only_killers_that_have_a_victim(tmp_path):
    """killers [1, 2, 3] over a file of 2 processes: the third killer has no victim, so 3
    killers are 2 concurrent exits, which 2 CPUs can run; over 3 processes they are 3, which
    they cannot."""
    doc = sweep_doc([1], processes=two_procs(2), vary={"killers": [1, 2, 3]})
    groups, skipped = sweep_of(tmp_path, doc)
    assert skipped == []
    assert [g.variants[0].group for g in groups] == ["killers=1", "killers=2", "killers=3"]
    assert [len(g.workers.killers) for g in groups] == [1, 2, 3]
    assert [concurrent_exits(g) for g in groups] == [1, 2, 2]
    assert all(len(g.processes) == 2 for g in groups)      # killers split, never copy

    groups, skipped = sweep_of(tmp_path, dict(doc, processes=two_procs(3)))
    assert [g.variants[0].group for g in groups] == ["killers=1", "killers=2"]
    assert [(p.group, p.exits, p.needs_cpus) for p in skipped] == [("killers=3", 3, 3)]


def test_a_sweep_no_point_of_which_can_run_is_refused(tmp_path):
    with pytest.raises(InputError) as info:
        sweep_of(tmp_path, sweep_doc([3, 4]))
    text = str(info.value)
    assert ": vary.exits: no point of the sweep can run here: needs 3 CPUs" in text, text


def refused(r, field: str, *words: str) -> str:
    """The one line an input error prints."""
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("emul: ") and f": {field}: " in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _too_many() -> int:
    return len(usable_cpus()) + 1


BAD = {
    "exits and killers": (lambda: sweep_doc([1, 2], vary={"exits": [1, 2], "killers": [1, 2]}),
                          "vary", "expected exits or killers, not both"),
    "exits 0": (lambda: sweep_doc([1, 0]), "vary.exits[1]", "from 1 to 64, got 0"),
    "exits 65": (lambda: sweep_doc([65]), "vary.exits[0]", "from 1 to 64, got 65"),
    "exits 1.5": (lambda: sweep_doc([1, 1.5]), "vary.exits[1]", "a whole number"),
    "exits text": (lambda: sweep_doc([1, "2"]), "vary.exits[1]", "a whole number"),
    "exits true": (lambda: sweep_doc([True]), "vary.exits[0]", "a whole number"),
    "exits of a swap-in": (lambda: sweep_doc([1, 2], experiment="swapin"), "vary.exits",
                           "expected experiment: unmap"),
    "exits of 2 processes": (lambda: sweep_doc([1, 2], processes=two_procs(2)), "processes",
                             "expected a list of one process, got 2 processes"),
    "exits none can run": (lambda: sweep_doc([_too_many()]), "vary.exits",
                           "no point of the sweep can run here",
                           lambda: f"needs {_too_many()} CPUs"),
    "exits twice": (lambda: sweep_doc([2, 2]), "vary.exits[1]",
                    "expected distinct values, got 2 again (as vary.exits[0])"),
    "strategy twice": (lambda: sweep_doc([1, 2], vary={"exits": [1, 2],
                                                       "strategy": ["sync", "sync"]}),
                       "vary.strategy[1]",
                       'expected distinct values, got "sync" again (as vary.strategy[0])'),
    "page_size twice": (lambda: sweep_doc([1], vary={"exits": [1, 2],
                                                     "page_size": ["4K", "16K", "4K"]}),
                        "vary.page_size[2]",
                        'expected distinct values, got "4K" again (as vary.page_size[0])'),
    "killers none can run": (lambda: sweep_doc(
        [1], zram={"disksize": f"{max(32, 4 * _too_many())}M"},
        processes=two_procs(_too_many()), vary={"killers": [_too_many()]}),
        "vary.killers", "no point of the sweep can run here"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_sweep_is_one_line_naming_the_field_and_creates_nothing(case, tmp_path,
                                                                      no_leftovers):
    make, field, *words = BAD[case]
    path = write_yaml(tmp_path / "bad.yaml", make())
    out = tmp_path / "out"
    r = run_emul("run", str(path), "-o", str(out))
    line = refused(r, field, *(w() if callable(w) else w for w in words))
    assert str(path) in line
    assert not out.exists(), "an output directory was created for a refused scenario"


# ---- the report's arithmetic, from a synthetic run ---------------------------------------

PAGE = 4096


def _repeat(variant: str, t_ns: float, ptes: int, own: dict[str, float]) -> dict:
    return {"variant": variant, "time_ns": t_ns, "ptes": ptes, "headline_ns": own}


def _summary(variant: str, group: str, baseline: str, speedup: float, time_ms: float,
             spread: float = 5.0, significant: bool = False) -> dict:
    return {"variant": variant, "strategy": variant.split()[0], "group": group,
            "baseline": baseline, "speedup": speedup, "time_ms_median": time_ms,
            "spread_pct": spread, "significant": significant}


def synthetic() -> tuple[list[dict], list[dict], list[dict]]:
    """Points at 1, 2 (run; the GC on CPU 1, a killer's at 2 exits) and 4 (skipped) exits;
    designs "sync zs=v6" at 1 and 2, "array" at 2 only; a summary row of a group that is no
    point (ignored)."""
    points = [{"group": "exits=1", "exits": 1, "cpus": [0], "skipped": None,
               "page_size": PAGE, "gc_shares": []},
              {"group": "exits=2", "exits": 2, "cpus": [0, 1], "skipped": None,
               "page_size": PAGE, "gc_shares": [1]},
              {"group": "exits=4", "exits": 4, "cpus": [], "skipped": "needs 4 CPUs, because",
               "needs_cpus": 4}]
    mb4 = (4 << 20) // PAGE        # 4 MiB of pages a process
    rows = [
        _repeat("sync zs=v6 exits=1", 1e6, mb4, {"killer": 1e6}),        # 4000 MiB/s
        _repeat("sync zs=v6 exits=1", 2e6, mb4, {"killer": 2e6}),        # 2000
        _repeat("sync zs=v6 exits=1", 4e6, mb4, {"killer": 4e6}),        # 1000
        _repeat("sync zs=v6 exits=2", 2e6, 2 * mb4, {"killer": 1e6, "killer2": 2e6}),   # 4000
        _repeat("sync zs=v6 exits=2", 8e6, 2 * mb4, {"killer": 3e6, "killer2": 5e6}),   # 1000
        _repeat("sync zs=v6 exits=2", 4e6, 2 * mb4, {"killer": 4e6, "killer2": 4e6}),   # 2000
        _repeat("array exits=2", 1e6, 2 * mb4, {}),          # no headline_ns: time_ns per exit
        _repeat("array exits=2", 3e6, 2 * mb4, {}),
        _repeat("sync other", 9e9, mb4, {"killer": 9e9}),
    ]
    summary = [
        _summary("sync zs=v6 exits=1", "exits=1", "sync zs=v6 exits=1", 1.0, 2.0, spread=50.0),
        _summary("sync zs=v6 exits=2", "exits=2", "sync zs=v6 exits=2", 1.0, 4.0),
        _summary("array exits=2", "exits=2", "sync zs=v6 exits=2", 2.0, 2.0, significant=True),
        _summary("sync other", "other", "sync other", 1.0, 9000.0),
    ]
    return points, rows, summary


def test_design_of_drops_the_sweeps_own_label_only():
    assert design_of("sync zs=v6 exits=2", "exits") == "sync zs=v6"
    assert design_of("bitmap cap=1000 killers=4", "killers") == "bitmap cap=1000"
    assert design_of("sync exits=2 page=16K", "exits") == "sync page=16K"    # other keys stay
    assert design_of("bitmap killers=3 page=4K gc_cpu=1", "killers") == \
        "bitmap page=4K gc_cpu=1"
    assert design_of("bitmap killers=3", "exits") == "bitmap killers=3"     # not the key's
    assert design_of("sync", "exits") == "sync"
    assert design_of("exits=2", "exits") == "exits=2"     # nothing left: the name itself


def test_scaling_rows_arithmetic():
    """time: the median repeat; per exit: the killers' own times summed, over the exits (the
    phase's time when none is recorded); MiB/s: pages unmapped per second, median over the
    repeats; linear: 100 x thr(N) / (thr(N0) x N / N0), N0 the design's own smallest point;
    vs sync: the summary's baseline and speedup."""
    points, rows, summary = synthetic()
    got = scaling_rows("exits", points, rows, summary)
    assert [(r["design"], r["exits"]) for r in got] == [
        ("sync zs=v6", 1), ("sync zs=v6", 2), ("sync zs=v6", 4),
        ("array", 1), ("array", 2), ("array", 4)]
    at = {(r["design"], r["exits"]): r for r in got}

    s1, s2 = at[("sync zs=v6", 1)], at[("sync zs=v6", 2)]
    assert s1["variant"] == "sync zs=v6 exits=1" and s1["group"] == "exits=1"
    assert s1["cpus"] == [0] and s1["skipped"] is None and s1["needs_cpus"] == 1
    assert all(r["point"] == "" for r in got)
    assert s1["strategy"] == s2["strategy"] == "sync"
    assert s1["gc_shares"] == s2["gc_shares"] == []       # sync: its GC has nothing to do
    assert s1["time_ms"] == pytest.approx(2.0) and s2["time_ms"] == pytest.approx(4.0)
    assert s1["per_exit_ms"] == pytest.approx(2.0)
    assert s2["per_exit_ms"] == pytest.approx(statistics.median([1.5, 4.0, 4.0]))
    assert s1["mib_per_s"] == pytest.approx(2000.0) and s2["mib_per_s"] == pytest.approx(2000.0)
    assert s1["linear_pct"] == pytest.approx(100.0)
    assert s2["linear_pct"] == pytest.approx(100.0 * 2000 / (2000 * 2 / 1))      # 50 %
    assert s1["spread_pct"] == 50.0 and s2["baseline"] == "sync zs=v6 exits=2"
    assert s2["speedup"] == 1.0 and s2["significant"] is False

    a2 = at[("array", 2)]
    assert a2["time_ms"] == pytest.approx(2.0)
    assert a2["per_exit_ms"] == pytest.approx(2.0)     # no headline_ns: the phase's time
    assert a2["mib_per_s"] == pytest.approx(statistics.median([8000.0, 8000 / 3]))
    assert a2["linear_pct"] == pytest.approx(100.0)   # its own smallest point is 2
    assert a2["baseline"] == "sync zs=v6 exits=2" and a2["speedup"] == 2.0
    assert a2["significant"] is True
    assert a2["strategy"] == "array" and a2["gc_shares"] == [1]     # its GC on a killer's CPU
    assert "time_ms" not in at[("array", 1)]          # no variant of the design at 1 exit

    for design in ("sync zs=v6", "array"):
        four = at[(design, 4)]
        assert four["skipped"] == "needs 4 CPUs, because" and four["needs_cpus"] == 4
        assert "time_ms" not in four and "gc_shares" not in four
    assert not [r for r in got if "other" in r["design"]]


def test_scaling_rows_mib_per_s_uses_the_points_own_page_size():
    points, rows, summary = synthetic()
    for p in points:
        p["page_size"] = 4 * PAGE
    got = {(r["design"], r["exits"]): r for r in scaling_rows("exits", points, rows, summary)}
    assert got[("sync zs=v6", 1)]["mib_per_s"] == pytest.approx(4 * 2000.0)
    assert got[("array", 2)]["mib_per_s"] == pytest.approx(4 * statistics.median(
        [8000.0, 8000 / 3]))


def _rendered(table) -> str:
    with open(os.devnull, "w") as sink:
        console = Console(width=160, record=True, file=sink)
        console.print(table)
    return console.export_text()


def test_scaling_table_and_skipped_lines_of_a_synthetic_doc():
    points, rows, summary = synthetic()
    doc = {"scenario": {"name": "syn"},
           "scaling": {"key": "exits", "points": points,
                       "rows": scaling_rows("exits", points, rows, summary)}}
    text = _rendered(scaling_table(doc))
    assert "scaling: syn — against the number of concurrent exits (vary: exits)" in flat(text)
    lines = [line for line in text.splitlines() if "│" in line]   # rows (header: ┃)
    assert len(lines) == 6, text
    # the design on every row
    assert [line.strip("│ ").split("│")[0].strip() for line in lines] == \
        ["sync zs=v6"] * 3 + ["array"] * 3, text
    gc = [line for line in lines if "(GC on " in line]
    assert len(gc) == 1 and "0,1 (GC on 1)" in gc[0] and "array" in gc[0], text
    four = [line for line in lines if "needs 4 CPUs" in line]
    assert len(four) == 2 and all("not run" in line for line in four)
    assert any("2.00×*" in line for line in lines)                 # array against its sync
    assert sum("baseline" in line for line in lines) == 2          # sync at 1 and 2 exits
    assert any(" 50 %" in line for line in lines)                  # sync's 2-exit linear
    assert skipped_lines(doc) == ["exits=4: not run, needs 4 CPUs, because"]
    assert scaling_table({"scenario": {"name": "x"}}) is None
    assert skipped_lines({}) == []


# ---- two points of one design at the same concurrency, or of another kind ---------------

def _fake_run(groups) -> tuple[list[dict], list[dict]]:
    """One repeat and one summary row per variant, each group's time its own (k + 1 ms)."""
    rows, summary = [], []
    for k, g in enumerate(groups):
        for v in g.variants:
            rows.append(_repeat(v.name, (k + 1) * 1e6, 1024, {}))
            summary.append(_summary(v.name, v.group, v.name, 1.0, (k + 1) * 1.0))
    return rows, summary


@pytest.mark.parametrize("vary", [{"killers": [1, 2, 3]},
                                  {"exits": [1, 2], "page_size": ["4K", "16K"]}],
                         ids=["killers-beyond-the-processes", "exits-by-page-size"])
def test_every_scaling_row_shows_its_own_groups_figures(tmp_path, vary):
    """Two groups at the same concurrency (killers 2 and 3 over 2 processes) or of another kind
    (exits crossed with page_size) are each a row of their own: a design's rows are the points
    of its own kind (its group label, the key's token taken out), each showing its own group's
    variant, time and MiB/s (at its own page size)."""
    key = "killers" if "killers" in vary else "exits"
    doc = sweep_doc([1, 2], vary=vary, **({"processes": two_procs(2)} if key == "killers" else {}))
    groups, skipped = sweep_of(tmp_path, doc)
    assert skipped == []
    rows, summary = _fake_run(groups)
    sc = scaling_doc(key, groups, skipped, rows, summary)
    time_of = {r["variant"]: r["time_ns"] / 1e6 for r in rows}
    page_of = {p["group"]: p["page_size"] for p in sc["points"]}
    at = {(r["design"], r["group"]): r for r in sc["rows"]}
    assert len(at) == len(sc["rows"]) == sum(len(g.variants) for g in groups)    # none lost
    if key == "killers":
        kinds = {"": ["killers=1", "killers=2", "killers=3"]}
        designs = {"sync": "", "bitmap": ""}
    else:
        kinds = {page: [f"exits=1 page={page}", f"exits=2 page={page}"] for page in ("4K", "16K")}
        designs = {f"{d} page={page}": page for d in DESIGNS for page in ("4K", "16K")}
    assert [p["group"] for p in sc["points"]] == sorted(
        (g for kind in kinds.values() for g in kind), key=lambda g: int(g.split()[0][-1]))
    assert {r["design"] for r in sc["rows"]} == set(designs)
    for design, kind in designs.items():
        mine = [r for r in sc["rows"] if r["design"] == design]
        assert [r["group"] for r in mine] == kinds[kind], mine
        for r in mine:
            strategy = design.split()[0]
            assert r["variant"] == f"{strategy} {r['group']}", r
            assert r["strategy"] == strategy
            assert r["time_ms"] == time_of[r["variant"]], r
            assert r["mib_per_s"] == pytest.approx(
                1024 * page_of[r["group"]] / 2**20 / (time_of[r["variant"]] / 1e3)), r
    if key == "killers":
        for d in DESIGNS:
            three = at[(d, "killers=3")]
            assert three["exits"] == 2 and three["point"] == "killers=3", three
            assert at[(d, "killers=2")]["exits"] == 2 and at[(d, "killers=2")]["point"] == ""
            assert at[(d, "killers=1")]["exits"] == 1 and at[(d, "killers=1")]["point"] == ""
        lines = [line for line in _rendered(scaling_table(
            {"scenario": {"name": "k"}, "scaling": sc})).splitlines() if "│" in line]
        assert sum("2 (killers=3)" in line for line in lines) == 2, lines
    else:
        assert {page_of[g] for g in kinds["4K"]} == {4096}
        assert {page_of[g] for g in kinds["16K"]} == {16384}
        assert all(r["point"] == "" for r in sc["rows"])
        sync4, sync16 = at[("sync page=4K", "exits=2 page=4K")], \
            at[("sync page=16K", "exits=2 page=16K")]
        assert sync16["mib_per_s"] != pytest.approx(sync4["mib_per_s"])
