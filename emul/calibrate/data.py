"""What the measured pages hold: the default data profile of the seed scenarios.

Compression ratio 2, spread 0.25: each page starts with L random bytes and ends in zeros, L drawn
uniformly from ``2048 x (1 +/- 0.25)`` bytes, so lz4 (or lzo) stores about L + 20 bytes: a
compression ratio near 2 and the seed's spread. The ratio zram actually achieved is read from
``mm_stat`` and given to the emulated runs. The swapin-same pages are one byte value throughout
(zram stores them as ZRAM_SAME: no zsmalloc object, no decompression).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

DATA_COMPRESSION_RATIO = 2.0     # the seed scenarios' data profile
DATA_SPREAD = 0.25
SAME_BYTE = 0x5A                 # swapin-same pages: every byte this (not zero: no fast path)


def data_chunks(seed: int, npages: int, page_size: int,
                step: int = 2048) -> Iterator[tuple[int, int, np.ndarray]]:
    """(first page, last page + 1, block) of the data pages: page i holds L_i random bytes then
    zeros, L_i uniform in page / ratio x (1 +/- spread). Blocks are hi = the longest L wide."""
    import numpy as np
    rng = np.random.default_rng(seed)
    mean = page_size / DATA_COMPRESSION_RATIO
    lo, hi = int(mean * (1 - DATA_SPREAD)), int(mean * (1 + DATA_SPREAD))
    lens = rng.integers(lo, hi + 1, npages)
    cols = np.arange(hi)
    for a in range(0, npages, step):
        b = min(npages, a + step)
        block = rng.integers(0, 256, (b - a, hi), dtype=np.uint8)
        block[cols[None, :] >= lens[a:b, None]] = 0
        yield a, b, block


def fill_data(arr: np.ndarray, seed: int, page_size: int) -> None:
    """Write the data pages (the mapping starts zeroed: only the random heads are written)."""
    for a, b, block in data_chunks(seed, arr.shape[0], page_size):
        arr[a:b, :block.shape[1]] = block


def fill_same(arr: np.ndarray) -> None:
    """Every byte of every page SAME_BYTE."""
    for a in range(0, arr.shape[0], 4096):
        arr[a:a + 4096] = SAME_BYTE


def check_data(arr: np.ndarray, seed: int, page_size: int) -> bool:
    """The first block of pages read back equals what was written."""
    a, b, block = next(data_chunks(seed, arr.shape[0], page_size))
    w = block.shape[1]
    return bool((arr[a:b, :w] == block).all() and not arr[a:b, w:].any())


def check_same(arr: np.ndarray) -> bool:
    """The first pages read back hold SAME_BYTE throughout."""
    return bool((arr[:2048] == SAME_BYTE).all())
