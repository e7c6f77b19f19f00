"""Size-class table (emul.kernel.zs_classes) against the numbers mm/zsmalloc.c gives."""
from __future__ import annotations

import numpy as np
import pytest

from emul.kernel.zs_classes import (ZS_HANDLE_SIZE, ZS_MIN_ALLOC_SIZE, SizeClassTable,
    build_size_classes, calculate_zspage_chain_size, class_index_for, class_indices_for,
    get_size_class_index, nr_size_classes)

CONFIGS = [(4096, c) for c in range(4, 17)] + [(16384, c) for c in (4, 8, 16)]


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda p: f"{p[0]}-chain{p[1]}")
def table(request) -> SizeClassTable:
    return build_size_classes(*request.param)


@pytest.mark.parametrize("chain,expected", [(4, 69), (8, 119), (16, 192)])
def test_distinct_counts_4k(chain: int, expected: int) -> None:
    t = build_size_classes(4096, chain)
    assert t.nr_classes == 255
    assert t.size_class_delta == 16
    assert t.nr_distinct == expected
    assert len(t.canonical) == expected


@pytest.mark.parametrize("chain,expected", [(4, 3257), (8, 3625)])
def test_huge_class_size_documented(chain: int, expected: int) -> None:
    assert build_size_classes(4096, chain).huge_class_size == expected


def test_defaults_are_4k_chain8() -> None:
    t = build_size_classes()
    assert (t.page_size, t.chain_size, t.nr_distinct, t.huge_class_size) == (4096, 8, 119, 3625)


def test_aliases_point_to_same_geometry_and_larger_size(table: SizeClassTable) -> None:
    t = table
    raw = np.arange(t.nr_classes)
    raw_size = np.minimum(ZS_MIN_ALLOC_SIZE + raw * t.size_class_delta, t.page_size)
    canon = t.class_of_index
    # a canonical class is its own alias; aliases point upwards to a canonical class
    assert np.all(canon >= raw)
    assert np.all(canon[canon] == canon)
    assert np.all(t.size >= raw_size)
    assert np.all(t.size == t.size[canon])
    assert np.all(t.size[canon] == raw_size[canon])
    assert np.all(t.pages_per_zspage[raw] == t.pages_per_zspage[canon])
    assert np.all(t.objs_per_zspage[raw] == t.objs_per_zspage[canon])
    # the raw class would have had the same geometry had it been created itself
    for i in range(t.nr_classes):
        pages = calculate_zspage_chain_size(int(raw_size[i]), t.page_size, t.chain_size)
        assert pages == t.pages_per_zspage[canon[i]]
        assert pages * t.page_size // int(raw_size[i]) == t.objs_per_zspage[canon[i]]
    # merged runs are contiguous: every alias of c lies between c's lower neighbour and c
    c_list = t.canonical
    assert c_list[-1] == t.nr_classes - 1
    for lo, hi in zip(np.concatenate(([-1], c_list[:-1])), c_list):
        assert np.all(canon[lo + 1:hi + 1] == hi)
    # adjacent distinct classes never share a geometry (otherwise they would have merged)
    geo = list(zip(t.pages_per_zspage[c_list], t.objs_per_zspage[c_list]))
    assert all(a != b for a, b in zip(geo, geo[1:]))


def test_geometry_fits(table: SizeClassTable) -> None:
    t = table
    c = t.canonical
    assert np.all(t.objs_per_zspage[c] >= 1)
    assert np.all((t.pages_per_zspage[c] >= 1) & (t.pages_per_zspage[c] <= t.chain_size))
    used = t.objs_per_zspage[c].astype(np.int64) * t.size[c]
    cap = t.pages_per_zspage[c].astype(np.int64) * t.page_size
    assert np.all(used <= cap)
    assert np.all(cap - used < t.size[c])            # no room left for one more object
    assert np.all(t.size % 8 == 0)                   # ZS_ALIGN
    assert t.max_objs_per_zspage == int(t.objs_per_zspage.max())
    for arr in (t.size, t.class_of_index, t.pages_per_zspage, t.objs_per_zspage):
        assert arr.dtype == np.int32 and arr.shape == (t.nr_classes,)


def test_sizes_monotonic(table: SizeClassTable) -> None:
    assert np.all(np.diff(table.size) >= 0)
    assert table.size[0] == ZS_MIN_ALLOC_SIZE or table.class_of_index[0] != 0
    assert table.size[-1] == table.page_size


def test_full_page_is_huge(table: SizeClassTable) -> None:
    t = table
    c = class_index_for(t, t.page_size)
    assert c == t.nr_classes - 1
    assert t.is_huge(c)
    assert t.pages_per_zspage[c] == 1 and t.objs_per_zspage[c] == 1
    assert t.size[c] == t.page_size


def test_huge_threshold_matches_lookup(table: SizeClassTable) -> None:
    """zram stores comp_len >= huge_class_size as huge: exactly the lengths zs_malloc puts there."""
    t = table
    lens = np.arange(1, t.page_size + 1)
    classes = class_indices_for(t, lens)
    huge = (t.pages_per_zspage[classes] == 1) & (t.objs_per_zspage[classes] == 1)
    assert np.array_equal(huge, lens >= t.huge_class_size)
    # the formula: (first non-huge class scanning down) - (ZS_HANDLE_SIZE - 1)
    below = class_index_for(t, t.huge_class_size - 1)
    assert t.size[below] - (ZS_HANDLE_SIZE - 1) == t.huge_class_size
    assert t.pages_per_zspage[below] != 1 and t.objs_per_zspage[below] != 1


def test_lookup_scalar_matches_vector_and_fits(table: SizeClassTable) -> None:
    t = table
    lens = np.arange(1, t.page_size + 1)
    vec = class_indices_for(t, lens)
    assert vec.dtype == np.int32
    step = 1 if t.page_size == 4096 else 7
    for n in range(1, t.page_size + 1, step):
        c = class_index_for(t, n)
        assert c == vec[n - 1]
        assert t.class_of_index[c] == c
        # the object (with its handle, except in huge classes) fits the class
        need = n if t.is_huge(c) else n + ZS_HANDLE_SIZE
        assert t.size[c] >= need
    assert np.all(np.diff(vec) >= 0)
    assert class_indices_for(t, lens.reshape(-1, 2)).shape == (t.page_size // 2, 2)
    assert class_indices_for(t, np.array([], dtype=np.int64)).shape == (0,)


def test_get_size_class_index_edges() -> None:
    t = build_size_classes(4096, 8)
    assert get_size_class_index(t, 1) == 0
    assert get_size_class_index(t, 32) == 0
    assert get_size_class_index(t, 33) == 1
    assert get_size_class_index(t, 48) == 1
    assert get_size_class_index(t, 49) == 2
    assert get_size_class_index(t, 4096) == 254
    assert get_size_class_index(t, 4104) == 254      # 4096 + handle is capped
    assert class_index_for(t, 1) == t.class_of_index[0]


def test_chain_size_selection() -> None:
    assert calculate_zspage_chain_size(2048, 4096, 8) == 1      # power of two
    assert calculate_zspage_chain_size(32, 4096, 16) == 1
    assert calculate_zspage_chain_size(48, 4096, 8) == 3        # 12288 % 48 == 0
    assert calculate_zspage_chain_size(3632, 4096, 8) == 8
    assert calculate_zspage_chain_size(3264, 4096, 4) == 4
    assert calculate_zspage_chain_size(4096 - 16, 4096, 8) == 1  # waste 16 at 1 page is never beaten


def test_16k_pages() -> None:
    delta = 16384 >> 8
    expected_raw = -(-(16384 - ZS_MIN_ALLOC_SIZE) // delta) + 1   # DIV_ROUND_UP(...) + 1
    assert (delta, expected_raw) == (64, 257)
    assert nr_size_classes(16384) == expected_raw
    assert nr_size_classes(4096) == 255
    t = build_size_classes(16384, 8)
    assert t.size_class_delta == 64
    assert t.nr_classes == 257
    assert t.size[0] == 32 and t.size[1] == 96 and t.size[-1] == 16384
    assert t.size[-2] == 16384 or t.class_of_index[-2] == t.nr_classes - 1
    # 32 + 64 * 255 = 16352 < 16384, so the last raw index is capped at PAGE_SIZE
    assert ZS_MIN_ALLOC_SIZE + 255 * delta == 16352
    assert t.is_huge(class_index_for(t, 16384))
    # huge_class_size follows the same formula as with 4K pages
    top = [i for i in range(t.nr_classes - 1, -1, -1)
           if t.pages_per_zspage[i] != 1 and t.objs_per_zspage[i] != 1][0]
    raw_top = min(ZS_MIN_ALLOC_SIZE + top * delta, 16384)
    assert t.huge_class_size == raw_top - (ZS_HANDLE_SIZE - 1)


@pytest.mark.parametrize("kwargs", [
    {"page_size": 8192}, {"page_size": 65536}, {"page_size": 0}, {"page_size": "4096"},
    {"chain_size": 3}, {"chain_size": 17}, {"chain_size": 0}, {"chain_size": 8.0},
    {"chain_size": True},
])
def test_bad_args(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        build_size_classes(**kwargs)


@pytest.mark.parametrize("n", [0, -1, 4097])
def test_bad_lengths(n: int) -> None:
    t = build_size_classes()
    with pytest.raises(ValueError):
        class_index_for(t, n)
    with pytest.raises(ValueError):
        class_indices_for(t, np.array([100, n]))
    with pytest.raises(ValueError):
        class_indices_for(t, np.array([100.0]))


def test_table_is_frozen() -> None:
    t = build_size_classes()
    with pytest.raises(Exception):
        t.nr_classes = 1  # type: ignore[misc]
    with pytest.raises(ValueError):
        t.size[0] = 1
