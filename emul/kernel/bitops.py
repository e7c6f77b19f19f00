"""Bit operations on live shared words (lib/find_bit.c)."""
from __future__ import annotations

from numba import njit

from emul.kernel.atomics import atomic_load, count_trailing_zeros


@njit(cache=True, _nrt=False)
def find_next_bit(words, nbits: int, start: int) -> int:
    """The first set bit at or after start (nbits if none), reading the live words."""
    if start >= nbits:
        return nbits
    w = start >> 6
    word = atomic_load(words, w) & (-1 << (start & 63))
    nwords = (nbits + 63) >> 6
    while word == 0:
        w += 1
        if w >= nwords:
            return nbits
        word = atomic_load(words, w)
    bit = (w << 6) + count_trailing_zeros(word)
    return bit if bit < nbits else nbits
