#!/usr/bin/env python3
"""Compare `emul bench`'s rows with another revision's, measured in one sitting.

    .venv/bin/python scripts/bench_against.py REV [--rounds N] [--rows enqueue]

Checks REV out in a temporary git worktree and runs `emul bench --quick` alternately from it
and from this tree (the same venv; PYTHONPATH picks the tree), N rounds (default 8). Rounds
taken in turn see the same host, so a shared or throttled machine moves both sides alike; the
table gives, per row, the median ns of each side and their ratio, raw and as multiples of each
bench's own floor (the atomic add). The first round compiles each side's kernels (minutes).

It is how issue 20's "measuring adds no shared traffic" check was made: enqueue rows of the
tree against the revision before the contention accounting (bac960b), within 10 %.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench(tree: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    subprocess.run([sys.executable, "-m", "emul.cli", "bench", "--quick", "-o", str(out)],
                   cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rev")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--rows", default="enqueue", help="row keys starting with this (default "
                    "enqueue; '' for every row)")
    args = ap.parse_args()
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="emul-bench-against-") as tmp:
        other = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(other),
                        args.rev], check=True)
        try:
            for r in range(1, args.rounds + 1):
                print(f"round {r}/{args.rounds}", file=sys.stderr)
                for side, tree in (("rev", other), ("tree", ROOT)):
                    doc = bench(tree, Path(tmp) / f"{side}-{r}.json")
                    for row in doc["rows"]:
                        if row["key"].startswith(args.rows) and row.get("ns"):
                            samples.setdefault(row["key"], {}).setdefault(side, []).append(
                                (row["ns"], row["ns"] / doc["floor_ns"]))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)],
                           check=False)
    print(f"{'row':30s} {args.rev[:12]:>12s} {'this tree':>10s} {'ratio':>7s} {'floor-rel':>9s}")
    for key, sides in samples.items():
        if len(sides) < 2:
            continue
        a, b = (statistics.median(ns for ns, _ in sides[s]) for s in ("rev", "tree"))
        fa, fb = (statistics.median(f for _, f in sides[s]) for s in ("rev", "tree"))
        print(f"{key:30s} {a:10.1f}ns {b:8.1f}ns {b / a:7.2f} {fb / fa:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
