"""The verdict table: which design finished first, freed everything first, held least back and
contended least, per group, with '≈ runner-up' when the repeats cannot separate the two."""
from __future__ import annotations

import copy

from rich.console import Console

from emul.report.summary import summarize
from emul.report.verdict import verdict_table, verdicts
from test_compare import LOCK_CLASSES, make_doc


def one(doc: dict) -> dict:
    (v,) = verdicts(doc)
    return v


def test_a_clear_winner_is_named_alone() -> None:
    doc = make_doc({"sync": [10e6, 10.1e6, 10.2e6, 10.1e6, 10e6],
                    "bitmap": [5e6, 5.1e6, 5.05e6, 5e6, 5.1e6]})
    v = one(doc)
    assert v["done_first"] == "bitmap (5.05 ms)"
    # bitmap's drain (20 us in every repeat) still ends long before sync's unmap
    assert v["freed_first"] == "bitmap (5.07 ms)"
    assert v["least_held"].startswith("bitmap (")      # the only lazy design
    assert "≈" not in v["done_first"]


def test_a_winner_the_repeats_cannot_separate_is_marked() -> None:
    doc = make_doc({"sync": [10e6, 5e6, 10e6], "bitmap": [9e6, 6e6, 9.5e6]})
    assert one(doc)["done_first"] == "bitmap (9.00 ms) ≈ sync"


def test_contentions_count_every_lock_class_and_none_is_said_so() -> None:
    doc = make_doc({"sync": [10e6] * 5, "bitmap": [5e6] * 5})
    for row in doc["repeats"]:          # bitmap contends once per class, sync 3 + repeat times
        if row["variant"] == "bitmap":
            for c in row["lock_stat"]:
                c["contentions"] = 1
    assert one(doc)["fewest_contentions"] == f"bitmap ({len(LOCK_CLASSES)})"
    quiet = copy.deepcopy(doc)
    for row in quiet["repeats"]:
        for c in row["lock_stat"]:
            c["contentions"] = 0
    assert one(quiet)["fewest_contentions"] == "none"


def test_one_row_per_group_and_no_lazy_design_holds_nothing() -> None:
    doc = make_doc({"sync a": [10e6] * 3, "sync b": [8e6] * 3})
    for row in doc["repeats"]:
        row["group"] = row["variant"].split()[1]
        row["strategy"] = "sync"
        row["lazy"] = 0
    doc["summary"] = summarize(doc["repeats"], ["sync a", "sync b"])
    vs = verdicts(doc)
    assert [v["group"] for v in vs] == ["a", "b"]
    assert all(v["least_held"] == "-" for v in vs)
    text = render(verdict_table(doc))
    assert "group" in text and "least held back" in text


def render(table) -> str:
    console = Console(width=250, record=True)
    console.print(table)
    return console.export_text()
