"""The cells' results documents as one results.json.

``--each``: every host ran the whole scenario. Each host's variants become ``VARIANT @HOST``
in a group of their own (``host=HOST``, before the scenario's own group label), so every ratio
is against the same host's sync, and the document reads like a matrix whose structural key is
the host. ``--spread``: each cell ran one group of the scenario's matrix on one of several
identical machines; the rows are put back in the matrix's order, as if one machine ran them.

Either way the summary is recomputed from the repeats (emul/report/summary.py), and ``farm``
says which host ran what: each cell's host, exit code, machine, measurement and timing.
"""
from __future__ import annotations

import copy
from typing import Any

from emul.report.scaling import scaling_rows
from emul.report.summary import summarize

# per-cell parts of a document kept under farm.cells (they describe one host's run)
CELL_KEYS = ("machine", "measurement", "dilation", "host_ticks_per_ns", "control")


def host_variant(variant: str, host: str) -> str:
    return f"{variant} @{host}"


def host_group(group: str, host: str) -> str:
    return f"host={host}" + (f" {group}" if group else "")


def _variants(doc: dict) -> list[str]:
    return [s["variant"] for s in doc.get("summary", [])] or \
        [v["name"] for v in doc["scenario"]["variants"]]


def cell_record(cell: dict[str, Any]) -> dict[str, Any]:
    """What farm.cells keeps of a cell: where and how it ran, and why it did not."""
    doc = cell.get("doc") or {}
    out = {k: cell.get(k) for k in ("cell", "host", "group", "state", "code", "reason",
                                   "wall_s")}
    out.update({k: doc[k] for k in CELL_KEYS if k in doc})
    if "host" in doc:
        out["host_state"] = doc["host"]     # the run's view of its host (load, governors)
    if doc:
        out["run_status"], out["run_reason"] = doc.get("status"), doc.get("reason", "")
    return out


def _farm(mode: str, cells: list[dict[str, Any]], hosts: dict[str, dict],
          same: list[list[str]]) -> dict[str, Any]:
    return {"mode": mode, "hosts": hosts, "cells": [cell_record(c) for c in cells],
            "same_machine": same}


def _status(cells: list[dict[str, Any]]) -> tuple[str, str]:
    bad = [c for c in cells if c.get("state") != "done"]
    if not bad:
        return "ok", ""
    return "partial", "; ".join(f"{c['cell']}: {c.get('reason') or c.get('state')}" for c in bad)


def _scaling(key: str, points: list[dict], rows: list[dict], summary: list[dict]) -> dict:
    points = sorted(points, key=lambda p: (p["exits"], p["group"]))
    return {"key": key, "points": points, "rows": scaling_rows(key, points, rows, summary)}


def _first_document(cells: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict]:
    """The cells that wrote a document, and a copy of the first one's to build on."""
    ran = [c for c in cells if c.get("doc")]
    if not ran:
        raise ValueError("no cell wrote a results document")
    return ran, copy.deepcopy(ran[0]["doc"])


def merge_each(cells: list[dict[str, Any]], hosts: dict[str, dict],
               same: list[list[str]]) -> dict[str, Any]:
    """One document of every host's whole-scenario run (cells without a document are only
    listed under farm.cells)."""
    ran, doc = _first_document(cells)
    rows: list[dict] = []
    variants: list[str] = []
    scenario_variants: list[dict] = []
    machinery: dict[str, Any] = {}
    points: list[dict] = []
    for c in ran:
        host, d = c["host"], c["doc"]
        variants += [host_variant(v, host) for v in _variants(d)]
        for r in d["repeats"]:
            rows.append({**r, "variant": host_variant(r["variant"], host),
                         "group": host_group(r.get("group", ""), host), "host": host})
        for v in d["scenario"]["variants"]:
            scenario_variants.append({**v, "name": host_variant(v["name"], host),
                                      "group": host_group(v.get("group", ""), host)})
        machinery.update({host_variant(v, host): m for v, m in d.get("machinery", {}).items()})
        for p in (d.get("scaling") or {}).get("points", []):
            points.append({**p, "group": host_group(p["group"], host), "host": host})
    doc["repeats"], doc["summary"] = rows, summarize(rows, variants)
    doc["scenario"]["variants"] = scenario_variants
    doc["groups"], doc["machinery"] = [], machinery
    if doc.get("scaling"):
        doc["scaling"] = _scaling(doc["scaling"]["key"], points, rows, doc["summary"])
    doc["status"], doc["reason"] = _status(cells)
    doc["farm"] = _farm("each", cells, hosts, same)
    return doc


def merge_spread(cells: list[dict[str, Any]], hosts: dict[str, dict],
                 same: list[list[str]]) -> dict[str, Any]:
    """One document of a matrix whose groups ran on several identical hosts, in the matrix's
    order (cells are given in it)."""
    ran, doc = _first_document(cells)
    rows: list[dict] = []
    variants: list[str] = []
    groups: list[dict] = []
    machinery: dict[str, Any] = {}
    points: dict[str, dict] = {}
    for c in ran:
        d = c["doc"]
        variants += _variants(d)
        rows += [{**r, "host": c["host"]} for r in d["repeats"]]
        groups += d["groups"] or [d["scenario"]]
        machinery.update(d.get("machinery", {}))
        for p in (d.get("scaling") or {}).get("points", []):
            if p["skipped"] is None or p["group"] not in points:
                points[p["group"]] = p
    doc["repeats"], doc["summary"] = rows, summarize(rows, variants)
    doc["scenario"]["variants"] = [v for g in groups for v in g["variants"]]
    doc["groups"], doc["machinery"] = groups if len(groups) > 1 else [], machinery
    if doc.get("scaling"):
        doc["scaling"] = _scaling(doc["scaling"]["key"], list(points.values()), rows,
                                  doc["summary"])
    doc["status"], doc["reason"] = _status(cells)
    doc["farm"] = _farm("spread", cells, hosts, same)
    return doc
