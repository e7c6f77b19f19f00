"""The cost profile from the measured medians (:func:`derive_profile`).

zap_pte from the zero-page unmap, free_folio = resident - zero-page; the swapped unmap's excess
over zap_pte is the swap-entry free S, split with the shares published in the RFC thread as
rk3588-cpu2 does (slot_free() > 80 % of S, zs_free() ~65 % of slot_free(), free_zspage two
thirds of zs_free()); fault from the same-filled swap-in, decompress from the data swap-in's
excess over it. emul's own machinery for each workload (emul run with every fitted cost at 1 ns,
so the charging of a cost is included) is subtracted first, so that emul with the profile
reproduces the single-process figures. Why emul charges these costs instead of doing the work:
docs/kernel-model.md, "Where emul simplifies". The written YAML repeats this derivation with the
numbers (``Fit.lines``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from emul.calibrate.data import DATA_SPREAD

# published shares used to split the swap-entry free (see rk3588-cpu2.yaml)
SLOT_FREE_SHARE = 0.8            # cover letter: slot_free > 80 % of freeing a swap entry
ZS_FREE_SHARE = 0.65             # thread: zs_free ~65 % of slot_free
FREE_ZSPAGE_SHARE = 2 / 3        # thread: free_zspage dominates zs_free (taken as two thirds)

MACHINERY_WORKLOADS = ("unmap-resident", "unmap-swapped", "swapin", "swapin-same")


def zspage_geometry(comp_len_mean: float, spread: float, page_size: int) -> tuple[float, float]:
    """Per object freed, when every object is eventually freed: the zspage pages given back
    (pages_per_zspage / objs_per_zspage of its class) and the zspages freed (1 / objs), averaged
    over compressed lengths uniform in mean x (1 +/- spread) (emul's data model)."""
    from emul.kernel.zs_classes import build_size_classes, class_index_for
    table = build_size_classes(page_size)
    lo = max(1, int(comp_len_mean * (1 - spread)))
    hi = min(page_size, max(lo, int(comp_len_mean * (1 + spread))))
    pages, zspages = [], []
    for n in range(lo, hi + 1):
        c = class_index_for(table, n)
        pages.append(table.pages_per_zspage[c] / table.objs_per_zspage[c])
        zspages.append(1 / table.objs_per_zspage[c])
    return float(sum(pages) / len(pages)), float(sum(zspages) / len(zspages))


def pages_per_object(comp_len_mean: float, spread: float, page_size: int) -> float:
    """zspage pages given back per object freed: free_zspage_page is charged per page."""
    return zspage_geometry(comp_len_mean, spread, page_size)[0]


@dataclass
class Fit:
    costs_ns: dict[str, int]
    lines: list[str] = field(default_factory=list)     # the derivation, for the YAML's comments
    clamped: list[str] = field(default_factory=list)   # costs a negative residual set to 0

    def nonneg(self, name: str, v: float) -> float:
        """A cost cannot be negative: a residual below 0 (emul's machinery exceeds the real
        figure) is set to 0 and named."""
        if v < 0:
            self.clamped.append(name)
            return 0.0
        return v


class EntryFree(NamedTuple):
    """The swap-entry free S split with the published shares (ns per entry)."""

    swap_entry_free: float
    slot_free: float
    zs_total: float              # all of zs_free(), free_zspage included
    zs_free: float
    free_zspage_page: float


def derive_profile(meas: dict, machinery: dict | None = None) -> Fit:
    """The cost profile from the median figures (ns per page).

    meas: ``ns_per_page`` {unmap-zero, unmap-resident, unmap-swapped, swapin, swapin-same,
    pageout}, ``comp_len_mean`` (bytes zram stored per page), ``spread``, ``page_size``.
    machinery: emul's own time per page for the same workloads, run with every fitted cost at
    1 ns (MACHINERY_COSTS: so that the charging of each cost is included)
    {unmap-resident, unmap-swapped, swapin, swapin-same} (None: not subtracted).
    """
    f = meas["ns_per_page"]
    mach = {k: float((machinery or {}).get(k, 0.0)) for k in MACHINERY_WORKLOADS}
    ps = int(meas["page_size"])
    comp_len = float(meas["comp_len_mean"])
    ppo = pages_per_object(comp_len, float(meas.get("spread", DATA_SPREAD)), ps)
    fit = Fit({})
    _explain_measured(fit, meas, comp_len, ppo)
    _explain_machinery(fit, machinery, mach)
    zap, folio = _fit_unmap(fit, f, mach)
    e = _fit_swapped(fit, f["unmap-swapped"] - mach["unmap-swapped"] - zap, ppo)
    fault, dkib = _fit_swapin(fit, f, mach, e, comp_len)
    comp = _fit_swapout(fit, f.get("pageout", 0.0), e, ppo, ps / 1024)
    fit.lines.append("wake_up: not measured; rk3588-cpu2's inferred 1,000 ns (only paid when a "
                     "GC polls).")
    costs = {"zap_pte": zap, "free_folio": folio, "swap_entry_free": e.swap_entry_free,
             "slot_free": e.slot_free, "zs_free": e.zs_free,
             "free_zspage_page": e.free_zspage_page, "zs_malloc": e.zs_free,
             "alloc_zspage_page": e.free_zspage_page, "compress_kib": comp,
             "decompress_kib": dkib, "fault": fault, "wake_up": 1000.0, "slot_free_cold": 0.0}
    if fit.clamped:
        fit.lines.append("A negative residual was set to 0 for: " + ", ".join(fit.clamped)
                         + " (emul's machinery exceeds the real figure there)")
    fit.costs_ns = {k: int(round(v)) for k, v in costs.items()}
    return fit


def _explain_measured(fit: Fit, meas: dict, comp_len: float, ppo: float) -> None:
    """The measured figures, and how many undisturbed repeats each median used."""
    f, ps = meas["ns_per_page"], int(meas["page_size"])
    used = meas.get("clean_repeats") or {}
    reps = meas.get("repeats")

    def how(w: str) -> str:
        if w not in used or not reps:
            return ""
        return (f"  [{used[w]} of {reps} undisturbed]" if used[w]
                else f"  [all {reps}: fewer than 2 undisturbed]")

    L = fit.lines
    L.append("Measured on this machine (ns per page; median over the undisturbed repeats, see "
             "emul/calibrate/):")
    L.append(f"  z  unmap, zero-page PTEs      {f['unmap-zero']:8.1f}{how('unmap-zero')}")
    L.append(f"  r  unmap, resident pages      {f['unmap-resident']:8.1f}{how('unmap-resident')}")
    L.append(f"  s  unmap, swapped to zram     {f['unmap-swapped']:8.1f}{how('unmap-swapped')}")
    L.append(f"  fi swap-in, data pages        {f['swapin']:8.1f}{how('swapin')}")
    L.append(f"  fs swap-in, same-filled pages {f['swapin-same']:8.1f}{how('swapin-same')}")
    L.append(f"  po MADV_PAGEOUT, data pages   {f.get('pageout', 0.0):8.1f}")
    L.append("  (z: PTEs of the shared zero page, no folio behind them; fi, fs: one "
             "MADV_POPULATE_READ;")
    L.append("  fs: pages of one byte value, stored as ZRAM_SAME: no zsmalloc object, no "
             "decompression)")
    L.append(f"  zram stored {comp_len:.0f} bytes per data page (ratio {ps / comp_len:.2f}); at "
             f"+/-{100 * float(meas.get('spread', DATA_SPREAD)):.0f}% their zsmalloc classes give")
    L.append(f"  back {ppo:.3f} zspage pages per object freed")


def _explain_machinery(fit: Fit, machinery: dict | None, mach: dict[str, float]) -> None:
    L = fit.lines
    if not machinery:
        L.append("These are targets: the real kernel's costs on this machine. emul measures its")
        L.append("own machinery for each step wherever it runs and busy-waits only the rest, so")
        L.append("the profile means the same on every host (its machinery here is recorded in")
        L.append("the file beside the costs, for reference).")
        return
    L.append("emul's own machinery for the same workloads on this machine (every cost the "
             "fit sets at 1 ns,")
    L.append("so that each is charged -- a charge reads the cycle counter and spins, some "
             "tens of ns the")
    L.append("zero profile would not show; subtracted so that emul with this profile "
             "reproduces the above):")
    for k, v in mach.items():
        L.append(f"  m[{k}] = {v:.1f}")


def _fit_unmap(fit: Fit, f: dict, mach: dict[str, float]) -> tuple[float, float]:
    """Resident unmap = zap_pte + free_folio; the zero-page unmap has no folio."""
    mr = mach["unmap-resident"]
    rmodel = fit.nonneg("free_folio", f["unmap-resident"] - mr)
    zap = min(fit.nonneg("zap_pte", f["unmap-zero"] - mr), rmodel)
    folio = rmodel - zap
    L = fit.lines
    L.append("Resident unmap = zap_pte + free_folio + m[unmap-resident]; the zero-page unmap "
             "has no folio:")
    L.append(f"  zap_pte    = z - m[unmap-resident]     = {zap:.0f}")
    L.append(f"  free_folio = r - m[unmap-resident] - zap_pte = {folio:.0f}")
    return zap, folio


def _fit_swapped(fit: Fit, residual: float, ppo: float) -> EntryFree:
    """Swapped unmap = zap_pte + S: S (residual: s - m[unmap-swapped] - zap_pte) split with
    the published shares, which a stock kernel's timing cannot separate."""
    S = fit.nonneg("swap_entry_free", residual)
    sef = (1 - SLOT_FREE_SHARE) * S
    slot = (1 - ZS_FREE_SHARE) * SLOT_FREE_SHARE * S
    ztot = ZS_FREE_SHARE * SLOT_FREE_SHARE * S
    zs = (1 - FREE_ZSPAGE_SHARE) * ztot
    fz = FREE_ZSPAGE_SHARE * ztot / ppo if ppo else 0.0
    L = fit.lines
    L.append("Swapped unmap = zap_pte + S + m[unmap-swapped], S the swap-entry free:")
    L.append(f"  S = s - m[unmap-swapped] - zap_pte = {S:.0f}, split with the shares published "
             "for the RFC")
    L.append("  (as rk3588-cpu2 does; not measured here): slot_free() is > 80 % of freeing a "
             "swap entry,")
    L.append("  zs_free() ~65 % of slot_free(), free_zspage two thirds of zs_free():")
    L.append(f"  swap_entry_free  = 0.2 S                    = {sef:.0f}")
    L.append(f"  slot_free        = 0.35 x 0.8 S             = {slot:.0f}")
    L.append(f"  zs_free          = 1/3 x 0.65 x 0.8 S       = {zs:.0f}")
    L.append(f"  free_zspage_page = 2/3 x 0.65 x 0.8 S / {ppo:.3f} = {fz:.0f} per page given back")
    return EntryFree(sef, slot, ztot, zs, fz)


def _fit_swapin(fit: Fit, f: dict, mach: dict[str, float], e: EntryFree,
                comp_len: float) -> tuple[float, float]:
    """do_swap_page frees the entry in the fault (as on zram): fault from the same-filled
    swap-in, decompress_kib from the data swap-in's excess over it."""
    sef, slot, ztot = e.swap_entry_free, e.slot_free, e.zs_total
    fault = fit.nonneg("fault", f["swapin-same"] - mach["swapin-same"] - sef - slot)
    dec = fit.nonneg("decompress_kib", f["swapin"] - mach["swapin"] - fault - sef - slot - ztot)
    dkib = dec / (comp_len / 1024) if comp_len else 0.0
    L = fit.lines
    L.append("Swap-in (do_swap_page; the entry is freed in the fault, as on zram):")
    L.append("  same-filled: fault + swap_entry_free + slot_free + m[swapin-same]")
    L.append(f"    fault = fs - m[swapin-same] - swap_entry_free - slot_free = {fault:.0f}")
    L.append("  data: fault + decompress + swap_entry_free + slot_free + zs_free "
             "+ free_zspage + m[swapin]")
    L.append(f"    decompress = fi - m[swapin] - fault - {sef + slot + ztot:.0f} = {dec:.0f} per "
             f"page, / {comp_len / 1024:.2f} KiB compressed")
    L.append(f"    decompress_kib = {dkib:.0f}")
    L.append("  slot_free_cold = 0: the fault path's slot_free is taken at its unmap cost. "
             "rk3588-cpu2 fits a")
    L.append("  cold-cache surcharge to the RFC's bitmap gain; that needs the patched kernel, "
             "not measured here.")
    return fault, dkib


def _fit_swapout(fit: Fit, po: float, e: EntryFree, ppo: float, kib: float) -> float:
    """compress_kib takes all of MADV_PAGEOUT's time but the zsmalloc allocation (taken equal
    to its free-side twins): it is swap-out's only other modelled cost."""
    comp = (fit.nonneg("compress_kib", (po - e.zs_free - ppo * e.free_zspage_page) / kib)
            if po else 0.0)
    L = fit.lines
    L.append("Swap-out: zs_malloc, alloc_zspage_page taken equal to their free-side twins (as "
             "rk3588-cpu2);")
    L.append(f"  compress_kib = (po - zs_malloc - {ppo:.3f} x alloc_zspage_page) / {kib:g} KiB = "
             f"{comp:.0f}")
    L.append("  (all of MADV_PAGEOUT's other work -- rmap, TLB flush, LRU, slot allocation -- is "
             "charged here:")
    L.append("  it is swap-out's only other modelled cost)")
    return comp
