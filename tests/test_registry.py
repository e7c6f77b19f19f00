"""The strategy registry and gc_hooks' written-out switch agree.

emul.strategies.STRATEGIES is the one list of strategies; a strategy's id is its position. The
compiled switch in emul/kernel/gc_hooks.py cannot loop over that list (numba's cache needs the
calls written out), so these tests check the two against each other: every registered strategy
has its branch in each switch function, no branch names an id the registry lacks, each branch
calls the module its id names, and each strategy, run through the switch on a tiny device
(unmap, then GC passes until nothing is queued), defers and frees what its family says.

A throw-away strategy cannot be registered and run end to end without editing gc_hooks.py: the
switch is compiled from that file's source, so a new id with no branch falls through to sync.
What it needs is listed in gc_hooks' docstring; the guard below names the missing branch.
"""
from __future__ import annotations

import ast
import inspect
from types import ModuleType

import pytest

import emul.strategies as registry
from emul.harness.arena import Arena
from emul.kernel import gc_hooks
from emul.kernel import layout as state
from emul.kernel.audit import audit
from emul.kernel.context import W_FALLBACK, W_LAZY
from emul.kernel.debug import DEBUG_ASSERT_LOCKED
from emul.kernel.gc_hooks import gc_backlog, gc_drain
from emul.kernel.mm import populate_vma, swap_out_range, unmap_vma
from emul.kernel.zram import ST_GC_SLOTS
from emul.kernel.workqueue import GC_FLUSH

SWITCHES = {"gc_try_lazy_free": "enqueue", "gc_drain": "drain"}   # switch -> the hook it calls
PAGES = 512


def short(mod: ModuleType) -> str:
    """A module's id name in StrategyId: its file name in capitals."""
    return mod.__name__.rpartition(".")[2].upper()


def branches(source: str, function: str) -> tuple[dict[str, str], str | None]:
    """({StrategyId name: module called} for each ``if kind == StrategyId.X:``
    branch of the function, the module its final return calls (the default) or None)."""
    fn = next(n for n in ast.walk(ast.parse(source))
              if isinstance(n, ast.FunctionDef) and n.name == function)
    found: dict[str, str] = {}
    for node in fn.body:
        if isinstance(node, ast.If):
            test = node.test
            assert isinstance(test, ast.Compare) and isinstance(test.comparators[0], ast.Attribute)
            call = node.body[0].value
            found[test.comparators[0].attr] = call.func.value.id
    last = fn.body[-1]
    default = (last.value.func.value.id if isinstance(last, ast.Return)
               and isinstance(last.value, ast.Call) and isinstance(last.value.func, ast.Attribute)
               else None)
    return found, default


def switch_problems(source: str, modules: tuple[ModuleType, ...]) -> list[str]:
    """What is wrong between a gc_hooks source and a registry: [] when they agree."""
    names = {short(m): m.__name__.rpartition(".")[2] for m in modules}
    problems = []
    for function in SWITCHES:
        found, default = branches(source, function)
        covered = dict(found)
        if default is not None:
            covered.setdefault(default.upper(), default)
        problems += [f"{function}: no branch for {n}" for n in names if n not in covered]
        problems += [f"{function}: a branch for {n}, which is not registered"
                     for n in found if n not in names]
        problems += [f"{function}: {n} calls {mod}" for n, mod in covered.items()
                     if n in names and names[n] != mod]
    deferring = {short(m) for m in modules if hasattr(m, "defer_swap_entry")}
    found, _ = branches(source, "gc_defer_swap_entry")
    if set(found) != deferring:
        problems.append(f"gc_defer_swap_entry: branches {sorted(found)}, strategies with "
                        f"defer_swap_entry {sorted(deferring)}")
    return problems


# --- the switch's source against the registry ------------------------------------------------

def test_every_registered_strategy_has_its_branch_and_no_other():
    assert switch_problems(inspect.getsource(gc_hooks), registry.STRATEGIES) == []


def test_the_default_branch_is_sync():
    for function in SWITCHES:
        assert branches(inspect.getsource(gc_hooks), function)[1] == "sync"


def test_a_strategy_registered_without_a_branch_is_caught():
    """The guard works: a throw-away module appended to the registry has no branch, and a
    branch whose strategy left the registry is named too."""
    throwaway = ModuleType("emul.strategies.throwaway")
    throwaway.NAME = "throwaway"
    found = switch_problems(inspect.getsource(gc_hooks), registry.STRATEGIES + (throwaway,))
    assert found == ["gc_try_lazy_free: no branch for THROWAWAY",
                     "gc_drain: no branch for THROWAWAY"]
    without_array = tuple(m for m in registry.STRATEGIES if m.NAME != "array")
    found = switch_problems(inspect.getsource(gc_hooks), without_array)
    assert "gc_drain: a branch for ARRAY, which is not registered" in found


# --- ids derive from the registry's order -------------------------------------------------------

def test_ids_are_positions_in_the_registry():
    mods = registry.STRATEGIES
    assert mods[0] is registry.sync and registry.strategy_id("sync") == 0
    assert registry.strategy_names() == [m.NAME for m in mods]
    assert len(set(registry.strategy_names())) == len(mods)
    for sid, mod in enumerate(mods):
        assert registry.strategy_id(mod.NAME) == sid == registry.STRATEGY_IDS[mod.NAME]
        assert registry.get_strategy(mod.NAME) is mod
        assert registry.StrategyId[short(mod)] == sid
        assert mod.FAMILY in registry.FAMILIES
        in_buffers = bool((registry.BACKLOG_IN_BUFFERS_MASK >> sid) & 1)
        assert in_buffers == bool(getattr(mod, "BACKLOG_IN_BUFFERS", False))
    assert len(registry.StrategyId) == len(mods)


# --- each strategy through the switch, on a tiny device -----------------------------------------

def device(name: str) -> Arena:
    """PAGES pages swapped out under strategy name, no cap, assert_locked on."""
    mod = registry.get_strategy(name)
    words = mod.queue_words(2 * PAGES, 0)
    geo = state.Geometry(page_size=4096, nr_slots=2 * PAGES, total_pages=PAGES, n_workers=2,
                         strategy_id=registry.strategy_id(name), cap_slots=0, cap_bytes=0,
                         queue_words=words, seed=9, mean_comp_len=1500, spread_permille=500,
                         same_ppm=100_000, huge_ppm=0, debug=DEBUG_ASSERT_LOCKED)
    a = Arena.create(state.build_layout(geo))
    a.unlink()
    state.init_state(a, geo)
    if hasattr(mod, "setup_queue"):
        mod.setup_queue(a["gc_queue"], 2 * PAGES, 0, 0)
    z, mm = state.zram_view(a), state.mm_view(a)
    populate_vma(mm, 0, PAGES)
    swap_out_range(z, mm, state.ctx_view(a, 0), 0, PAGES, 1_000_000, state.page_buffer(a, 0))
    return a


@pytest.mark.parametrize("name", registry.strategy_names())
def test_each_strategy_defers_and_frees_through_the_switch(name):
    """unmap_vma reaches the strategy through gc_defer_swap_entry and gc_try_lazy_free, GC passes
    through gc_drain free what it deferred; the audit is clean (assert_locked on)."""
    family = registry.get_strategy(name).FAMILY
    a = device(name)
    try:
        z, mm, ctx = state.zram_view(a), state.mm_view(a), state.ctx_view(a, 0)
        unmap_vma(z, mm, ctx, 0, PAGES)
        lazy = int(ctx.stat[W_LAZY])
        assert ctx.stat[W_FALLBACK] == 0
        if family == "none":
            assert lazy == 0 and gc_backlog(z) == 0
        else:
            assert lazy > 0 and gc_backlog(z) > 0, (name, lazy)
        if family in ("slot queue", "pre-zram"):
            assert z.stats[ST_GC_SLOTS] == lazy          # counted in zram's gc_slots
        gc = state.ctx_view(a, 1)
        z.gc_ctl[GC_FLUSH] = 1      # the unmap is done: a per-page strategy gives up its last page
        passes = 0
        while gc_backlog(z) > 0 and passes < 100:
            gc_drain(z, mm, gc)
            passes += 1
        assert gc_backlog(z) == 0, f"{name}: the GC never emptied its queue"
        report = audit(a, expect_empty=True)
        assert report["ok"], report["problems"]
    finally:
        a.close()
