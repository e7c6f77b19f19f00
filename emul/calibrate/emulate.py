"""emul beside the real kernel: the scenario that emulates each measured workload, and
``emul run`` on it in a subprocess (its own session at nice -20, as the measuring children).

Each scenario runs the sync strategy with the killer (or swap-in) worker on the CPU the real
one ran on, the data at the compression ratio zram achieved. The machinery profile (every
fitted cost at 1 ns) gives emul's own time per workload, which the fit subtracts.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

from emul.harness.priority import boost
from emul.errors import RunAborted, SystemNotReady

MACHINERY_COSTS = ("zap_pte", "free_folio", "swap_entry_free", "slot_free", "zs_free",
                   "free_zspage_page", "zs_malloc", "alloc_zspage_page", "compress_kib",
                   "decompress_kib", "fault")


def emul_scenario(key: str, meas: dict, repeats: int, cpus: list[int], k: int = 1) -> dict:
    """The scenario that emulates workload ``key`` (sync strategy, the killer or swap-in worker
    on the CPU the real one ran on)."""
    mib = meas["mib"]
    ps = meas["page_size"]
    if ps not in (4096, 16384):
        raise SystemNotReady(f"emul models 4K and 16K pages; this kernel uses {ps}-byte pages")
    c0, c1 = cpus[0], (cpus[1] if len(cpus) > 1 else cpus[0])
    data = {"compression_ratio": round(float(meas["compression_ratio"]), 3),
            "spread": float(meas["spread"])}
    doc = {
        "name": f"calibrate-{key}", "experiment": "unmap", "page_size": f"{ps // 1024}K",
        "repeats": repeats, "seed": 1, "profile": "zero",
        "zram": {"disksize": f"{2 * max(k, 1) * mib}M"},
        "processes": [{"name": "victim", "vma": f"{mib}M", "swapped": 1.0}],
        "data": data,
        "workers": {"killer": {"cpu": c0}, "gc": {"cpu": c1}, "swapout": {"cpu": c0},
                    "swapin": {"cpu": c0}},
        "variants": [{"name": "sync", "strategy": "sync"}],
    }
    if key == "unmap-resident":
        doc["processes"][0]["swapped"] = 0.0
    elif key in ("swapin", "swapin-same"):
        doc["experiment"] = "swapin"
        doc["processes"][0]["name"] = "app"
        if key == "swapin-same":
            doc["data"] = {"compression_ratio": 2.0, "spread": 0.0, "same_filled": 1.0}
    elif key.startswith("concurrent-"):
        doc["processes"] = [{"name": "victim" if i == 0 else f"victim{i + 1}", "vma": f"{mib}M",
                             "swapped": 1.0} for i in range(k)]
        doc["workers"]["killer"] = {"cpu": cpus[:k]}
    return doc


def write_machinery_profile(path: Path) -> Path:
    """A profile charging 1 ns for every cost the fit sets (not slot_free_cold, wake_up):
    emul's machinery including the charging itself, which the zero profile skips."""
    import yaml
    path.write_text(yaml.safe_dump({
        "name": "machinery", "description": "emul calibrate: every fitted cost at 1 ns",
        "page_size": "4K", "costs_ns": {k: 1 for k in MACHINERY_COSTS},
        "unlisted_ns": 0}, sort_keys=False))
    return path


def run_emulated(key: str, doc: dict, profile: str, workdir: Path, k: int = 1,
                 dilate: float = 1.0) -> dict:
    """``emul run`` the scenario in a subprocess; ns per page (per process for concurrent):
    the measured actors' wall time / pages each, median over the repeats. ``dilate``: emul
    emulating the host it runs on needs room for its own machinery (README, "Portable
    timing")."""
    import yaml
    tag = f"{key}-{Path(profile).stem}"
    sc = workdir / f"{tag}.yaml"
    sc.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = workdir / tag
    cmd = [sys.executable, "-m", "emul.cli", "run", str(sc), "-o", str(out), "--profile", profile,
           "--dilate", f"{dilate:g}"]
    err = _run_boosted(cmd)
    if err is not None:
        raise RunAborted(f"emulating {key} failed (emul run exit {err[0]}): {err[1]}")
    rows = [row for row in json.loads((out / "results.json").read_text())["repeats"]
            if row["ptes"]]
    per = [row["time_ns"] / (row["ptes"] / k) for row in rows]
    return {"ns_per_page": statistics.median(per), "samples": per, "results": str(out)}


def _run_boosted(cmd: list[str]) -> tuple[int, str] | None:
    """Run cmd in a session of its own at nice -20; None on success, else (exit code, the
    last line of its stderr). A Ctrl-C here does not reach the session, so the child is
    stopped on the way out."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=boost)
    try:
        _, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.terminate()          # emul run stops its workers and exits (code 3)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if proc.returncode != 0:
        return proc.returncode, (err.strip().splitlines() or ["(no output)"])[-1]
    return None
