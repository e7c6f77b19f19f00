"""The written profile: a YAML cost profile that ``--profile`` loads, its derivation and the
machine in the comments above it, the measured figures under ``measured``."""
from __future__ import annotations

import platform
import re
import time
from pathlib import Path

from emul.calibrate.fit import Fit
from emul.config.costs import COST_NAMES


def default_output() -> Path:
    """profiles/calibrated-<host>.yaml: a path, so ``--profile`` takes it as one."""
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", platform.node() or "host").strip("-") or "host"
    return Path("profiles") / f"calibrated-{host}.yaml"


def profile_yaml(meas: dict, fit: Fit, machine: dict, setup_note: str) -> str:
    """The profile's text: the comment head says where and how it was measured, so that a
    profile found later can be judged without its .json."""
    import yaml
    host = machine.get("hostname") or "host"
    text = "".join(f"# {x}".rstrip() + "\n" for x in _head(meas, machine, host, setup_note)
                   + fit.lines)
    doc = {
        "name": Path(meas.get("output", f"calibrated-{host}")).stem,
        "description": f"calibrated on {host} ({machine.get('cpu_model') or machine.get('arch')}"
                       f", Linux {machine.get('kernel')}) by emul calibrate",
        "page_size": f"{meas['page_size'] // 1024}K",
        # the costs the fit does not separate are inside the fitted ones (pool_read_lock in
        # zs_free): written as 0, since a profile must name every cost
        "costs_ns": {**{k: 0 for k in COST_NAMES}, **fit.costs_ns},
        "measured": _measured(meas),
    }
    return text + yaml.safe_dump(doc, sort_keys=False)


def _head(meas: dict, machine: dict, host: str, setup_note: str) -> list[str]:
    return [
        f"Cost profile calibrated by `emul calibrate` on {host}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}.",
        f"Machine: {machine.get('arch')}, {machine.get('cpu_model') or '?'}, "
        f"{machine.get('cpus')} CPUs; Linux {machine.get('kernel')}.",
        f"Device: /dev/{meas['device']}, {meas.get('comp_algorithm') or '?'} "
        f"({setup_note}).",
        f"{meas['mib']} MiB per process ({meas['pages']} pages), {meas['repeats']} repeats, "
        f"measured on CPU {meas['cpus'][0]} at nice {meas.get('nice', 0)}.",
        f"Data: each page L random bytes then zeros, L uniform in {meas['page_size'] // 2} x "
        f"(1 +/- {meas['spread']}); zram achieved ratio {meas['compression_ratio']:.2f}.",
        "",
    ]


def _measured(meas: dict) -> dict:
    """The medians the fit used, rounded, and the concurrent figures it did not."""
    return {
        "ns_per_page": {k: round(v, 1) for k, v in meas["ns_per_page"].items()},
        "compression_ratio": round(meas["compression_ratio"], 3),
        "comp_len_mean": round(meas["comp_len_mean"], 1),
        "concurrent": {k: {"wall_ns_per_page": round(v["wall_ns_per_page"], 1),
                           "per_process_ns": round(v["per_process_ns"])}
                       for k, v in meas["concurrent"].items()},
        "machinery_ns_per_page": {k: round(v, 1)
                                  for k, v in (meas.get("machinery") or {}).items()},
    }
