"""emul farm run / emul farm hosts: the cells submitted to Dask, watched, merged, written.

Order of a run: reach the farm (cluster.py), describe every host, refuse a host with another
emul (by name) and, for --spread, hosts that are not one machine; plan the cells; submit them,
each pinned to its host's worker and asking for its ``emul`` resource; watch them (progress
events, finished futures, workers leaving the scheduler) until every cell is done or failed;
merge and write. Ctrl-C (or SIGTERM) cancels every task and interrupts every host's emul run
(task.stop_cells through client.run, which reaches a worker while its task runs), waits for
them to clean up, then exits 3.
"""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from emul.errors import EXIT_ABORTED, EXIT_FAILED, EXIT_OK, InputError, RunAborted
from emul.farm import identity
from emul.farm.cells import Cell, FarmRun
from emul.farm.cluster import Farm, Host
from emul.farm.merge import merge_each, merge_spread
from emul.farm.progress import FarmProgress
from emul.farm.task import TOPIC, plan_groups, run_cell, stop_cells
from emul.harness.signals import INTERRUPTS

POLL_S = 0.25          # how often the watch loop looks at futures and workers
GONE_POLLS = 2         # a host is gone when two polls in a row do not list its worker


def check_hosts(hosts: list[Host], spread: bool) -> None:
    """Refuse, before anything runs, a host whose emul is not this controller's and, for
    --spread, hosts that are not one kind of machine."""
    mine = identity.describe()["emul"]
    by_name = {h.name: h.info for h in hosts}
    wrong = identity.version_mismatches(by_name, mine)
    if wrong:
        raise InputError("--hosts/--scheduler", None, "every host must run the same emul "
                         "(version and source hash); refused: " + "; ".join(wrong))
    if spread:
        diff = identity.machine_differences(by_name)
        if diff:
            raise InputError("--spread", None, "--spread merges groups as one machine's run, "
                             "so every host must be the same machine; they differ in "
                             + "; ".join(diff) + " (use --each)")


def payload(run: FarmRun, cell: Cell) -> dict[str, Any]:
    """The plain data a host gets for a cell."""
    out: dict[str, Any] = {"id": cell.id, "scenario_file": Path(run.scenario_path).name,
                           "scenario_text": run.scenario_text, "run_args": run.run_args,
                           "only_group": cell.group}
    if run.profile_text is not None:
        out["profile_file"], out["profile_text"] = Path(str(run.profile)).name, run.profile_text
    elif run.profile:
        out["profile"] = run.profile
    return out


def plan_cells(farm: Farm, run: FarmRun, hosts: list[Host]) -> tuple[list[Cell], list[str]]:
    """--each: the whole scenario on every host. --spread: the matrix's runnable groups dealt
    out in turn (one host plans them: the hosts are one kind of machine); the lines of the
    points no host can run."""
    if not run.spread:
        return [Cell(h.name, h, label="the whole scenario") for h in hosts], []
    first = hosts[0]
    plan = farm.client.run(plan_groups, payload(run, Cell("plan", first)),
                           workers=[first.address])[first.address]
    if plan.get("error"):
        raise InputError(run.scenario_path, None, f"on {first.name}: {plan['error']}")
    groups = plan["groups"]
    cells = [Cell(f"{hosts[k % len(hosts)].name} g{k + 1}", hosts[k % len(hosts)], k + 1,
                  label or "the scenario") for k, label in enumerate(groups)]
    return cells, plan["skipped"]


def submit(farm: Farm, run: FarmRun, cells: list[Cell]) -> dict[Any, Cell]:
    """Each cell a task on its own host's worker, holding that host's emul resource."""
    tag = uuid.uuid4().hex[:8]
    return {farm.client.submit(run_cell, payload(run, c), key=f"emul-farm-{tag}-{k}",
                               workers=[c.host.address], allow_other_workers=False,
                               resources={"emul": 1}, pure=False, retries=0): c
            for k, c in enumerate(cells)}


def finish(cell: Cell, fut: Any) -> None:
    """A finished future's outcome on its cell."""
    try:
        cell.result = fut.result()
    except Exception as exc:         # the task raised, or its worker died (KilledWorker)
        cell.state, cell.reason = "failed", f"{type(exc).__name__}: {exc}"[:300]
        return
    code = cell.result.get("code")
    if code == EXIT_OK:
        cell.state = "done"
    elif code == EXIT_FAILED and cell.result.get("doc"):
        cell.state, cell.reason = "audit-failed", "the invariant audit failed"
    else:
        tail = (cell.result.get("stderr") or "").strip().splitlines()
        cell.state = "failed"
        cell.reason = f"emul run exited {code}" + (f": {tail[-1]}" if tail else "")


def watch(farm: Farm, futures: dict[Any, Cell], progress: FarmProgress) -> None:
    """Until every cell has ended: progress events, finished futures, and hosts whose worker
    left the scheduler (their cells fail with the reason; the rest go on)."""
    pending = dict(futures)
    missing: dict[str, int] = {}      # host address -> polls in a row it was not listed
    while pending:
        INTERRUPTS.check()
        alive = set(farm.workers())
        for address in {c.host.address for c in pending.values()}:
            missing[address] = 0 if address in alive else missing.get(address, 0) + 1
        for fut, cell in list(pending.items()):
            if fut.done():
                finish(cell, fut)
            elif missing[cell.host.address] >= GONE_POLLS:
                fut.cancel()
                cell.state = "failed"
                cell.reason = f"host {cell.host.name} dropped out (its worker left the scheduler)"
            else:
                continue
            del pending[fut]
            progress.cell_ended(cell)
        progress.refresh()
        time.sleep(POLL_S)


def on_event(cells: dict[str, Cell], progress: FarmProgress) -> Any:
    def handler(event: tuple[float, dict]) -> None:
        msg = event[1]
        cell = cells.get(str(msg.get("cell")))
        if cell is None or cell.state not in ("queued", "running"):
            return
        if cell.state == "queued":
            cell.state, cell.started = "running", time.monotonic()
        cell.done = int(msg.get("done", cell.done))
        cell.total = int(msg.get("total", cell.total))
        cell.phase = str(msg.get("phase", cell.phase))
        progress.changed(cell)
    return handler


def stop_everything(farm: Farm, futures: dict[Any, Cell]) -> list[str]:
    """Ctrl-C: cancel every task, interrupt every host's emul run and wait for it to end; the
    hosts where a run had to be killed."""
    farm.client.cancel(list(futures))
    addresses = sorted({c.host.address for c in futures.values()} & set(farm.workers()))
    try:
        stuck = farm.client.run(stop_cells, workers=addresses, on_error="return")
    except Exception as exc:             # the scheduler itself is gone
        return [f"the farm did not answer ({type(exc).__name__})"]
    return [f"{a}: {v}" for a, v in stuck.items() if v]


def run_cells(farm: Farm, run: FarmRun, cells: list[Cell], progress: FarmProgress) -> None:
    by_id = {c.id: c for c in cells}
    farm.client.subscribe_topic(TOPIC, on_event(by_id, progress))
    futures = submit(farm, run, cells)
    try:
        watch(farm, futures, progress)
    except KeyboardInterrupt:
        INTERRUPTS.hold()
        progress.stop()
        progress.say("interrupted: cancelling every cell and stopping each host's emul run")
        stuck = stop_everything(farm, futures)
        for c in cells:
            if c.state in ("queued", "running"):
                c.state, c.reason = "cancelled", "interrupted"
        if stuck:
            progress.say("killed after the wait: " + "; ".join(stuck))
        raise
    finally:
        progress.stop()


def merged(run: FarmRun, cells: list[Cell], hosts: list[Host]) -> dict[str, Any]:
    records = [c.record() for c in cells]
    by_name = {h.name: h.info for h in hosts}
    same = identity.same_machines(by_name)
    return (merge_spread if run.spread else merge_each)(records, by_name, same)


def exit_code(cells: list[Cell]) -> int:
    """0: every cell ran with a clean audit; 1: a cell's audit failed; 3: a cell did not run."""
    if any(c.state not in ("done", "audit-failed") for c in cells):
        return EXIT_ABORTED
    return EXIT_FAILED if any(c.state == "audit-failed" for c in cells) else EXIT_OK


def no_document(cells: list[Cell]) -> RunAborted:
    return RunAborted("no cell wrote a results document: " + "; ".join(
        f"{c.id}: {c.reason or c.state}" for c in cells))


def write_cells(outdir: Path, cells: list[Cell]) -> list[Path]:
    """Each cell's own results.json and summary under cells/<cell>/ (emul compare reads them)."""
    from emul.atomic import write_text
    out = []
    for c in cells:
        doc = c.result.get("doc")
        if not doc:
            continue
        d = outdir / "cells" / c.id.replace(" ", "-")
        d.mkdir(parents=True, exist_ok=True)
        out.append(write_text(d / "results.json", json.dumps(doc, indent=1)))
        if c.result.get("summary"):
            out.append(write_text(d / "summary.txt", c.result["summary"]))
    return out
