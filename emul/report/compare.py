"""`emul compare`: the same figures of several runs side by side, with a significance test.

Runs may come from different machines (an RK3588 board and an x86 VM) and different days, so
the header says where and when each ran, and the scenarios are compared key by key: a ratio
between two runs of different scenarios is still printed, but never without saying so.

Every figure is computed per repeat and then summarized (median, spread), so the permutation
test compares the repeats of one run with the repeats of the first: the same test `emul run`
uses between variants (emul.report.summary.permutation_p).

What the test assumes, and the A/A floor. A permutation test takes the repeats of the two
runs as exchangeable. Within one run they nearly are (interleaved, minutes apart at most);
between runs they are not: runs an hour apart see another host (other jobs, the page cache,
the CPU's clock), so identical code can differ by more than either run's own spread, and the
test alone calls that noise significant. A difference is therefore marked only when the test
says so and it is beyond the A/A floor: what identical runs of this scenario differ by on this
host. Given as ``--floor PCT``, it is that; else the larger of an estimate from the runs' spread
(AA_K times the two runs' combined half-ranges, root sum of squares, never below AA_MIN) and
what this host's history of identical runs of the scenario shows (emul/report/history.py: the
largest max / min - 1 of their medians). Runs that all ran identical code on one scenario and
host are themselves an A/A comparison: nothing in it is marked.

Runs of different experiments (an unmap against a swap-in) measure different things and are
refused.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rich.markup import escape

from emul.errors import InputError
from emul.report import history
from emul.report.io import load_results, results_path
from emul.report.summary import SIGNIFICANCE, permutation_p
from emul.report.textout import set_key_columns
from emul.report.timeline import kill_freed_ms, time_to_returned

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

Extract = Callable[[dict], "float | None"]

AA_K = 2.0        # identical runs differ by up to about twice their combined spread
AA_MIN = 0.05     # ... and never less than 5 %


@dataclass
class Run:
    label: str          # "A", "B", …: the column names of the table
    path: Path
    doc: dict


@dataclass
class Cell:
    """One metric of one variant in one run."""
    samples: list[float]
    median: float
    spread_pct: float                 # half the range, in % of the median (as `emul run`)
    ratio: float | None = None        # this run's median / the first run's; None for the first
    p_value: float | None = None
    floor_pct: float | None = None    # the A/A floor this difference was judged against
    significant: bool = False


@dataclass
class MetricRow:
    variant: str
    metric: str
    unit: str
    cells: list[Cell | None] = field(default_factory=list)   # None: not in that run


@dataclass
class Metric:
    key: str
    label: str
    unit: str
    extract: Extract


def load_runs(args: list[str]) -> list[Run]:
    """The runs named on the command line, loaded and checked, labelled A, B, …; runs of
    different experiments are refused."""
    if len(args) < 2:
        raise InputError("compare", None, f"expected at least two runs (results directories or "
                         f"results.json files), got {len(args)}")
    runs = [Run(_label(i), results_path(a), load_results(a)) for i, a in enumerate(args)]
    first = runs[0]
    for run in runs[1:]:
        a, b = _experiment(first.doc), _experiment(run.doc)
        if a != b:
            raise InputError("compare", None, f"{first.label} ({first.path}) is {_an(a)} run and "
                             f"{run.label} ({run.path}) {_an(b)} run: their times measure "
                             f"different things; compare runs of one experiment")
    return runs


def _experiment(doc: dict) -> str:
    kind = doc["scenario"].get("experiment", "unmap")
    return "replay" if "replay_summary" in doc else kind


def _an(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def aa_floor(a: "Cell", b: "Cell", measured_pct: float | None = None) -> float:
    """The relative difference identical runs may show (a fraction): measured, or estimated
    from the two runs' own spreads."""
    if measured_pct is not None:
        return measured_pct / 100.0
    # hypot: around a near-zero median a spread is huge, and its square would overflow
    spread = math.hypot(a.spread_pct, b.spread_pct) / 100.0
    return max(AA_MIN, AA_K * spread)


def _label(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"R{i + 1}"


# ---- the metrics, each a figure of one repeat ---------------------------------------------

def _lock_classes(runs: list[Run]) -> list[str]:
    """Lock classes with lock_stat data in some run (acquisitions counted: lockstat was on)."""
    out: dict[str, None] = {}
    for run in runs:
        for row in run.doc["repeats"]:
            for c in row.get("lock_stat") or []:
                if c.get("acquisitions"):
                    out[c["class name"]] = None
    return list(out)


def _contentions(cls: str) -> Extract:
    def get(row: dict) -> float | None:
        for c in row.get("lock_stat") or []:
            # a class never acquired means lockstat was off in that run: no figure, not zero
            if c["class name"] == cls and c.get("acquisitions"):
                return c["contentions"]
        return None
    return get


MAX_PAIRS = 6     # compare's waiter → holder rows: the pairs with the most wait in all runs


def _wait_pairs(runs: list[Run]) -> list[tuple[str, str, str]]:
    """The (class, waiter, holder) pairs with the most wait time over every run."""
    total: dict[tuple[str, str, str], float] = {}
    for run in runs:
        for row in run.doc["repeats"]:
            for w in row.get("lock_who") or []:
                key = (w["class name"], w["waiter"], w["holder"])
                total[key] = total.get(key, 0.0) + w["waittime-total"]
    return sorted(total, key=lambda k: -total[k])[:MAX_PAIRS]


def _pair_wait(cls: str, waiter: str, holder: str) -> Extract:
    def get(row: dict) -> float | None:
        if "lock_who" not in row:
            return None          # a run of an emul before who-waited-on-whom: no figure
        return sum(w["waittime-total"] for w in row["lock_who"]
                   if (w["class name"], w["waiter"], w["holder"]) == (cls, waiter, holder))
    return get


def _kills(row: dict) -> list[dict]:
    return (row.get("replay") or {}).get("kills") or []


def _median_of(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _replay_metrics(target_mb: float) -> list[Metric]:
    def to_target(row: dict) -> float | None:
        tl = (row.get("replay") or {}).get("timeline")
        return time_to_returned(tl, target_mb) if tl else None

    def all_freed(row: dict) -> float | None:
        ks = _kills(row)
        return max(kill_freed_ms(k) for k in ks) if ks else None

    def returned(row: dict) -> float | None:
        tl = (row.get("replay") or {}).get("timeline")
        return max(tl["returned_mb"] or [0]) if tl else None

    return [
        Metric("anon_freed_ms", "kill → anon freed (median of kills)", "ms",
               lambda r: _median_of([k["anon_freed_ms"] for k in _kills(r)])),
        Metric("swap_freed_ms", "kill → swap freed (median of kills)", "ms",
               lambda r: _median_of([k["swap_freed_ms"] for k in _kills(r)
                                     if k["swap_freed_ms"] is not None])),
        Metric("swap_freed_ms_max", "kill → swap freed (max of kills)", "ms",
               lambda r: max([k["swap_freed_ms"] for k in _kills(r)
                              if k["swap_freed_ms"] is not None], default=None)),
        Metric("time_to_target_ms", f"time to {target_mb:g} MiB returned", "ms", to_target),
        Metric("all_freed_ms", "all freed", "ms", all_freed),
        Metric("returned_mb_max", "memory returned", "MiB", returned),
    ]


def metrics_for(runs: list[Run]) -> list[Metric]:
    """The metrics compared: every run's, plus lock classes with data and replay figures."""
    experiment = next((r.doc["scenario"].get("experiment") for r in runs), "unmap")
    what = {"swapin": "swap-in", "unmap": "unmap"}.get(experiment, experiment)
    out = [
        Metric("time", f"{what} time", "ms", lambda r: r["time_ns"] / 1e6),
        Metric("ns_per_page", "ns/page", "ns", lambda r: r["ns_per_page"]),
        Metric("gc_drain", "GC drain", "ms", lambda r: r["gc_drain_ns"] / 1e6),
        Metric("peak_backlog", "peak backlog", "slots", lambda r: r["peak_backlog"]),
        Metric("fallback", "fallbacks", "slots", lambda r: r["fallback"]),
    ]
    out += [Metric(f"contentions:{c}", f"{c} contentions", "count", _contentions(c))
            for c in _lock_classes(runs)]
    out += [Metric(f"waits:{c}:{w}:{h}", f"{c} {w} → {h} wait", "µs", _pair_wait(c, w, h))
            for c, w, h in _wait_pairs(runs)]
    replays = [r for r in runs if "replay_summary" in r.doc]
    if replays:
        # one target for every run, so "time to N MiB" is the same question in each
        target = (replays[0].doc.get("replay_options") or {}).get("target_mb", 100.0)
        out += _replay_metrics(float(target))
    return out


# ---- the comparison -----------------------------------------------------------------------

def variants_of(runs: list[Run]) -> list[str]:
    """Every variant of any run, matched by name, in the order they first appear."""
    names: dict[str, None] = {}
    for run in runs:
        for s in run.doc["summary"]:
            names[s["variant"]] = None
        for row in run.doc["repeats"]:
            names[row["variant"]] = None
    return list(names)


def _cell(samples: list[float]) -> Cell:
    med = statistics.median(samples)
    spread = 100.0 * (max(samples) - min(samples)) / 2 / abs(med) if med else 0.0
    return Cell(samples, med, spread)


# compare's metric keys -> the summary's (what emul/report/history.py keeps per run)
HISTORY_METRIC = {"time": "time_ms_median", "ns_per_page": "ns_per_page",
                  "gc_drain": "gc_drain_ms", "peak_backlog": "peak_backlog",
                  "fallback": "fallback"}


def identical_code(runs: list[Run]) -> bool:
    """Every run ran the same code on the same scenario and host: an A/A comparison."""
    codes = {history.code_of(r.doc) for r in runs}
    return (None not in codes and len(codes) == 1
            and len({history.scenario_key(r.doc) for r in runs}) == 1
            and len({r.doc["machine"].get("hostname") for r in runs}) == 1)


def compare(runs: list[Run], floor_pct: float | None = None) -> list[MetricRow]:
    """Per variant and metric, each run's cell and its ratio / significance against the first:
    significant when the permutation test says so and the difference is beyond the A/A floor
    (floor_pct: a measured one; else the larger of the estimate from the runs' spread and what
    this host's history of identical runs shows). Runs of identical code are an A/A comparison:
    nothing in it is significant."""
    out = []
    metrics = metrics_for(runs)
    aa = identical_code(runs)
    past = history.aa_runs(runs[0].doc["machine"].get("hostname"),
                           history.scenario_key(runs[0].doc))
    for v in variants_of(runs):
        for m in metrics:
            row = MetricRow(v, m.label, m.unit)
            for run in runs:
                got = [m.extract(r) for r in run.doc["repeats"] if r["variant"] == v]
                vals = [float(x) for x in got if x is not None]
                row.cells.append(_cell(vals) if vals else None)
            if all(c is None for c in row.cells):
                continue
            if all(c is None or not any(c.samples) for c in row.cells):
                continue     # zero everywhere (sync's GC drain, no fallbacks): only noise
            first = row.cells[0]
            for c in row.cells[1:]:
                if c is None or first is None:
                    continue
                c.ratio = (c.median / first.median if first.median
                           else (1.0 if c.median == 0 else None))
                c.p_value = permutation_p(c.samples, first.samples)
                floor = aa_floor(first, c, floor_pct)
                if floor_pct is None and m.key in HISTORY_METRIC:
                    floor = max(floor, history.aa_spread(past, v, HISTORY_METRIC[m.key])[0])
                c.floor_pct = 100.0 * floor
                beyond = c.ratio is None or abs(c.ratio - 1.0) > floor
                c.significant = c.p_value < SIGNIFICANCE and beyond and not aa
            out.append(row)
    return out


_ABSENT = object()


def _diff(a: Any, b: Any, prefix: str) -> list[str]:
    """Dotted keys (zram.disksize, variants[1].cap_slots) in which b differs from a."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in dict.fromkeys([*a, *b]):
            out += _diff(a.get(k, _ABSENT), b.get(k, _ABSENT), f"{prefix}.{k}" if prefix else k)
        return out
    if isinstance(a, list) and isinstance(b, list) and any(
            isinstance(x, (dict, list)) for x in a + b):
        if len(a) != len(b):      # other processes or variants: one line, not one per field
            return [f"{prefix} ({len(a)} vs {len(b)} entries)"]
        return [k for i, (x, y) in enumerate(zip(a, b)) for k in _diff(x, y, f"{prefix}[{i}]")]
    return [] if a == b else [prefix]


def scenario_diff(a: dict, b: dict) -> list[str]:
    """The keys in which scenario b differs from a, ignoring where each was read from."""
    return _diff({k: v for k, v in a.items() if k != "source"},
                 {k: v for k, v in b.items() if k != "source"}, "")


def _machine(doc: dict) -> str:
    m = doc["machine"]
    return f"{m.get('arch', '?')} {m.get('cpu_model') or '?'} ({m.get('cpus', '?')} CPUs)"


def notes(runs: list[Run]) -> list[str]:
    """What a reader must know before trusting a ratio: different scenarios, profile costs,
    machines, runs that did not finish cleanly (markup: the names in them escaped)."""
    out = []
    first = runs[0]
    for run in runs[1:]:
        diff = scenario_diff(first.doc["scenario"], run.doc["scenario"])
        if diff:
            shown = ", ".join(diff[:12]) + (f", … ({len(diff)} in all)" if len(diff) > 12 else "")
            out.append(f"[bold yellow]scenarios differ[/]: {run.label} differs from "
                       f"{first.label} in {escape(shown)}")
        pa, pb = first.doc["profile"], run.doc["profile"]
        if pa.get("name") == pb.get("name") and pa.get("costs_ns") != pb.get("costs_ns"):
            keys = sorted(set(pa.get("costs_ns") or {}) | set(pb.get("costs_ns") or {}))
            keys = [k for k in keys if (pa.get("costs_ns") or {}).get(k)
                    != (pb.get("costs_ns") or {}).get(k)]
            out.append(f"[bold yellow]profile {escape(pa['name'])} differs[/]: {run.label}'s "
                       f"costs differ in {escape(', '.join(keys))}")
    if not any(scenario_diff(first.doc["scenario"], r.doc["scenario"]) for r in runs[1:]):
        out.append("same scenario in every run (ignoring the file it was read from)")
    if identical_code(runs):
        out.append("[bold]A/A[/]: every run ran identical code (code "
                   f"{escape(str(history.code_of(first.doc)))}) on this scenario and host: their "
                   "differences are the host's noise, and none is marked")
    else:
        note = history.history_note(history.aa_runs(first.doc["machine"].get("hostname"),
                                                    history.scenario_key(first.doc)))
        if note:
            out.append(note)
    machines = {_machine(r.doc) for r in runs}
    if len(machines) > 1:
        out.append("[bold]different machines[/]: the ratios compare machines as well as designs")
    for run in runs:
        if run.doc.get("status", "ok") != "ok":
            out.append(f"[bold red]{run.label}: status {escape(str(run.doc['status']))}[/]"
                       + (f" ({escape(str(run.doc['reason']))})" if run.doc.get("reason") else ""))
    return out


# ---- rendering ----------------------------------------------------------------------------

def header_table(runs: list[Run]) -> Table:
    """Where, when and what each run ran: read before any ratio (every cell a name or a path
    from the runs, so escaped)."""
    from rich.table import Table
    t = Table(title="runs compared")
    for col in ("run", "results", "scenario", "profile", "machine", "created",
                "repeats × variants", "status"):
        t.add_column(col, no_wrap=col not in ("results",))
    for run in runs:
        d = run.doc
        profiles = ", ".join(d.get("profiles") or [d["profile"]["name"]])
        n_variants = len(variants_of([run]))
        cells = [run.label, str(run.path), f"{d['scenario'].get('name', '?')} "
                 f"({d['scenario'].get('experiment', '?')})", profiles, _machine(d),
                 str(d.get("created", "?")), f"{d['scenario'].get('repeats', '?')} × "
                 f"{n_variants}", str(d.get("status", "?"))]
        t.add_row(*(escape(c) for c in cells))
    return t


def _num(v: float, unit: str) -> str:
    if unit in ("slots", "count"):
        return f"{v:,.0f}" if v == int(v) else f"{v:,.1f}"
    a = abs(v)
    digits = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3
    return f"{v:,.{digits}f}"


def _value(c: Cell | None, unit: str) -> str:
    if c is None:
        return "-"
    shown = unit if unit not in ("count", "slots") else ""
    text = f"{_num(c.median, unit)} {shown}".rstrip()
    if len(c.samples) < 2:
        return text
    if c.spread_pct > 100:     # around a near-zero median a percentage says nothing: the range
        return text + f" ({_num(min(c.samples), unit)}-{_num(max(c.samples), unit)})"
    return text + f" (±{c.spread_pct:.1f}%)"


def _ratio(c: Cell | None) -> str:
    if c is None or c.p_value is None:
        return "-"
    r = ("n/a" if c.ratio is None else f"{c.ratio:.2f}×" if c.ratio >= 0.1 or c.ratio == 0
         else f"{c.ratio:.2g}×")
    return f"{r}{'*' if c.significant else ' '} p {c.p_value:.3f}, floor {c.floor_pct:.0f}%"


def metrics_table(runs: list[Run], rows: list[MetricRow]) -> Table:
    """Each metric per variant, each run's median and its ratio to the first run's."""
    from rich.table import Table
    first = runs[0].label
    paths = ", ".join(f"{r.label} = {r.path}" for r in runs)
    t = Table(title=f"compared with {first} ({escape(paths)})",
              caption=f"median over repeats (±half the range, % of the median); "
                      f"X / {first}: X's median over {first}'s, above 1 is larger (for times: "
                      f"slower); * a real difference: the repeats differ (two-sided permutation "
                      f"test, p < {SIGNIFICANCE}; with 3 repeats a side nothing can) and by more "
                      f"than the A/A floor, what identical runs differ by (--floor, else "
                      f"the larger of {AA_K:g} × the runs' combined spread, at least "
                      f"{AA_MIN:.0%}, and this host's history of identical runs); a metric "
                      f"zero in every run is left out; - : not in that run")
    set_key_columns(t, 2)   # the plain format repeats variant and the second key in blocks
    t.add_column("variant", no_wrap=True)
    t.add_column("metric", no_wrap=True)
    for i, run in enumerate(runs):
        t.add_column(run.label, justify="right", no_wrap=True)
        if i:
            t.add_column(f"{run.label} / {first}", justify="right", no_wrap=True)
    last = None
    for row in rows:
        # the variant's and lock classes' names are the runs': literal, not markup
        cells = [escape(row.variant) if row.variant != last else "", escape(row.metric)]
        if last is not None and row.variant != last:
            t.add_section()
        last = row.variant
        for i, c in enumerate(row.cells):
            cells.append(_value(c, row.unit))
            if i:
                cells.append(_ratio(c))
        t.add_row(*cells)
    return t


def print_comparison(runs: list[Run], console: Console,
                     floor_pct: float | None = None) -> list[MetricRow]:
    """`emul compare`'s output: the runs, the notes, the metrics; the rows compared."""
    rows = compare(runs, floor_pct)
    console.print(header_table(runs))
    for n in notes(runs):
        console.print(n)
    console.print(metrics_table(runs, rows))
    return rows
