"""Bad input, fuzzed: any scenario mapping, any vary block, any file bytes -> a Scenario or the
project's one clear error (InputError), never a traceback, never a hang."""
from __future__ import annotations

import copy
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import tiny_scenario
from emul.errors import InputError
from emul.config.profiles import builtin_names
from emul.config.scenario import Scenario, scenario_from_dict
from emul.config.vary import expand_vary, load_matrix
from emul.strategies import strategy_names

CPUS = {0, 1}
PATHS = [("name",), ("experiment",), ("page_size",), ("repeats",), ("seed",), ("profile",),
         ("zram", "disksize"), ("zram", "alloc_from"), ("processes",), ("processes", 0, "vma"),
         ("processes", 0, "swapped"), ("processes", 0, "role"), ("data", "compression_ratio"),
         ("data", "spread"), ("data", "patterns"), ("workers", "killer", "cpu"),
         ("workers", "killer", "count"), ("workers", "gc", "cpu"), ("workers", "gc", "count"),
         ("workers", "gc", "idle_poll"), ("workers", "reclaim"), ("variants",),
         ("variants", 0, "cap"), ("variants", 1, "strategy"), ("variants", 1, "zsmalloc"),
         ("lockstat",), ("debug",), ("vary",), ("bogus",), ("workers", "bogus")]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["4K", "16K", "64M", "1T", "2T", "all", "big[9]", "little", "cpu1", "cpu99",
                     "200us", "1e9", "-1", "sync", "bitmap", "v6", "tail", "mixed", "0x10"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)


def _set(doc, path, value) -> None:
    for key in path[:-1]:
        try:
            doc = doc[key]
        except (KeyError, IndexError, TypeError):
            return
    try:
        doc[path[-1]] = value
    except (IndexError, TypeError):
        pass


def _load(doc) -> None:
    for _, group in expand_vary(doc, "fuzz.yaml"):
        sc = scenario_from_dict(group, where="fuzz.yaml", cpus=CPUS,
                                strategies=strategy_names(), profiles=builtin_names())
        assert isinstance(sc, Scenario)


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), values), min_size=1, max_size=4))
@example([(("vary",), {"\n": None})])      # found once: a vary key holding a newline
def test_mutated_scenarios_give_a_scenario_or_a_clear_error(mutations) -> None:
    doc = copy.deepcopy(tiny_scenario())
    for path, value in mutations:
        _set(doc, path, value)
    try:
        _load(doc)
    except InputError as err:
        assert str(err).startswith("fuzz.yaml") and "\n" not in str(err)


@settings(max_examples=1000, deadline=None)
@given(values)
def test_any_document_gives_a_scenario_or_a_clear_error(doc) -> None:
    try:
        _load(doc)
    except InputError as err:
        assert str(err).startswith("fuzz.yaml")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_any_file_bytes_give_a_scenario_or_a_clear_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        load_matrix(path, cpus=CPUS, strategies=strategy_names(), profiles=builtin_names())
    except InputError as err:
        assert str(err).startswith(str(path))
