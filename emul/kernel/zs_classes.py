"""zsmalloc size classes, computed the way mm/zsmalloc.c builds them in zs_create_pool.

Class geometry (mm/zsmalloc.c):

* A raw class index ``i`` stands for objects of ``ZS_MIN_ALLOC_SIZE + i * ZS_SIZE_CLASS_DELTA``
  bytes, never more than ``ZS_MAX_ALLOC_SIZE`` (one page). The step is ``PAGE_SIZE >> 8``
  (16 bytes with 4K pages, 64 with 16K pages), the smallest size is 32 on 64-bit, and there are
  ``DIV_ROUND_UP(PAGE_SIZE - 32, delta) + 1`` raw indexes (255 with 4K pages, 257 with 16K:
  16352 / 64 rounds up to 256; that is why struct zspage keeps its class in CLASS_BITS + 1 bits).
* Each class packs its objects into a *zspage*, a chain of 1..``ZS_MAX_PAGES_PER_ZSPAGE``
  pages (``CONFIG_ZSMALLOC_CHAIN_SIZE``, 4..16, default 8). ``calculate_zspage_chain_size``
  picks the chain length: a power-of-two size always gets one page; any other size tries every
  length from 1 up to the limit and keeps the first one whose tail waste
  ``(pages * PAGE_SIZE) % size`` is strictly smaller than all shorter ones. The class then holds
  ``pages * PAGE_SIZE // size`` objects per zspage.

Merging: the pool creates classes from the largest index down. When a class would have the same
pages_per_zspage *and* the same objs_per_zspage as the last class actually created (the next
larger one), it is not created: its slot in ``pool->size_class[]`` points at that larger class,
whose objects are big enough and which packs the zspage identically. Several raw indexes thus
share one class object; the class keeps the index it was created with, so ``class->index != i``
identifies an alias. 4K pages give 69 distinct classes with chain 4, 119 with chain 8 and 192
with chain 16.

Huge classes: a class of one page holding one object is "huge" (the object's handle is then
kept outside the object, so a whole PAGE_SIZE object fits). While scanning down, the pool records
the size of the first class that has more than one page per zspage and more than one object, and
subtracts ``ZS_HANDLE_SIZE - 1`` from it, because zs_malloc adds the handle size to every request
before looking the class up. The result is ``zs_huge_class_size()``, which zram compares with the
compressed length (``comp_len >= huge_class_size`` is stored as a huge object): 3625 with 4K pages
and chain 8, 3257 with chain 4.

Lookup (zs_malloc): ``size + ZS_HANDLE_SIZE`` goes through ``get_size_class_index`` (0 for up to
32 bytes, else ``DIV_ROUND_UP(size - 32, delta)``, capped at the last raw index), and the raw
index resolves through the alias table to its canonical class.

The table is plain numpy so that it can be copied into shared memory for the workers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ZS_ALIGN = 8
ZS_HANDLE_SIZE = 8
ZS_MIN_ALLOC_SIZE = 32
CLASS_BITS = 8
DEFAULT_CHAIN_SIZE = 8
MIN_CHAIN_SIZE = 4
MAX_CHAIN_SIZE = 16
SUPPORTED_PAGE_SIZES = (4096, 16384)


@dataclass(frozen=True)
class SizeClassTable:
    """The pool's size-class layout.

    Arrays of length ``nr_classes`` indexed by the raw class index ``i``:

    * ``size[i]``: object size of the class ``i`` resolves to (for an alias, the larger class's).
    * ``class_of_index[i]``: canonical class index ``i`` aliases (itself when not merged).
    * ``pages_per_zspage[c]``, ``objs_per_zspage[c]``: geometry of canonical class ``c``; also
      filled at alias indexes with the values of the class they resolve to, so indexing with a
      raw index gives the same answer as indexing with its canonical class.
    """

    size: np.ndarray               # int32[nr_classes]
    class_of_index: np.ndarray     # int32[nr_classes]
    pages_per_zspage: np.ndarray   # int32[nr_classes]
    objs_per_zspage: np.ndarray    # int32[nr_classes]
    page_size: int
    chain_size: int
    nr_classes: int
    nr_distinct: int
    huge_class_size: int
    max_objs_per_zspage: int
    size_class_delta: int

    @property
    def canonical(self) -> np.ndarray:
        """The canonical class indexes, in increasing order."""
        return np.flatnonzero(self.class_of_index == np.arange(self.nr_classes)).astype(np.int32)

    def is_huge(self, class_idx: int) -> bool:
        """True when the class holds one object in a one-page zspage."""
        return bool(self.pages_per_zspage[class_idx] == 1 and self.objs_per_zspage[class_idx] == 1)


def _div_round_up(n: int, d: int) -> int:
    return -(-n // d)


def _is_power_of_2(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


def size_class_delta(page_size: int) -> int:
    """ZS_SIZE_CLASS_DELTA: PAGE_SIZE >> CLASS_BITS."""
    return page_size >> CLASS_BITS


def nr_size_classes(page_size: int) -> int:
    """ZS_SIZE_CLASSES: DIV_ROUND_UP(ZS_MAX_ALLOC_SIZE - ZS_MIN_ALLOC_SIZE, delta) + 1."""
    return _div_round_up(page_size - ZS_MIN_ALLOC_SIZE, size_class_delta(page_size)) + 1


def calculate_zspage_chain_size(class_size: int, page_size: int = 4096,
                                chain_size: int = DEFAULT_CHAIN_SIZE) -> int:
    """Pages per zspage for objects of ``class_size`` bytes: least tail waste, shortest first."""
    if _is_power_of_2(class_size):
        return 1
    best_pages, min_waste = 1, None
    for pages in range(1, chain_size + 1):
        waste = (pages * page_size) % class_size
        if min_waste is None or waste < min_waste:
            min_waste, best_pages = waste, pages
    return best_pages


def _validate(page_size: int, chain_size: int) -> None:
    if isinstance(page_size, bool) or not isinstance(page_size, (int, np.integer)) \
            or int(page_size) not in SUPPORTED_PAGE_SIZES:
        raise ValueError(f"page_size must be one of {SUPPORTED_PAGE_SIZES}, got {page_size!r}")
    if isinstance(chain_size, bool) or not isinstance(chain_size, (int, np.integer)) \
            or not MIN_CHAIN_SIZE <= int(chain_size) <= MAX_CHAIN_SIZE:
        raise ValueError(f"chain_size must be an integer in {MIN_CHAIN_SIZE}..{MAX_CHAIN_SIZE}, "
                         f"got {chain_size!r}")


def build_size_classes(page_size: int = 4096, chain_size: int = DEFAULT_CHAIN_SIZE) -> SizeClassTable:
    """Build the class table as zs_create_pool does, largest index first, merging lookalikes."""
    _validate(page_size, chain_size)
    page_size, chain_size = int(page_size), int(chain_size)
    n = nr_size_classes(page_size)
    size, class_of_index, pages, objs = (np.zeros(n, dtype=np.int32) for _ in range(4))
    huge_class_size, nr_distinct = _create_classes(page_size, chain_size, size, class_of_index,
                                                   pages, objs)
    for arr in (size, class_of_index, pages, objs):
        arr.setflags(write=False)
    return SizeClassTable(
        size=size,
        class_of_index=class_of_index,
        pages_per_zspage=pages,
        objs_per_zspage=objs,
        page_size=page_size,
        chain_size=chain_size,
        nr_classes=n,
        nr_distinct=nr_distinct,
        huge_class_size=huge_class_size,
        max_objs_per_zspage=int(objs.max()),
        size_class_delta=size_class_delta(page_size),
    )


def _create_classes(page_size: int, chain_size: int, size: np.ndarray,
                    class_of_index: np.ndarray, pages: np.ndarray,
                    objs: np.ndarray) -> tuple[int, int]:
    """zs_create_pool's loop, largest index first: fill the per-index arrays, merging a class
    into the next larger one when it would pack its zspage identically. Returns
    (huge_class_size, distinct classes)."""
    delta = size_class_delta(page_size)
    huge_class_size = 0
    prev = -1                  # index of the last class actually created
    nr_distinct = 0
    for i in range(size.size - 1, -1, -1):
        sz = min(ZS_MIN_ALLOC_SIZE + i * delta, page_size)
        ppz = calculate_zspage_chain_size(sz, page_size, chain_size)
        opz = ppz * page_size // sz

        # First class (scanning down) that is not one page / one object, minus the part of the
        # handle that zs_malloc adds on top of the caller's length.
        if ppz != 1 and opz != 1 and not huge_class_size:
            huge_class_size = sz - (ZS_HANDLE_SIZE - 1)

        if prev >= 0 and pages[prev] == ppz and objs[prev] == opz:   # can_merge
            class_of_index[i] = prev
            size[i], pages[i], objs[i] = size[prev], ppz, opz
            continue

        class_of_index[i] = i
        size[i], pages[i], objs[i] = sz, ppz, opz
        prev = i
        nr_distinct += 1
    return huge_class_size, nr_distinct


def get_size_class_index(table: SizeClassTable, size: int) -> int:
    """Raw class index for an allocation of ``size`` bytes (handle already included)."""
    idx = 0
    if size > ZS_MIN_ALLOC_SIZE:
        idx = _div_round_up(size - ZS_MIN_ALLOC_SIZE, table.size_class_delta)
    return min(table.nr_classes - 1, idx)


def class_index_for(table: SizeClassTable, comp_len: int) -> int:
    """Canonical class for a compressed length, as zs_malloc(comp_len) picks it.

    zs_malloc refuses 0 and anything over ZS_MAX_ALLOC_SIZE (PAGE_SIZE); so does this.
    """
    comp_len = int(comp_len)
    if not 1 <= comp_len <= table.page_size:
        raise ValueError(f"comp_len must be in 1..{table.page_size}, got {comp_len}")
    return int(table.class_of_index[get_size_class_index(table, comp_len + ZS_HANDLE_SIZE)])


def class_indices_for(table: SizeClassTable, comp_lens: np.ndarray) -> np.ndarray:
    """Vectorised :func:`class_index_for`: int32 canonical classes, same shape as ``comp_lens``."""
    lens = np.asarray(comp_lens)
    if lens.size and not np.issubdtype(lens.dtype, np.integer):
        raise ValueError(f"comp_lens must be integers, got dtype {lens.dtype}")
    lens = lens.astype(np.int64, copy=False)
    if lens.size and (lens.min() < 1 or lens.max() > table.page_size):
        raise ValueError(f"comp_lens must be in 1..{table.page_size}")
    sizes = lens + ZS_HANDLE_SIZE
    raw = np.where(sizes > ZS_MIN_ALLOC_SIZE,
                   -(-(sizes - ZS_MIN_ALLOC_SIZE) // table.size_class_delta), 0)
    raw = np.minimum(raw, table.nr_classes - 1)
    return table.class_of_index[raw].astype(np.int32)


__all__ = [
    "ZS_ALIGN", "ZS_HANDLE_SIZE", "ZS_MIN_ALLOC_SIZE", "CLASS_BITS", "SizeClassTable",
    "build_size_classes", "calculate_zspage_chain_size", "class_index_for", "class_indices_for",
    "get_size_class_index", "nr_size_classes", "size_class_delta",
]
