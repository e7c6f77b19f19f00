"""Debug switches (the ZP_DEBUG param word, scenario ``debug:``), 0 in real runs.

The first three break the model on purpose, so a test can see the audit fail; assert_locked is
emul's lockdep_assert_held: every ``__`` function (the caller holds the lock) checks that the
lock it needs is held and counts a fault the audit reports if not.
"""
from __future__ import annotations

DEBUG_REUSE_KEEPS_QUEUED = 1   # a write into a queued slot leaves it queued: GC frees new data
DEBUG_REUSE_LEAKS_OLD = 2      # ... overwrites the old handle without freeing it: a leak
DEBUG_REUSE_FREES_TWICE = 4    # ... frees the old object twice: a double free
DEBUG_ASSERT_LOCKED = 8        # `__` functions check their caller holds the lock
# debug keys that carry a value rather than a switch
DEBUG_VALUES = {
    "step_work_ns": "extra physical work (a busy-wait) in every kernel step, in ns: a stand-in "
                    "for a slower host, to show that targets stay targets",
    "gc_hold_ns": "extra busy-wait while a GC worker holds a size_class lock in zs_free, in "
                  "ns: the killer's waits on that lock are then the GC's (who waited on whom)",
}
DEBUG_SWITCHES = {"reuse_keeps_queued": DEBUG_REUSE_KEEPS_QUEUED,
                  "reuse_leaks_old": DEBUG_REUSE_LEAKS_OLD,
                  "reuse_frees_twice": DEBUG_REUSE_FREES_TWICE,
                  "assert_locked": DEBUG_ASSERT_LOCKED}
