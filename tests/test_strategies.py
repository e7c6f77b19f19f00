"""The shared strategy suite: every registered GC strategy must pass it.

Each strategy in ``emul.strategies.strategy_names()`` is run end to end through the real
``emul run`` command (real worker processes, pinned, on one shared arena) and must show, in every
repeat: a clean audit, every queued slot freed exactly once (by the GC, or by the write that
reused it), nothing left queued, the cap respected, fallbacks counted, and every freed swap entry
accounted for as lazy, in place or missed.

To keep the file fast, each scenario is run once with *every* strategy as a variant (a run costs
a few seconds of worker start-up; a repeat costs milliseconds); the parametrized tests then read
their own strategy's rows. The first test that needs a run starts it, under ``no_leftovers``.

Strategy families (each module's FAMILY, one of emul.strategies.FAMILIES; what "freed exactly
once" means for each):

  slot queue    the slot stays allocated and marked in gc_map until the GC frees it, or until a
                write reuses it (slot_free takes it off gc_map): lazy == gc_freed + reused_queued
  handle queue  the slot's metadata is freed at once and only the zsmalloc handle is deferred: a
                write never meets a queued slot: lazy == gc_freed, reused_queued == 0
  pre-zram      the killer's unmap hands whole swap entries to a kworker (still referenced, so
                not reusable); swap-in and reclaim free in place: lazy == gc_freed == the
                killer's swap PTEs, reused_queued == 0
  none          nothing is deferred (sync): lazy == gc_freed == 0

Every run has the debug switch assert_locked on: a `__` function called without the lock it
needs is a fault the audit reports.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import run_emul, tiny_scenario, two_cpus, write_yaml
from emul.strategies import FAMILIES, get_strategy, strategy_names
from emul.strategies.common import sort_entries

# --- strategy classification ------------------------------------------------------------------

SYNC, SLOT_QUEUE, HANDLE, PRE_ZRAM = "none", "slot queue", "handle queue", "pre-zram"
# strategies whose drain frees same-class handle runs under one class-lock hold (RFC v3)
BATCHES_BY_CLASS = {"percpu-zsfree"}

STRATEGIES = strategy_names()


def family(name: str) -> str:
    fam = getattr(get_strategy(name), "FAMILY", None)
    if fam not in (SYNC, SLOT_QUEUE, HANDLE, PRE_ZRAM):
        pytest.fail(f"strategy {name!r} has FAMILY {fam!r}: give its module a FAMILY of "
                    f"emul.strategies.FAMILIES ({SLOT_QUEUE!r}: queued slots in gc_map; "
                    f"{HANDLE!r}: deferred zsmalloc handles; {PRE_ZRAM!r}: swap entries deferred "
                    f"in mm; {SYNC!r}: nothing deferred), so the shared suite knows which "
                    f"identities hold")
    return fam


def test_the_suite_knows_every_family():
    assert set(FAMILIES) == {SYNC, SLOT_QUEUE, HANDLE, PRE_ZRAM}


def test_every_registered_strategy_is_classified():
    for name in STRATEGIES:
        fam = family(name)
        mod = get_strategy(name)
        assert mod.NAME == name
        # only the strategies that defer work need the GC worker
        assert bool(mod.NEEDS_GC) == (fam != SYNC), (name, fam, mod.NEEDS_GC)
        assert int(mod.DEFAULT_CAP_SLOTS) >= 0


# --- sort_entries: the heapsort percpu-zsfree's drain runs in compiled code ---------------------

@settings(max_examples=300, deadline=None)
@given(data=st.data(),
       a=hnp.arrays(np.int64, st.integers(0, 300),
                    elements=st.integers(-2**63, 2**63 - 1)
                    | st.integers(-3, 3)))          # plenty of duplicates too
def test_sort_entries_sorts_the_slice_in_place_and_nothing_else(data, a):
    lo = data.draw(st.integers(0, a.size), label="lo")
    hi = data.draw(st.integers(lo, a.size), label="hi")
    before = a.copy()
    sort_entries(a, lo, hi)
    np.testing.assert_array_equal(a[lo:hi], np.sort(before[lo:hi]))
    np.testing.assert_array_equal(a[:lo], before[:lo])
    np.testing.assert_array_equal(a[hi:], before[hi:])


# --- the shared end-to-end runs -----------------------------------------------------------------

PAGE = 4096
MIB = 1024 * 1024

# mixed + reclaim: the killer (CPU a) and the swap-in worker (CPU b) free slots at once, the GC
# drains on the killer's CPU (so it lags and queued slots wait), and reclaim on the swap-in CPU
# cycles a background process: its swap-outs take the most recently freed slots first, which
# are the ones still queued. The zero profile finishes the actors before reclaim gets going
# (a whole repeat in under a millisecond), so the modelled costs stretch the phase to ~0.2 s.
MIXED_VICTIM, MIXED_APP, MIXED_BACKGROUND = 8 * MIB, 4 * MIB, 8 * MIB
MIXED_REPEATS = 3
REUSE_PROFILE = ("name: reuse\ndescription: slow zap and fault, slow GC\n"
                 "costs_ns: {zap_pte: 20000, fault: 2000, slot_free: 10000}\nunlisted_ns: 0\n")
CAP = 64
CAPPED = "-cap64"       # the variant of each strategy that runs with cap: CAP
# cap (unmap): the GC on its own CPU, but every zs_free costs 20 us, so the GC frees at most 50
# slots/ms while the killer queues one every ~0.2 us: the backlog reaches the cap however the
# two are scheduled (the killer's queue path pays no modelled cost in any strategy)
CAP_PROFILE = ("name: slowzsfree\ndescription: slow zs_free, so the GC lags\n"
               "costs_ns: {zs_free: 20000}\nunlisted_ns: 0\n")
CAP_VICTIM = 8 * MIB
CAP_REPEATS = 2
# zsmalloc variants: mixed (no reclaim, so nothing is allocated in the measured phase), lock_stat
ZS_VICTIM, ZS_APP = 6 * MIB, 4 * MIB
ZS_REPEATS = 2
ZSMALLOC = ("default", "v6")
DEBUG = {"assert_locked": True}   # every `__` function checks its lock is held (the audit reports)


def every_strategy(suffix: str = "", **extra) -> list[dict]:
    return [{"name": n + suffix, "strategy": n, **extra} for n in STRATEGIES]


def scenario(kind: str) -> tuple[dict, str | None]:
    """The scenario of one shared run, and the profile file text it needs (None: the scenario's)."""
    a, b = two_cpus()
    if kind == "mixed-reclaim":
        return tiny_scenario(
            debug=DEBUG, name="strategies-mixed", experiment="mixed", repeats=MIXED_REPEATS,
            zram={"disksize": "32M"},
            processes=[{"name": "dying", "vma": MIXED_VICTIM, "swapped": 1.0, "role": "victim"},
                       {"name": "fg", "vma": MIXED_APP, "swapped": 1.0, "role": "app"}],
            workers={"killer": {"cpu": a}, "gc": {"cpu": a}, "swapin": {"cpu": b},
                     "reclaim": {"cpu": b, "vma": MIXED_BACKGROUND}, "swapout": {"cpu": a}},
            variants=every_strategy() + every_strategy(CAPPED, cap=CAP)), REUSE_PROFILE
    if kind == "cap":
        return tiny_scenario(
            debug=DEBUG, name="strategies-cap", experiment="unmap", repeats=CAP_REPEATS,
            zram={"disksize": "16M"},
            processes=[{"name": "victim", "vma": CAP_VICTIM, "swapped": 1.0}],
            workers={"killer": {"cpu": a}, "gc": {"cpu": b}, "swapout": {"cpu": a}},
            variants=every_strategy(cap=CAP)), CAP_PROFILE
    if kind.startswith("zsmalloc-"):
        return tiny_scenario(
            debug=DEBUG, name=f"strategies-{kind}", experiment="mixed", repeats=ZS_REPEATS,
            lockstat=True,
            zram={"disksize": "16M"},
            processes=[{"name": "dying", "vma": ZS_VICTIM, "swapped": 1.0, "role": "victim"},
                       {"name": "fg", "vma": ZS_APP, "swapped": 1.0, "role": "app"}],
            workers={"killer": {"cpu": a}, "swapin": {"cpu": b}, "gc": {"cpu": b},
                     "swapout": {"cpu": a}},
            variants=every_strategy(zsmalloc=kind.removeprefix("zsmalloc-"))), None
    raise KeyError(kind)


RUN_KINDS = ["mixed-reclaim", "cap"] + [f"zsmalloc-{z}" for z in ZSMALLOC]


@dataclass
class Run:
    kind: str
    proc: subprocess.CompletedProcess
    doc: dict | None      # results.json, None if the run wrote none

    def explain(self) -> str:
        return (f"emul run ({self.kind}) exited {self.proc.returncode}\n"
                f"--- stderr ---\n{self.proc.stderr[-3000:]}\n"
                f"--- stdout ---\n{self.proc.stdout[-3000:]}")


_RUNS: dict[str, Run] = {}


def shared_run(kind: str, tmp_path_factory) -> Run:
    """Run the scenario once per session; later tests read the same results."""
    if kind not in _RUNS:
        d: Path = tmp_path_factory.mktemp(kind)
        doc, profile = scenario(kind)
        args = ["run", str(write_yaml(d / f"{kind}.yaml", doc)), "-o", str(d / "out")]
        if profile is not None:
            (d / "profile.yaml").write_text(profile)
            args += ["--profile", str(d / "profile.yaml")]
        proc = run_emul(*args)
        out = d / "out" / "results.json"
        _RUNS[kind] = Run(kind, proc, json.loads(out.read_text()) if out.exists() else None)
    return _RUNS[kind]


def rows_of(run: Run, variant: str, repeats: int) -> list[dict]:
    """The variant's repeats, each audited clean. The run may have failed only because another
    strategy failed its audit (exit 1, status audit-failed): that strategy's test says so."""
    assert run.doc is not None and run.proc.returncode in (0, 1), run.explain()
    status = run.doc["status"]
    assert (run.proc.returncode, status) in ((0, "ok"), (1, "audit-failed")), run.explain()
    rows = [r for r in run.doc["repeats"] if r["variant"] == variant]
    assert len(rows) == repeats, f"{variant}: {len(rows)} repeats of {repeats}\n{run.explain()}"
    for r in rows:
        assert r["audit"]["ok"], f"{variant} repeat {r['repeat']}: {r['audit']['problems']}"
    return rows


def stat_delta(row: dict, key: str) -> int:
    return row["zram_stats"][key] - row["zram_stats_before"][key]


def check_nothing_left_queued(row: dict) -> None:
    name = f"{row['variant']} repeat {row['repeat']}"
    assert row["zram_stats"]["gc_slots"] == 0, f"{name}: slots left queued after the drain"
    assert row["zram_stats"]["gc_bytes"] == 0, name
    assert row["audit"]["counts"]["queued"] == 0, name


def check_misses(row: dict) -> None:
    """miss_free: the workers' count is the device's, and only missed slots may keep content."""
    counts = row["audit"]["counts"]
    assert row["miss_free"] == stat_delta(row, "miss_free")
    assert counts["stale"] <= row["zram_stats"]["miss_free"]
    # every slot that holds content is mapped by a swap entry, or was missed
    assert counts["allocated"] == counts["in_use"] + counts["stale"]
    assert row["zram_stats"]["pages_stored"] == counts["allocated"]


def check_family(row: dict, fam: str) -> None:
    """Every queued slot freed exactly once: the identities of the strategy's family."""
    lazy, gc_freed, reused = row["lazy"], row["gc_freed"], row["reused_queued"]
    name = f"{row['variant']} repeat {row['repeat']}: {row}"
    if fam == SYNC:
        assert lazy == gc_freed == reused == row["fallback"] == row["peak_backlog"] == 0, name
    elif fam == SLOT_QUEUE:
        assert lazy == gc_freed + reused, name
        assert row["in_place"] == row["fallback"], name    # in place only when refused
    elif fam == HANDLE:
        assert lazy == gc_freed and reused == 0, name
        assert row["in_place"] >= row["fallback"], name    # + same-filled slots (no handle)
    else:
        assert fam == PRE_ZRAM
        assert lazy == gc_freed and reused == 0, name


# --- concurrent enqueue (killer + swap-in), drain (GC), slot reuse (reclaim) --------------------

def check_mixed_reclaim_row(row: dict, name: str, fam: str) -> None:
    victim, app = MIXED_VICTIM // PAGE, MIXED_APP // PAGE
    assert row["zram_stats_before"]["pages_stored"] == victim + app   # all swapped out
    assert row["zram_stats"]["failed_writes"] == 0
    assert row["ptes"] == victim                                      # the killer zapped all
    assert row["reclaimed"] > 0
    # every swap entry freed in the phase: the victim's (killer), the app's (swap-in), and the
    # background's refaulted ones (reclaim); each reached zram_slot_free_notify once
    freed = victim + app + row["refaulted"]
    assert stat_delta(row, "notify_free") == freed, row
    assert row["lazy"] + row["in_place"] + row["miss_free"] == freed, row
    # what is still mapped: the background pages reclaim left swapped out
    assert row["audit"]["counts"]["in_use"] == row["reclaimed"] - row["refaulted"]
    check_nothing_left_queued(row)
    check_misses(row)
    check_family(row, fam)
    if fam in (SLOT_QUEUE, HANDLE):
        assert row["lazy"] > 0, row
    if fam == PRE_ZRAM:
        # only the killer's unmap defers (its swap PTEs): swap-in and reclaim free in place
        assert row["lazy"] <= victim, row


@pytest.mark.parametrize("name", STRATEGIES)
def test_concurrent_frees_with_reuse_free_every_slot_once(name, tmp_path_factory, no_leftovers):
    """experiment mixed + reclaim: two processes free slots through the strategy at once, the GC
    drains, reclaim writes into just-freed slots. Every swap entry freed is accounted for, every
    queued slot is freed exactly once, nothing stays queued, the audit is clean."""
    fam = family(name)
    rows = rows_of(shared_run("mixed-reclaim", tmp_path_factory), name, MIXED_REPEATS)
    for row in rows:
        check_mixed_reclaim_row(row, name, fam)
        if fam == PRE_ZRAM:
            # no cap by default: every swap entry the killer zapped was handed to the kworker
            assert get_strategy(name).DEFAULT_CAP_SLOTS == 0
            assert row["lazy"] == MIXED_VICTIM // PAGE and row["fallback"] == 0, row
    if fam == SLOT_QUEUE:
        # reclaim wrote into slots the GC still held queued, in every repeat (on the 2-CPU VM:
        # 700 to 12,000 per repeat)
        reused = [r["reused_queued"] for r in rows]
        assert all(n > 0 for n in reused) and sum(reused) >= 1000, reused


@pytest.mark.parametrize("name", STRATEGIES)
def test_cap_holds_under_concurrent_frees_and_reuse(name, tmp_path_factory, no_leftovers):
    """The same run with cap 64: the backlog never exceeds it, the frees it refuses are made in
    place (counted as fallbacks), and every identity above still holds."""
    fam = family(name)
    rows = rows_of(shared_run("mixed-reclaim", tmp_path_factory), f"{name}{CAPPED}",
                   MIXED_REPEATS)
    for row in rows:
        check_mixed_reclaim_row(row, name, fam)
        assert row["peak_backlog"] <= CAP, row
        if fam in (SLOT_QUEUE, HANDLE):
            assert row["fallback"] > 0, row
        # (mm-async: its kworker often keeps up with the one killer here, so the cap may not be
        # reached; the unmap run below shows it refusing)


# --- the cap ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", STRATEGIES)
def test_cap_is_respected_and_fallbacks_are_counted(name, tmp_path_factory, no_leftovers):
    """cap 64 with a GC slower than the killer (unmap): the backlog reaches the cap and never
    exceeds it, the rest is freed in place and counted, every swap entry is accounted for."""
    fam = family(name)
    run = shared_run("cap", tmp_path_factory)
    rows = rows_of(run, name, CAP_REPEATS)
    pages = CAP_VICTIM // PAGE
    for row in rows:
        assert row["zram_stats_before"]["pages_stored"] == pages
        assert row["ptes"] == pages
        assert stat_delta(row, "notify_free") == pages
        assert row["lazy"] + row["in_place"] + row["miss_free"] == pages, row
        assert row["peak_backlog"] <= CAP, row
        assert row["audit"]["counts"]["in_use"] == 0
        assert row["reused_queued"] == 0                 # no writes in an unmap run
        check_nothing_left_queued(row)
        check_misses(row)
        check_family(row, fam)
        if fam == SYNC:
            continue
        # the cap was reached: the GC could not keep up (percpu-zsfree: the one killer's CPU
        # is the only one that frees, so its buffer holds the whole cap)
        assert row["peak_backlog"] == CAP, row
        if fam in (SLOT_QUEUE, HANDLE):
            assert row["fallback"] > 0, row
        if fam == HANDLE:
            # in place: the refused slots, and the same-filled ones (no handle to defer)
            same_freed = row["zram_stats_before"]["same_pages"] - row["zram_stats"]["same_pages"]
            assert row["in_place"] == row["fallback"] + same_freed, row
        if fam == PRE_ZRAM:
            assert row["in_place"] > 0, row              # hand-offs refused over the cap


def pre_zram_strategies() -> list[str]:
    return [n for n in STRATEGIES if get_strategy(n).FAMILY == PRE_ZRAM]


@pytest.mark.parametrize("name", pre_zram_strategies())
def test_mm_async_counts_refused_hand_offs_as_fallbacks(name, tmp_path_factory, no_leftovers):
    """In the unmap run with cap 64, every swap PTE the killer zapped under mm-async was either
    handed off (lazy) or refused by the cap and freed in place: each refusal is a fallback, as
    the other strategies count theirs (the table's "(N over cap)")."""
    rows = rows_of(shared_run("cap", tmp_path_factory), name, CAP_REPEATS)
    for row in rows:
        refused = row["ptes"] - row["lazy"]
        assert refused > 0, row                          # the cap was hit
        assert row["in_place"] == refused, row           # ... and the refused entries freed here
        assert row["fallback"] == refused, row           # each refusal counted as a fallback


# --- zsmalloc variants, and percpu-zsfree's class batches ---------------------------------------

@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("zsmalloc", ZSMALLOC)
def test_zsmalloc_variant_frees_every_object_once(zsmalloc, name, tmp_path_factory,
                                                  no_leftovers):
    """Each strategy on zsmalloc default and v6 (class in the handle, zspage pages released after
    the class lock): audit clean, and lock_stat accounts for every object freed in the phase.

    No zs_malloc runs in the measured phase (no reclaim), so every zs_class_lock acquisition is a
    zs_free, or one per same-class run for a strategy that batches: the objects freed minus the
    acquisitions is exactly what the batches saved, which each row reports as batch_saved
    (W_BATCH_SAVED). zs_pool_lock is taken (read) once per class-lock acquisition on default
    zsmalloc, never on v6.
    """
    fam = family(name)
    rows = rows_of(shared_run(f"zsmalloc-{zsmalloc}", tmp_path_factory), name, ZS_REPEATS)
    victim, app = ZS_VICTIM // PAGE, ZS_APP // PAGE
    for row in rows:
        assert row["zram_stats_before"]["pages_stored"] == victim + app
        assert stat_delta(row, "notify_free") == victim + app
        assert row["lazy"] + row["in_place"] + row["miss_free"] == victim + app, row
        assert row["audit"]["counts"]["in_use"] == 0
        check_nothing_left_queued(row)
        check_misses(row)
        check_family(row, fam)
        before, after = row["zram_stats_before"], row["zram_stats"]
        objects_freed = ((before["pages_stored"] - before["same_pages"])
                         - (after["pages_stored"] - after["same_pages"]))
        assert objects_freed > 0
        locks = {lock["class name"]: lock for lock in row["lock_stat"]}
        class_acq = locks["zs_class_lock"]["acquisitions"]
        pool_acq = locks["zs_pool_lock"]["acquisitions"]
        assert 0 < class_acq <= objects_freed, row
        assert pool_acq == (class_acq if zsmalloc == "default" else 0), (pool_acq, class_acq)
        assert row["batch_saved"] == objects_freed - class_acq, (
            row["batch_saved"], objects_freed, class_acq)
    saved = sum(r["batch_saved"] for r in rows)
    if name in BATCHES_BY_CLASS:
        assert saved > 0, "no same-class run was freed under one class-lock hold"
    else:
        assert saved == 0, (f"{name} saved {saved} class-lock acquisitions: if it batches "
                            f"zs_free by class, add it to BATCHES_BY_CLASS")


# --- each shared run as a whole ------------------------------------------------------------------

@pytest.mark.parametrize("kind", RUN_KINDS)
def test_shared_run_exits_zero(kind, tmp_path_factory, no_leftovers):
    run = shared_run(kind, tmp_path_factory)
    assert run.proc.returncode == 0, run.explain()
    assert run.doc["status"] == "ok"
    assert {r["strategy"] for r in run.doc["repeats"]} == set(STRATEGIES)
    assert "Traceback" not in run.proc.stderr


@pytest.mark.parametrize("name", STRATEGIES)
def test_enqueue_is_compiled_inline(name):
    """zram_slot_free_notify runs enqueue once per slot: as a call, numba would pass the Zram
    views flattened (~190 scalars, ~25 ns, enough to take a handle queue past 10x the atomic
    add in `emul bench`), so every strategy's enqueue is inlined into the dispatch."""
    assert get_strategy(name).enqueue.targetoptions.get("inline") == "always", name
