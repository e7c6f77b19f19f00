"""The names of the modelled costs: the kernel work emul does not physically do, and pays for.

A profile (emul/config/profiles) gives each name a figure in nanoseconds; a name's position in
COST_NAMES is its index into a worker's ``ctx.costs`` row (kernel/context.py reads the indexes
from here). A leaf: it imports nothing from emul.
"""
from __future__ import annotations

COST_NAMES = (
    "zap_pte",            # zap_pte_range's work per present/swap PTE: walk, clear, rss, TLB batch
    "free_folio",         # freeing a resident anonymous folio to the page allocator
    "swap_entry_free",    # swap_entry_free minus the notify: swap_map, cluster, counters
    "slot_free",          # slot_free's flag and stat updates beyond what emul does physically
    "zs_free",            # zs_free per object: obj_free, handle cache free
    "free_zspage_page",   # per page of an emptied zspage returned to the buddy allocator
    "zs_malloc",          # zs_malloc per object: handle cache alloc, obj_malloc bookkeeping
    "alloc_zspage_page",  # per page allocated for a new zspage
    "compress_kib",       # compressing, per KiB of input page
    "decompress_kib",     # decompressing, per KiB of compressed input
    "fault",              # do_swap_page's own work per fault (beyond read and free)
    "wake_up",            # queue_work waking an idle kworker on another CPU (ttwu + IPI send)
    "slot_free_cold",     # slot_free in the fault path: its metadata is cache-cold there
    "pool_read_lock",     # zs_free's read_lock + read_unlock of pool->lock, uncontended (two
                          # atomic RMWs and their barriers); class_in_handle skips it
)
COST_INDEX = {name: i for i, name in enumerate(COST_NAMES)}
# the costs a step pays per unit of its size rather than once: a step's target is the figure
# times the pages (or KiB) it handles
PER_UNIT = {"free_zspage_page": "page", "alloc_zspage_page": "page", "compress_kib": "KiB",
            "decompress_kib": "KiB"}
NR_COSTS = 16             # words of a ctx.costs row: room for a few more names
assert len(COST_NAMES) <= NR_COSTS
