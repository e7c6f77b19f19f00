"""emul validate: the record's labels are truthful, and a quick validation produces its table.

Behaviour only: no published figure is asserted to land anywhere (that is the report's job).
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from conftest import run_emul
from emul.config.profiles import builtin_names, load_profile
from emul.validate.outcome import sample_of
from emul.validate.record import PUBLISHED, SCENARIOS, figure_keys

ROOT = Path(__file__).resolve().parents[1]
IN_SAMPLE = {"1.sync", "1.bitmap", "2.sync", "2.bitmap", "3.1p.base", "4.1p.base"}


def profile_of(scenario: str) -> str:
    return yaml.safe_load((ROOT / SCENARIOS / scenario).read_text())["profile"]


def test_each_profile_names_the_figures_it_was_derived_from() -> None:
    for name in builtin_names():
        derived = load_profile(name).derived_from
        assert set(derived) <= figure_keys(), (name, derived)


def test_no_out_of_sample_figure_was_used_to_derive_its_profile() -> None:
    """The label comes from the profile's own list, and the list is what the derivation in the
    file's comments says: a figure the profile was fitted to is never shown as a prediction."""
    labels = {}
    for f in PUBLISHED:
        if not f.scenario:
            continue
        profile = load_profile(profile_of(f.scenario))
        labels[f.key] = sample_of(f.key, profile.derived_from)
        if labels[f.key] == "out-of-sample":
            assert f.key not in profile.derived_from
        # a profile is derived only from figures measured on its own board
        for key in profile.derived_from:
            other = next(g for g in PUBLISHED if g.key == key)
            assert profile_of(other.scenario) == profile.name, (key, profile.name)
    assert {k for k, v in labels.items() if v == "in-sample"} == IN_SAMPLE


def test_a_quick_validation_prints_its_labelled_table(tmp_path: Path, no_leftovers) -> None:
    out = tmp_path / "v"
    r = run_emul("validate", "--rows", "3", "--quick", "--scale", "0.0625", "-o", str(out),
                 timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((out / "results.json").read_text())
    by = {f["key"]: f for f in doc["figures"]}
    assert by["3.1p.base"]["status"] == "ran" and by["3.1p.base"]["sample"] == "in-sample"
    assert by["3.1p.class_in_handle"]["status"] == "ran"
    assert by["3.1p.class_in_handle"]["sample"] == "out-of-sample"
    assert by["3.1p.class_in_handle"]["emul_ms"] > 0 and by["3.1p.class_in_handle"]["ratio"] > 0
    for key in ("3.4p.base", "3.4p.class_in_handle"):
        assert by[key]["status"] == "skipped" and "needs 4 CPUs" in by[key]["reason"]
    assert "zs_free 65 % of slot_free" in by["3.1p.base"]["mechanism"]
    assert "3.1p.class_in_handle" in r.stdout and "out-of-sample" in r.stdout
    assert "skipped" in r.stdout and (out / "validate.png").stat().st_size > 0


def test_unknown_rows_are_refused_before_anything_runs(tmp_path: Path) -> None:
    r = run_emul("validate", "--rows", "3,99", "-o", str(tmp_path / "v"))
    assert r.returncode == 2 and "--rows" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "v").exists()
