"""The mm side's shared arrays, as one ``Mm`` of views into the arena (include/linux/mm_types.h).

  pte[p]          page p of the emulated processes: 0 none, > 0 resident (content key p + 1),
                  < 0 a swap entry for slot -pte - 1
  swap_map[s]     use count of swap slot s (0: free for get_swap_slot, -1: being freed)
  swap_lock[..]   the swap device lock (si->lock) and the allocator's next-slot cursor
  swap_recent[]   slots freed most recently, newest on top: the allocator takes these first,
                  as the kernel's allocator refills from the clusters that frees just opened

Every process owns a contiguous range of pte; page p's synthetic content is keyed by p, so a
swap-in can check that it got back what the swap-out wrote. A module of its own, importing
nothing, so the strategies' drains can name the type without importing the free path.
"""
from __future__ import annotations

from collections import namedtuple

Mm = namedtuple("Mm", ["pte", "swap_map", "swap_lock", "swap_recent"])

# swap_lock words
SWAP_CURSOR = 8
SWAP_RECENT_TOP = 9    # entries on the swap_recent stack
