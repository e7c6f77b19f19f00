"""Reading results.json back (`emul report`, `emul compare`): a hand-edited file is refused in
one line naming the key (emul/report/schema.py), never a traceback; and names from the user's
files (a profile's name, a trace file's, any name in a results.json) print as written, never
as rich markup.

One real run and one real replay are made per module; every other case edits copies of them.
A scenario's and a variant's name are restricted to letters, digits and ".-_" (emul/config/
fields.py), so markup reaches a run only through a profile's name or a trace file's; in a
results.json any name can carry it, which the edited copies test.
"""
from __future__ import annotations

import copy
import io
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import ROOT, run_emul, tiny_scenario, write_yaml
from emul.errors import InputError
from emul.report.compare import Run, print_comparison
from emul.report.export import write_csv
from emul.report.io import load_results
from emul.report.schema import check_results
from emul.report.tables import summary_tables
from emul.report.textout import PlainConsole

CLOSING = "[/]"                 # parsed as markup: MarkupError, nothing to close
RED = "[red]x[/red]"            # parsed as markup: a red "x"
TRACE_NAME = "[bold]b.log"      # a file name cannot hold "/": an opening tag alone


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> tuple[Path, str]:
    """A real `emul run` of the tiny scenario, one repeat, lock_stat on, under a cost profile
    named "[/]": its directory and its stdout."""
    tmp = tmp_path_factory.mktemp("reading")
    profile = yaml.safe_load((ROOT / "emul/config/profiles/zero.yaml").read_text())
    profile.update(name=CLOSING, description=RED)
    prof = write_yaml(tmp / "markup.yaml", profile)
    tiny_path = write_yaml(tmp / "tiny.yaml", tiny_scenario(lockstat=True))
    out = tmp / "run"
    r = run_emul("run", str(tiny_path), "--repeats", "1", "--profile", str(prof),
                 "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r.stdout


@pytest.fixture(scope="module")
def real_replay(tmp_path_factory) -> tuple[Path, str]:
    """A real `emul replay` of the burst trace (two strategies, one repeat), read from a file
    named "[bold]b.log": its directory and its stdout."""
    tmp = tmp_path_factory.mktemp("replay")
    trace = tmp / TRACE_NAME
    shutil.copy(ROOT / "scenarios/traces/burst.log", trace)
    from test_replay import base_scenario
    base = base_scenario(tmp, name="replay-reading")
    out = tmp / "out"
    r = run_emul("replay", str(trace), "--scenario", str(base), "--strategies", "sync,bitmap",
                 "--repeats", "1", "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r.stdout


def doc_of(run: tuple[Path, str]) -> dict:
    return json.loads((run[0] / "results.json").read_text())


def save(doc: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def assert_one_line_error(r, path: Path, *needles: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    # start-up's sweep may report what another test's killed run left (emul/cli/entry.py):
    # the machine is shared, that line is not this command's answer
    lines = [ln for ln in r.stderr.strip().splitlines()
             if not (ln.startswith("emul: removed ") and "left by an emul run" in ln)]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"emul: {path}: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


# ---- emul's own files pass ------------------------------------------------------------------

def test_emul_reads_what_it_writes(real_run, real_replay) -> None:
    for run in (real_run, real_replay):
        doc = load_results(run[0])
        assert doc["repeats"] and doc["summary"]
    assert "replay_summary" in load_results(real_replay[0])


@pytest.mark.parametrize("command", ["soak", "vary"])
def test_emul_reads_its_soaks_and_matrices(tmp_path: Path, command: str) -> None:
    """A soak's document (every strategy, "soak" figures) and a matrix's (groups, profiles)."""
    out = tmp_path / "out"
    if command == "soak":
        scen = write_yaml(tmp_path / "tiny.yaml", tiny_scenario())
        args = ["soak", str(scen), "--minutes", "0.05", "--strategies", "sync,bitmap"]
    else:
        doc = tiny_scenario(vary={"page_size": ["4K", "16K"], "strategy": ["sync", "bitmap"]})
        del doc["variants"]
        args = ["run", str(write_yaml(tmp_path / "vary.yaml", doc)), "--repeats", "1"]
    r = run_emul(*args, "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert load_results(out)["repeats"]
    r = run_emul("report", str(out), "-o", str(tmp_path / "again"))
    assert r.returncode == 0, r.stdout + r.stderr


# ---- hand edits: one line naming the key, from report and from compare ---------------------

def _set(path: list[Any], value: Any) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        node = doc
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return edit


def _del(path: list[Any]) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        node = doc
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
    return edit


RUN_EDITS = [
    ("summary[0].time_ms_median", _set(["summary", 0, "time_ms_median"], "fast"),
     'expected a number, got a string "fast"'),
    ("repeats[1].time_ns", _set(["repeats", 1, "time_ns"], None),
     "expected a number, got null"),
    ("repeats[0].workers", _set(["repeats", 0, "workers"], [1, 2]),
     "expected an object, got a list"),
    ("machine", _set(["machine"], ["x86_64"]), "expected an object, got a list"),
    ("repeats[1].gc_drain_ns", _del(["repeats", 1, "gc_drain_ns"]),
     "missing; expected a number"),
    ("summary[1].spread_pct", _set(["summary", 1, "spread_pct"], "3.5"),
     'expected a number, got a string "3.5"'),
    ('repeats[0].lock_stat[2]["class name"]', _del(["repeats", 0, "lock_stat", 2, "class name"]),
     "missing; expected a string"),
    ("repeats[1].lock_stat[0].contentions", _set(["repeats", 1, "lock_stat", 0, "contentions"],
                                                 "many"), "expected a whole number"),
    ("repeats[0].timeline.t_ms[0]", _set(["repeats", 0, "timeline", "t_ms", 0], "soon"),
     "expected a number"),
    ("repeats[0].lazy", _set(["repeats", 0, "lazy"], True), "expected a whole number, got true"),
    ("repeats[0].ptes", _set(["repeats", 0, "ptes"], float("nan")), "got NaN"),
    ("scenario.name", _set(["scenario", "name"], 7), "expected a string, got 7"),
    ("summary[0].variant", _set(["summary", 0, "variant"], "nobody"), "no repeat names"),
    ("repeats[1].lock_stat", lambda d: d["repeats"][1]["lock_stat"].pop(),
     "lock classes of repeats[0]"),
    ("repeats[0].timeline.gc_backlog", lambda d: d["repeats"][0]["timeline"]["gc_backlog"].pop(),
     "expected one value per t_ms"),
    ("repeats", _set(["repeats"], {}), "expected a list, got an object"),
]


@pytest.mark.parametrize("key, edit, message", RUN_EDITS, ids=[e[0] for e in RUN_EDITS])
def test_a_hand_edited_run_is_one_line_naming_the_key(real_run, tmp_path: Path, key: str,
                                                     edit, message: str) -> None:
    doc = doc_of(real_run)
    edit(doc)
    bad = save(doc, tmp_path / "edited" / "results.json")
    assert_one_line_error(run_emul("report", str(bad), "-o", str(tmp_path / "out")), bad,
                          f": {key}: ", message)
    assert not (tmp_path / "out" / "summary.txt").exists()
    assert_one_line_error(run_emul("compare", str(bad), str(real_run[0])), bad,
                          f": {key}: ", message)


def test_the_first_problem_is_the_one_named(real_run, tmp_path: Path) -> None:
    doc = doc_of(real_run)
    split = doc["repeats"][0]["time_split"]
    worker = next(iter(split))
    split[worker]["costs_ns"] = [1, 2]
    doc["repeats"][1]["workers"][worker]["cpus_seen"] = "0-1"        # later in the document
    bad = save(doc, tmp_path / "results.json")
    r = run_emul("compare", str(real_run[0]), str(bad))
    assert_one_line_error(r, bad, f": repeats[0].time_split.{worker}.costs_ns: expected an "
                          f"object, got a list")


REPLAY_EDITS = [
    ("replay_summary[0].all_freed_ms", _set(["replay_summary", 0, "all_freed_ms"], None),
     "expected a number, got null"),
    ("repeats[0].replay.kills", _set(["repeats", 0, "replay", "kills"], []),
     "expected a list of at least 1"),
    ("repeats[1].replay.kills[0].swap_freed_ms",
     _set(["repeats", 1, "replay", "kills", 0, "swap_freed_ms"], "soon"),
     'expected a number or null, got a string "soon"'),
    ("replay_options.target_mb", _set(["replay_options", "target_mb"], None),
     "expected a number, got null"),
]


@pytest.mark.parametrize("key, edit, message", REPLAY_EDITS, ids=[e[0] for e in REPLAY_EDITS])
def test_a_hand_edited_replay_is_one_line_naming_the_key(real_replay, tmp_path: Path, key: str,
                                                        edit, message: str) -> None:
    doc = doc_of(real_replay)
    edit(doc)
    bad = save(doc, tmp_path / "results.json")
    assert_one_line_error(run_emul("report", str(bad), "-o", str(tmp_path / "out")), bad,
                          f": {key}: ", message)
    assert_one_line_error(run_emul("compare", str(bad), str(real_replay[0])), bad,
                          f": {key}: ", message)


@pytest.mark.parametrize("text, message", [
    ('{"schema": "emul-results", "version": 3, "n": ' + "1" * 5000 + "}", "not readable"),
    ("[" * 100_000, "not readable as JSON (nested too deeply)"),
])
def test_json_that_python_cannot_hold_is_one_line(tmp_path: Path, text: str,
                                                 message: str) -> None:
    bad = tmp_path / "results.json"
    bad.write_text(text)
    assert_one_line_error(run_emul("report", str(bad)), bad, message)


# ---- names print as written -----------------------------------------------------------------

def test_a_profile_named_like_markup_runs_and_prints_as_written(real_run) -> None:
    out, stdout = real_run
    assert f"profile {CLOSING}, " in stdout                 # the summary table's title
    assert f"profile {CLOSING}, " in (out / "summary.txt").read_text()


def _renamed(doc: dict) -> dict:
    """doc with its scenario named "[/]", its bitmap variant "[red]x[/red]", a worker and a
    lock class (contended, so compare shows it) named like markup, everywhere they occur."""
    doc = copy.deepcopy(doc)
    doc["scenario"]["name"] = CLOSING
    rename = {"bitmap": RED}
    for row in doc["repeats"]:
        row["variant"] = rename.get(row["variant"], row["variant"])
        row["workers"] = {f"[i]{k}": w for k, w in row["workers"].items()}
        row["time_split"] = {f"[i]{k}": s for k, s in row["time_split"].items()}
        row["lock_stat"][0].update({"class name": "[/]lock", "contentions": 3})
    for s in doc["summary"]:
        s["variant"] = rename.get(s["variant"], s["variant"])
    for v in doc["scenario"]["variants"]:
        v["name"] = rename.get(v["name"], v["name"])
    return doc


def test_markup_in_a_results_file_is_shown_literally(real_run, tmp_path: Path) -> None:
    copy_path = save(_renamed(doc_of(real_run)), tmp_path / "named" / "results.json")
    r = run_emul("report", str(copy_path), "--format", "plain", "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stdout + r.stderr
    for name in (RED, f"{CLOSING} — profile {CLOSING}", "[i]killer", "[/]lock"):
        assert name in r.stdout, name
    assert f"| {RED} " in r.stdout                           # a table cell, not a styled x
    assert RED in (tmp_path / "out" / "summary.txt").read_text()
    r = run_emul("compare", str(copy_path), str(real_run[0]), "--format", "plain")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"| {RED} " in r.stdout and f"{CLOSING} (unmap)" in r.stdout
    assert "[/]lock contentions" in r.stdout


def test_a_trace_file_named_like_markup_prints_as_written(real_replay, tmp_path: Path) -> None:
    out, stdout = real_replay
    assert TRACE_NAME in stdout                      # progress, and the table's title
    assert TRACE_NAME in (out / "summary.txt").read_text()
    r = run_emul("report", str(out), "--format", "plain", "-o", str(tmp_path / "again"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert TRACE_NAME in r.stdout


# ---- the property: valid, then it renders; else one InputError -------------------------------

NAMES = st.sampled_from([CLOSING, RED, "", "fast", "sync", "bitmap", "killer", "zs_class_lock",
                         "t_ms", "variant"])
# any text, "$...$" included: the plots do not read it as mathtext (emul/report/plots.py)
TEXT = st.text(max_size=8)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT | NAMES
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(TEXT | NAMES, inner, max_size=3),
                      max_leaves=6)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key and index of the document (a long list: its first two items and its last)."""
    out = []
    if isinstance(node, dict):
        items: list[tuple[Any, Any]] = list(node.items())
    elif isinstance(node, list):
        picks = sorted({0, 1, len(node) - 1} & set(range(len(node))))
        items = [(i, node[i]) for i in picks]
    else:
        return out
    for k, v in items:
        out.append((*prefix, k))
        out += _paths(v, (*prefix, k))
    return out


NUMBERS = (st.integers(-10**20, 10**20) | st.floats()
           | st.sampled_from([0, -1, 1e-300, 1e18, 2**63, 0.5]))


def _like(data, old: Any) -> Any:
    """A value of the kind already there (a number for a number, a name for a name, a list a
    little changed): edits the check lets through more often, so the readers meet them."""
    if isinstance(old, bool):
        return data.draw(st.booleans(), label="flag")
    if isinstance(old, (int, float)):
        return data.draw(NUMBERS, label="number")
    if isinstance(old, str):
        return data.draw(NAMES | TEXT, label="text")
    if isinstance(old, list) and old:
        i = data.draw(st.integers(0, len(old) - 1), label="item")
        return data.draw(st.sampled_from([old[:i] + old[i + 1:], old + [old[i]], old[::-1]]),
                         label="list")
    if isinstance(old, dict) and old:
        drop = data.draw(st.sampled_from(sorted(old)), label="key")
        return {k: v for k, v in old.items() if k != drop}
    return data.draw(VALUES, label="value")


def _mutate(data, doc: dict) -> dict:
    """doc with one to three edits: a value replaced (by any JSON value, or one of its kind),
    a key or item deleted, a list or object emptied."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        path = data.draw(st.sampled_from(_paths(doc)), label="where")
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        old = parent[path[-1]]
        what = data.draw(st.sampled_from(["any", "like", "like", "delete", "empty"]),
                         label="how")
        if what == "delete":
            del parent[path[-1]]
        elif what == "empty" and isinstance(old, (dict, list)):
            parent[path[-1]] = type(old)()
        elif what == "like":
            parent[path[-1]] = _like(data, old)
        else:
            parent[path[-1]] = data.draw(VALUES, label="value")
    return doc


def _loaded(doc: dict, where: Path) -> dict | None:
    """The document as load_results reads it back from a file, or None: refused in one line."""
    where.write_text(json.dumps(doc))
    try:
        loaded = load_results(where)
    except InputError as exc:
        assert "\n" not in str(exc)
        event("refused")
        return None
    event("read")
    return loaded


def _render(doc: dict, original: dict, outdir: Path) -> None:
    """What `emul report` and `emul compare` do with a document, in both output formats."""
    from rich.console import Console
    for console in (PlainConsole(file=io.StringIO()),
                    Console(file=io.StringIO(), width=70, color_system="truecolor")):
        for tbl in summary_tables(doc):
            console.print(tbl)
        print_comparison([Run("A", outdir / "a", doc), Run("B", outdir / "b", original)], console)
        print_comparison([Run("A", outdir / "b", original), Run("B", outdir / "a", doc)], console)
    write_csv(outdir, doc)


PROPERTY = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("which", ["run", "replay"])
@PROPERTY
@given(data=st.data())
def test_any_edit_is_refused_or_rendered(real_run, real_replay, which: str, data) -> None:
    original = doc_of(real_run if which == "run" else real_replay)
    doc = _mutate(data, original)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = _loaded(doc, Path(tmp) / "results.json")
        if loaded is not None:
            _render(loaded, original, Path(tmp))


@pytest.mark.parametrize("which", ["run", "replay"])
@settings(PROPERTY, max_examples=15)
@given(data=st.data())
def test_any_edit_is_refused_or_plotted(real_run, real_replay, which: str, data) -> None:
    from emul.report.io import render_plots
    original = doc_of(real_run if which == "run" else real_replay)
    doc = _mutate(data, original)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = _loaded(doc, Path(tmp) / "results.json")
        if loaded is not None:
            render_plots(loaded, Path(tmp))


def test_a_name_like_mathtext_is_plotted_as_written(real_run, tmp_path: Path) -> None:
    from emul.report.io import render_plots
    doc = doc_of(real_run)
    for row in doc["repeats"] + doc["summary"]:
        if row["variant"] == "bitmap":
            row["variant"] = "$\\foo$"
    render_plots(load_results(save(doc, tmp_path / "results.json")), tmp_path)


def test_the_check_accepts_documents_built_by_the_other_tests() -> None:
    """tests/test_compare.py's built documents carry only the keys the readers need: the
    check's required keys are those, nothing more."""
    from test_compare import make_doc
    check_results(json.loads(json.dumps(make_doc({"sync": [1e6, 1.1e6], "bitmap": [5e5]}))),
                  "built")
