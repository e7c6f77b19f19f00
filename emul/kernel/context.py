"""The per-worker context every compiled path receives: private counters, lock stats, costs.

``Ctx`` plays the part of ``current`` plus this CPU's data: nothing in it is shared with another
worker, so bumping it costs no cache-line traffic. Each worker's ``stat`` row is its own part of
one shared array (will-it-scale's layout): counters first, then an event area (GC passes for
trace.json), read by the controller after the phase (a few counters also while it runs).
"""
from __future__ import annotations

from collections import namedtuple

from numba import njit

from emul.config.costs import COST_INDEX, NR_COSTS  # noqa: F401 (NR_COSTS: read from here)
from emul.kernel.atomics import read_clock, sched_getcpu
from emul.kernel.clock import delay_ticks

Ctx = namedtuple("Ctx", ["stat", "lockstat", "costs"])

# stat row fields
W_CPU = 0             # CPU the worker last saw itself on (sched_getcpu)
W_LOCKSTAT = 1        # 1: collect acquisition/hold statistics
W_CPUMASK = 2         # bit n set: seen running on CPU n (CPUs 0..62)
W_T_START = 3         # read_clock() when the measured work began
W_T_END = 4           # ... and when it ended
W_PTES = 5            # page-table entries zapped
W_RESIDENT_FREED = 6  # resident pages freed (modelled folio free)
W_SWAP_FREED = 7      # swap entries freed (each ends in zram_slot_free_notify)
W_LAZY = 8            # slots handed to the GC strategy
W_IN_PLACE = 9        # slots freed synchronously by slot_free in the notify path
W_FALLBACK = 10       # strategy refused (over its cap): freed in place instead
W_MISS_FREE = 11      # notify found the slot locked (zram's miss_free)
W_GC_FREED = 12       # slots freed by the GC drain
W_GC_PASSES = 13      # drain passes (work item runs)
W_GC_SKIPPED = 14     # queued slots the drain found locked and left for the next pass
W_GC_SLEEPS = 15      # times the GC worker went to sleep on its futex
W_PEAK_BACKLOG = 16   # the largest gc backlog this worker saw after its own enqueue
W_GC_IDLE_AT = 17     # read_clock() when the GC last finished a pass with nothing queued
W_HEARTBEAT = 18      # bumped once per batch: progress the controller can watch
W_STORED = 19         # pages written into zram (swap-out)
W_WAKEUPS = 20        # futex wakes issued by queue_work
W_SCAN_WORDS = 21     # gc_map words the drain scanned
W_GC_BUSY = 22        # ticks the GC spent draining
W_REUSED_QUEUED = 23  # writes that found their slot still queued for lazy freeing
W_RECLAIMED = 24      # pages the reclaim worker swapped out
W_REFAULTED = 25      # pages the reclaim worker faulted back in
W_WAKE_POLLED = 26    # queue_work found the GC polling: the modelled wake-up, no futex call
W_COLD = 27           # 1 while in the fault path: slot_free there pays COST_SLOT_FREE_COLD
W_BATCH_SAVED = 29    # class-lock acquisitions a batched zs_free saved (percpu-zsfree)
W_PEAK_BYTES = 30     # the largest gc_bytes (compressed bytes queued) seen after an enqueue
W_INDEX = 31          # the worker's index (its row), so a chaos fault can pick one worker
W_GC_POLL_NS = 28     # the GC worker's idle poll before it sleeps, in ticks (0: sleep at once)
W_FAULTED = 32        # pages faulted back in so far (live, for the timeline)
W_NEVENTS = 33        # events recorded in this row's event area (more are dropped, counted)
W_EVENTS_DROPPED = 34
W_STEP_WORK = 35      # debug step_work_ns: extra physical work per step, in ticks (0: none)
W_PROBE = 36          # 1 while the machinery probe times every step (emul/harness/machinery.py)
W_PROBE_TOP = 37      # the probe's current region (a step, ROOT or DESIGN)
W_PROBE_LAST = 38     # read_clock() at the probe's last region change
W_PROBE_DEPTH = 39
W_PROBE_STACK = 40    # .. 56: the regions the current one interrupted
W_DESIGN_CALLS = 57   # calls of the strategy's own work (its enqueue, its drain passes)
W_BALANCE = 58        # ticks the path's steps ran over their targets, not yet made up (< 0: under)
W_HOLD_WORK = 59      # debug gc_hold_ns: extra busy-wait while a GC worker holds a class lock
PROBE_MAX_DEPTH = 16
# per step (a cost name's index): events, ticks busy-waited, ticks of machinery over the target
W_STEP_EVENTS = 64
W_STEP_WAITED = 80
W_STEP_OVERRUN = 96
# the probe's exclusive ticks, calls and child calls per region: the steps, then ROOT (work in
# no step: loops, the gate) and DESIGN (a strategy's own work: its enqueue, its drain)
W_PROBE_TICKS = 112
W_PROBE_CALLS = 144
W_PROBE_KIDS = 176
NR_REGIONS = 32
W_EVENTS = 208        # the event area: EVENT_CAP x (start tick, end tick, value)
EVENT_WORDS = 3
EVENT_CAP = 1024      # per worker and repeat: GC passes for trace.json
STAT_WORDS = W_EVENTS + EVENT_WORDS * EVENT_CAP

# the probe's regions beyond the steps (a step's region is its cost's index)
REGION_ROOT = NR_COSTS          # in no step: a path's loop, batching, the gate
REGION_DESIGN = NR_COSTS + 1    # a strategy's own work: its enqueue, its drain's loop
REGION_EMPTY = NR_COSTS + 2     # the probe's own cost, measured on an empty region
# a ctx.costs row: the step's target on the emulated hardware, then emul's own machinery for
# it on this host (uncontended, measured by the probe); a cost pays only target - machinery
COSTS_WORDS = 2 * NR_COSTS + 1
MACHINERY = NR_COSTS
DELAY_OVERHEAD = 2 * NR_COSTS   # ticks a wait between steps costs beyond its length (probe.py)

# modelled costs: indexes into ctx.costs (ticks of read_clock), one per name a profile gives a
# figure (emul/config/costs.py says what each stands for)
COST_ZAP_PTE = COST_INDEX["zap_pte"]
COST_FREE_FOLIO = COST_INDEX["free_folio"]
COST_SWAP_ENTRY_FREE = COST_INDEX["swap_entry_free"]
COST_SLOT_FREE = COST_INDEX["slot_free"]
COST_ZS_FREE = COST_INDEX["zs_free"]
COST_FREE_ZSPAGE_PAGE = COST_INDEX["free_zspage_page"]
COST_ZS_MALLOC = COST_INDEX["zs_malloc"]
COST_ALLOC_ZSPAGE_PAGE = COST_INDEX["alloc_zspage_page"]
COST_COMPRESS_KIB = COST_INDEX["compress_kib"]
COST_DECOMPRESS_KIB = COST_INDEX["decompress_kib"]
COST_FAULT = COST_INDEX["fault"]
COST_WAKE_UP = COST_INDEX["wake_up"]
COST_SLOT_FREE_COLD = COST_INDEX["slot_free_cold"]
COST_POOL_READ_LOCK = COST_INDEX["pool_read_lock"]


@njit(cache=True, _nrt=False, inline="always")
def pay_target(ctx: Ctx, which: int, target: int) -> None:
    """The rest of a step's target once emul's own machinery for it is done: busy-wait
    target - machinery. The path keeps a balance of how far its steps ran over (or under)
    their targets: machinery past a target (an overrun, counted per step) is made up by the
    next steps' waits, and a rest too short to wait for is added to the next wait, so that a
    path whose budget covers emul's machinery as a whole keeps the profile's total even where
    one step's share of it (the probe's attribution) misses that step's target. Contention is
    not in the balance: it is real time and stays on top."""
    rest = target - ctx.costs[MACHINERY + which]
    if rest < 0:
        ctx.stat[W_STEP_OVERRUN + which] -= rest
    pay = rest - ctx.stat[W_BALANCE]
    if pay > ctx.costs[DELAY_OVERHEAD]:
        delay_ticks(pay - ctx.costs[DELAY_OVERHEAD])
        ctx.stat[W_STEP_WAITED + which] += pay      # the wait with what it costs beyond its length
        ctx.stat[W_BALANCE] = 0
    else:
        ctx.stat[W_BALANCE] = -pay
    ctx.stat[W_STEP_EVENTS + which] += 1


@njit(cache=True, _nrt=False, inline="always")
def model_cost(ctx: Ctx, which: int) -> None:
    """Pay a modelled cost: the named kernel step's target on the emulated hardware, less what
    emul physically did for it."""
    pay_target(ctx, which, ctx.costs[which])


@njit(cache=True, _nrt=False, inline="always")
def model_cost_scaled(ctx: Ctx, which: int, nbytes: int) -> None:
    """Pay a per-KiB modelled cost for nbytes."""
    pay_target(ctx, which, (ctx.costs[which] * nbytes) >> 10)


# --- the machinery probe: exclusive time per region ------------------------------------------

@njit(cache=True, _nrt=False)
def probe_enter(ctx: Ctx, region: int) -> None:
    """The probe's side of step_enter: charge the time since the last change to the region
    being left, and make ``region`` current."""
    s = ctx.stat
    t = read_clock()
    top = s[W_PROBE_TOP]
    s[W_PROBE_TICKS + top] += t - s[W_PROBE_LAST]
    s[W_PROBE_KIDS + top] += 1
    depth = s[W_PROBE_DEPTH]
    if depth < PROBE_MAX_DEPTH:
        s[W_PROBE_STACK + depth] = top
    s[W_PROBE_DEPTH] = depth + 1
    s[W_PROBE_TOP] = region
    s[W_PROBE_CALLS + region] += 1
    s[W_PROBE_LAST] = t


@njit(cache=True, _nrt=False)
def probe_exit(ctx: Ctx) -> None:
    s = ctx.stat
    t = read_clock()
    s[W_PROBE_TICKS + s[W_PROBE_TOP]] += t - s[W_PROBE_LAST]
    depth = s[W_PROBE_DEPTH] - 1
    s[W_PROBE_DEPTH] = depth
    s[W_PROBE_TOP] = s[W_PROBE_STACK + depth] if 0 <= depth < PROBE_MAX_DEPTH else REGION_ROOT
    s[W_PROBE_LAST] = t


@njit(cache=True, _nrt=False, inline="always")
def step_enter(ctx: Ctx, region: int) -> None:
    """A kernel step (or a strategy's own work) begins. Outside the probe this costs a load and
    a branch; the debug switch step_work_ns adds physical work to every step here."""
    if region == REGION_DESIGN:       # a constant where inlined: no test left in the code
        ctx.stat[W_DESIGN_CALLS] += 1
    if ctx.stat[W_PROBE] != 0:
        probe_enter(ctx, region)
    if region < REGION_ROOT and ctx.stat[W_STEP_WORK] != 0:
        delay_ticks(ctx.stat[W_STEP_WORK])


@njit(cache=True, _nrt=False, inline="always")
def step_exit(ctx: Ctx) -> None:
    if ctx.stat[W_PROBE] != 0:
        probe_exit(ctx)


@njit(cache=True, _nrt=False)
def probe_start(ctx: Ctx) -> None:
    """Begin timing: every region's ticks, calls and children from zero, at the root."""
    for i in range(NR_REGIONS):
        ctx.stat[W_PROBE_TICKS + i] = 0
        ctx.stat[W_PROBE_CALLS + i] = 0
        ctx.stat[W_PROBE_KIDS + i] = 0
    ctx.stat[W_PROBE_DEPTH] = 0
    ctx.stat[W_PROBE_TOP] = REGION_ROOT
    ctx.stat[W_PROBE] = 1
    ctx.stat[W_PROBE_LAST] = read_clock()


@njit(cache=True, _nrt=False)
def probe_stop(ctx: Ctx) -> None:
    s = ctx.stat
    s[W_PROBE_TICKS + s[W_PROBE_TOP]] += read_clock() - s[W_PROBE_LAST]
    s[W_PROBE] = 0


@njit(cache=True, _nrt=False)
def delay_calibrate(n: int, ticks: int) -> int:
    """Ticks n busy-waits of ``ticks`` take: what a busy-wait costs beyond its length."""
    t0 = read_clock()
    for _ in range(n):
        delay_ticks(ticks)
    return read_clock() - t0


@njit(cache=True, _nrt=False)
def probe_calibrate(ctx: Ctx, n: int) -> None:
    """n empty regions, so the probe knows its own cost: the ticks an enter/exit pair leaves
    inside a region and in the one it interrupts."""
    for _ in range(n):
        probe_enter(ctx, REGION_EMPTY)
        probe_exit(ctx)


@njit(cache=True, _nrt=False, inline="always")
def lockstat_on(ctx: Ctx) -> bool:
    return ctx.stat[W_LOCKSTAT] != 0


@njit(cache=True, _nrt=False, inline="always")
def now() -> int:
    return read_clock()


@njit(cache=True, _nrt=False)
def note_event(ctx: Ctx, t0: int, t1: int, value: int) -> None:
    """Record a span (ticks) in this worker's event area, for trace.json; full: count a drop."""
    n = ctx.stat[W_NEVENTS]
    if n >= EVENT_CAP:
        ctx.stat[W_EVENTS_DROPPED] += 1
        return
    base = W_EVENTS + n * EVENT_WORDS
    ctx.stat[base] = t0
    ctx.stat[base + 1] = t1
    ctx.stat[base + 2] = value
    ctx.stat[W_NEVENTS] = n + 1


@njit(cache=True, _nrt=False)
def note_cpu(ctx: Ctx) -> None:
    """Where am I running: refreshed per batch, for lock bounces and the 'ran on' report."""
    cpu = sched_getcpu()
    ctx.stat[W_CPU] = cpu
    if 0 <= cpu < 63:
        ctx.stat[W_CPUMASK] |= 1 << cpu
    ctx.stat[W_HEARTBEAT] += 1
