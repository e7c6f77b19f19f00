"""A low-memory-killer storm, replayed: lmkd's reaper threads tearing victims down on schedule.

lmkd kills one process at a time and hands the teardown to reaper threads (lmkd_reaper0/1:
pidfd_send_signal(SIGKILL), then process_mrelease()), so a victim's swap slots are freed in the
reaper (docs/workloads.md, "Kill pacing and reapers"). Here each reaper worker takes the next
kill from a shared counter, waits until the kill's time, and unmaps the victim's VMA
(zap_pte_range -> swap_entry_free -> zram_slot_free_notify -> the strategy). Two reapers overlap
exits when the schedule does.

Per kill, zram.kills holds KILL_WORDS words:
  K_DUE        ticks after the replay's start when the kill is due
  K_START      read_clock() when a reaper began the teardown
  K_ANON_DONE  ... when the unmap ended: every resident page of the victim is freed
  K_SWAP_DONE  ... when the last of its slots lost its content (slot_free_extract; 0: never)
  K_REAPER     the CPU the reaper ran on
  K_SLOTS_LEFT the victim's slots still holding content (counted down by slot_free_extract)
  K_SLOTS      the victim's slots when the replay began
"""
from __future__ import annotations

from numba import njit

from emul.kernel.atomics import atomic_fetch_add, atomic_load, cpu_relax, futex_wait, read_clock
from emul.kernel.context import W_CPU, W_T_END, W_T_START, Ctx, note_cpu
from emul.kernel.mm import Mm, unmap_vma
from emul.kernel.zram import K_SLOTS_LEFT, K_SWAP_DONE, KILL_WORDS, Zram

K_DUE = 0
K_START = 1
K_ANON_DONE = 2
K_REAPER = 4
K_SLOTS = 6
CTL_REPLAY_T0 = 24      # ctl words: the replay's start tick, set by the controller
CTL_REPLAY_NEXT = 32    # the next kill a reaper takes (own cache line)
GC_CTL_NAP = 8          # a gc_ctl futex word nobody wakes: a reaper's timed sleep


@njit(cache=True, _nrt=False)
def wait_until(zram: Zram, when: int, ticks_per_us: int) -> None:
    """Sleep (a real futex sleep) until ~50 us before ``when``, then spin to it."""
    while True:
        left = when - read_clock()
        if left <= 0:
            return
        if left > 100 * ticks_per_us:
            futex_wait(zram.gc_ctl, GC_CTL_NAP, 0, (left // ticks_per_us - 50) * 1000)
        else:
            cpu_relax()


@njit(cache=True, _nrt=False)
def reap_run(zram: Zram, mm: Mm, ctx: Ctx, ctl, starts, ends, ticks_per_us: int) -> int:
    """One reaper: take kills in order until none is left; returns how many it tore down."""
    n = starts.size
    t0 = atomic_load(ctl, CTL_REPLAY_T0)
    first = 0
    done = 0
    while True:
        i = atomic_fetch_add(ctl, CTL_REPLAY_NEXT, 1)
        if i >= n:
            break
        k = i * KILL_WORDS
        wait_until(zram, t0 + zram.kills[k + K_DUE], ticks_per_us)
        note_cpu(ctx)
        zram.kills[k + K_REAPER] = ctx.stat[W_CPU]
        zram.kills[k + K_START] = read_clock()
        unmap_vma(zram, mm, ctx, starts[i], ends[i])
        zram.kills[k + K_ANON_DONE] = ctx.stat[W_T_END]
        if first == 0:
            first = zram.kills[k + K_START]
        done += 1
    if first != 0:
        ctx.stat[W_T_START] = first
    return done


def kill_record(kills, i: int) -> dict:
    """One kill's raw words (controller side)."""
    k = i * KILL_WORDS
    return {"due": int(kills[k + K_DUE]), "start": int(kills[k + K_START]),
            "anon_done": int(kills[k + K_ANON_DONE]), "swap_done": int(kills[k + K_SWAP_DONE]),
            "reaper_cpu": int(kills[k + K_REAPER]), "slots": int(kills[k + K_SLOTS]),
            "slots_left": int(kills[k + K_SLOTS_LEFT])}
