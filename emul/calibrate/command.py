"""``emul calibrate``: measure this machine's real zram swap-slot freeing, fit a cost profile,
and run emul beside it.

The steps, each in its own module:

- host.py      this machine: /proc/swaps, /sys/block/zramN, page-cluster, the swap state
- plan.py      which zram device to measure on, or exactly why none can be used
- device.py    --setup: an unused /dev/zramN configured as swap, and restored whatever happens
- measure.py   the workloads (unmap, swap-in, concurrent exits) and their repeats; the children
               are child.py, the pages' contents data.py, their priority priority.py
- fit.py       the cost profile from the medians; profile.py writes it as YAML
- emulate.py   the same workloads in ``emul run``; compare.py puts them beside the real ones

The profile's costs are what emul charges instead of doing the kernel's work (see
docs/kernel-model.md, "Where emul simplifies"). Calibrate on an otherwise idle machine: the
emulated runs have no preemption filter.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emul.calibrate.compare import side_by_side, slowdown_lines
from emul.calibrate.device import ZramSwapSetup, signals_as_interrupt
from emul.calibrate.emulate import emul_scenario, run_emulated, write_machinery_profile
from emul.calibrate.fit import MACHINERY_WORKLOADS, Fit, derive_profile
from emul.calibrate.host import Host, damon_pageout, swap_state, this_host
from emul.calibrate.measure import ATTEMPTS, MAX_CONCURRENT, measure
from emul.calibrate.plan import SETUP_PRIORITY, DevicePlan, plan_device
from emul.harness.priority import BOOST_NICE, can_boost
from emul.calibrate.profile import default_output, profile_yaml
from emul.errors import EXIT_ABORTED, EXIT_OK, InputError, SystemNotReady

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class Calibration:
    """What every step of one ``emul calibrate`` needs."""

    args: argparse.Namespace     # the parsed command line
    console: Console             # results; the progress lines go to progress
    progress: Callable[[str], None]
    host: Host
    cpus: list[int]              # this process's affinity, in order
    kmax: int                    # the most processes unmapping at once
    output: Path | None = None   # the profile to write


def run_calibrate(args: argparse.Namespace, console: Console,
                  progress: Callable[[str], None]) -> int:
    """emul calibrate: plan the device, measure (setting it up and restoring it with --setup),
    then fit, write the profile and compare. Every refusal comes before the device is touched."""
    _check_args(args)
    cpus = sorted(os.sched_getaffinity(0))
    c = Calibration(args, console, progress, this_host(), cpus, min(MAX_CONCURRENT, len(cpus)))
    need_kb = c.kmax * args.mib * 1024
    plan = plan_device(c.host, args.device, args.setup, need_kb)
    _check_memory(c, need_kb)
    c.output = _output_path(args)
    before = swap_state(c.host, plan.name)
    _announce(c, plan, before)
    with signals_as_interrupt():
        meas, setup_note, restored_ok = _measure_on(c, plan, before)
        workdir = Path(tempfile.mkdtemp(prefix="emul-calibrate-"))
        try:
            return _fit_and_compare(c, meas, workdir, setup_note, restored_ok)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _check_args(args: argparse.Namespace) -> None:
    if not 1 <= args.mib <= 65536:
        raise InputError("--mib", None, f"expected MiB per process, 1..65536, got {args.mib}")
    if not 1 <= args.repeats <= 1000:
        raise InputError("--repeats", None, f"expected a count 1..1000, got {args.repeats}")
    if not 1 <= getattr(args, "dilate", 1.0) <= 1000:
        raise InputError("--dilate", None, f"expected a factor from 1 to 1000, got {args.dilate:g}")


def _check_memory(c: Calibration, need_kb: int) -> None:
    """k x N MiB resident at once, plus zram's compressed copy: refuse before the OOM killer
    would."""
    avail = c.host.mem_available_kb()
    if avail is not None and avail < need_kb * 1.6:
        raise SystemNotReady(f"{avail // 1024} MiB of memory available; the measurement needs "
                             f"about {need_kb * 1.6 // 1024:.0f} MiB ({c.kmax} x {c.args.mib} MiB "
                             "plus zram's copy): use a smaller --mib")


def _output_path(args: argparse.Namespace) -> Path:
    """--output, checked before the measurement so that its minutes are not lost."""
    output = Path(args.output) if args.output else default_output()
    if output.suffix not in (".yaml", ".yml"):
        raise InputError("--output", None, f"expected a .yaml file (so that --profile takes it "
                         f"as a path), got {output}")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError("--output", None,
                         f"cannot create {output.parent}: {exc.strerror}") from None
    return output


def _announce(c: Calibration, plan: DevicePlan, before: dict) -> None:
    """What is about to be measured, where, and what may disturb it."""
    progress, args = c.progress, c.args
    progress(f"device /dev/{plan.name}: "
             + (f"set up for the measurement (state before: swaps "
                f"{before['swaps'] or 'none'}, disksize {before['disksize']}, "
                f"{before['comp_algorithm']}, page-cluster {before['page_cluster']})"
                if plan.setup else
                f"active swap, priority {plan.priority}, {plan.swap_kb_free // 1024} MiB free, "
                f"{plan.prior.comp_algorithm}"))
    progress(f"{args.mib} MiB per process, {args.repeats} repeats, concurrent k = 1..{c.kmax} on "
             f"CPUs {','.join(map(str, c.cpus[:c.kmax]))}")
    progress("measuring children and emul runs at nice -20, each in a scheduling group "
             "(session) of its own" if can_boost() else
             "not root: measuring at normal priority (other tasks on this machine will disturb "
             "the figures more)")
    damon = damon_pageout(c.host)
    if damon:
        progress(f"note: DAMON ({', '.join(damon)}) runs a pageout scheme: while the swap device "
                 "is on it may page other processes' cold memory into it and take some CPU")


def _measure_on(c: Calibration, plan: DevicePlan, before: dict) -> tuple[dict, str, bool]:
    """The measurement record (with the device's algorithm, the nice level and the swap state
    around it), how the device was set up (for the profile), whether it was left as found."""
    if plan.setup:
        meas, setup_note, restored_ok, algorithm = _measure_with_setup(c, plan, before)
    else:
        meas = measure(c.host, plan.name, c.args.mib, c.args.repeats, c.cpus, c.progress)
        setup_note, restored_ok = "its existing swap set-up", True
        algorithm = plan.prior.comp_algorithm
    meas["comp_algorithm"] = algorithm
    meas["nice"] = BOOST_NICE if can_boost() else 0
    meas["state_before"], meas["state_after"] = before, swap_state(c.host, plan.name)
    return meas, setup_note, restored_ok


def _measure_with_setup(c: Calibration, plan: DevicePlan,
                        before: dict) -> tuple[dict, str, bool, str]:
    """--setup: configure the device, measure, restore it (also on error or Ctrl-C) and check
    the swap state is as it was."""
    disksize = 2 * c.kmax * (c.args.mib << 20)
    setup = ZramSwapSetup(c.host, plan, disksize, os.sysconf("SC_PAGE_SIZE"), log=c.progress)
    try:
        with setup:
            setup_note = (f"set up by --setup: disksize {disksize >> 20} MiB, swap "
                          f"priority {SETUP_PRIORITY}, vm.page-cluster 0")
            meas = measure(c.host, plan.name, c.args.mib, c.args.repeats, c.cpus, c.progress)
    finally:
        restored_ok = _check_restored(c, plan, before, setup)
    return meas, setup_note, restored_ok, setup.algorithm


def _check_restored(c: Calibration, plan: DevicePlan, before: dict,
                    setup: ZramSwapSetup) -> bool:
    """The swap state after the restore against the one before: a difference is a warning on
    stderr (and exit 3), not lost among the progress lines."""
    dev = f"/dev/{plan.name}"
    after = swap_state(c.host, plan.name)
    if setup.restore_problems or after != before:
        print(f"emul: WARNING: {dev} not restored as found: before {before}, after "
              f"{after}; " + "; ".join(setup.restore_problems), file=sys.stderr)
        return False
    c.progress(f"swap state restored: swaps {after['swaps'] or 'none'}, "
               f"{plan.name} disksize {after['disksize']}, "
               f"{after['comp_algorithm']}, page-cluster {after['page_cluster']}")
    return True


def _fit_and_compare(c: Calibration, meas: dict, workdir: Path, setup_note: str,
                     restored_ok: bool) -> int:
    """Machinery runs, the fit, the profile, the emulated runs and the table."""
    from emul.report.results import machine_info
    machine = machine_info()
    erepeats = max(5, c.args.repeats)      # emul runs take seconds: at least 5 for a median
    c.progress(f"{meas['clean_runs']} measurements kept their CPU, {meas['preempted_runs']} "
               f"were disturbed in all {ATTEMPTS} tries")
    machinery = None if c.args.no_emulate else _run_machinery(c, meas, erepeats, workdir)
    meas["machinery"] = machinery
    # portable: the profile holds the real kernel's costs (targets); emul takes its own
    # machinery off at run time on whatever host runs it. The machinery is recorded beside.
    fit = derive_profile(meas, None)
    _write_profile(c, meas, fit, machine, setup_note)
    emulated: dict[str, dict] = {}
    if not c.args.no_emulate:
        emulated = _run_emulated_all(c, meas, erepeats, workdir)
        c.console.print(side_by_side(meas, emulated, c.output.name))
        for line in slowdown_lines(meas, emulated):
            c.console.print(line)
    record = c.output.with_suffix(".json")
    record.write_text(json.dumps({"measurements": meas, "emulated": emulated,
                                  "costs_ns": fit.costs_ns, "machine": machine}, indent=1,
                                 default=str))
    c.console.print(f"measurements and emulated figures: {record}", markup=False)
    return EXIT_OK if restored_ok else EXIT_ABORTED


def _run_machinery(c: Calibration, meas: dict, erepeats: int, workdir: Path) -> dict:
    """emul's own time per page for each workload the fit uses (every cost at 1 ns)."""
    machinery = {}
    mprof = write_machinery_profile(workdir / "machinery.yaml")
    for key in MACHINERY_WORKLOADS:
        c.progress(f"emul's own machinery (every cost 1 ns): {key} ...")
        res = run_emulated(key, emul_scenario(key, meas, erepeats, c.cpus), str(mprof), workdir)
        machinery[key] = res["ns_per_page"]
        c.progress(f"  {key}: {res['ns_per_page']:.0f} ns/page")
    return machinery


def _write_profile(c: Calibration, meas: dict, fit: Fit, machine: dict, setup_note: str) -> None:
    """The profile YAML, loaded back once so that what was written is known to load."""
    from emul.config.profiles import load_profile
    meas["output"] = str(c.output)
    c.output.write_text(profile_yaml(meas, fit, machine, setup_note))
    load_profile(str(c.output))
    c.progress(f"profile written: {c.output}")
    c.console.print(f"profile: {c.output}", markup=False)
    if fit.clamped:
        c.console.print(f"note: set to 0 (emul's machinery exceeds the real figure): "
                        f"{', '.join(fit.clamped)}")


def _run_emulated_all(c: Calibration, meas: dict, erepeats: int, workdir: Path) -> dict:
    """Every workload, and each k of the concurrent exits, in emul with the new profile."""
    emulated = {}
    # the single-process workloads emul models (not unmap-zero: emul has no zero page)
    keys = ([(key, 1) for key in MACHINERY_WORKLOADS]
            + [(f"concurrent-{k}", k) for k in range(1, c.kmax + 1)])
    for key, k in keys:
        c.progress(f"emulating {key} with {c.output.name} ...")
        res = run_emulated(key, emul_scenario(key, meas, erepeats, c.cpus, k),
                           str(c.output.resolve()), workdir, k, getattr(c.args, "dilate", 1.0))
        emulated[key] = res
        c.progress(f"  {key}: {res['ns_per_page']:.0f} ns/page")
    return emulated
