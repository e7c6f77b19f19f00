"""The argument parser: one small function per subcommand, and the table that dispatches them.

Each subcommand names its function as "module:function" so that ``main`` imports only the
command it runs (``emul compare`` never loads numba).
"""
from __future__ import annotations

import argparse
from argparse import _SubParsersAction as Subparsers

from emul.harness.chaos import KINDS as CHAOS_KINDS
from emul.report.textout import FORMATS


def add_measuring(p: argparse.ArgumentParser) -> None:
    """How the repeats are measured: shared by run, replay and soak."""
    p.add_argument("--warmup", type=int, default=1, metavar="N",
                   help="unmeasured warm-up repeats per variant before the first (default 1)")
    p.add_argument("--no-boost", action="store_true",
                   help="leave the workers at normal priority (default: nice -20 in a session of "
                   "their own where allowed, so other tasks take little of their CPUs)")


def add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="reuse an -o directory that holds an "
                   "earlier run's outputs (they are removed first; other files stay)")


def add_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, help="rich: box tables (default on a terminal); "
                   "plain: ASCII at most 100 columns, wide tables in blocks (default in a pipe); "
                   "json: the summary as JSON on stdout, the rest on stderr")


def add_run(sub: Subparsers) -> None:
    r = sub.add_parser("run", help="run a scenario (default: scenarios/seed-unmap.yaml)")
    r.add_argument("scenario", nargs="?", help="scenario YAML file")
    r.add_argument("--profile", help="cost profile name or YAML path (overrides the scenario's)")
    r.add_argument("-o", "--output", help="output directory (default results/<name>-<time>)")
    r.add_argument("--repeats", type=int, help="override the scenario's repeats")
    r.add_argument("--csv", action="store_true",
                   help="also write every table and time series as CSV files")
    r.add_argument("--dilate", type=float, metavar="K",
                   help="time dilation: every target x K, every reported time / K, for a host "
                   "too slow for the profile (overrides the scenario's dilate)")
    r.add_argument("--only-group", type=int, metavar="K",
                   help="run only the Kth structural group of a matrix (1-based, in the order "
                   "of its vary: keys; emul farm --spread deals the groups out with it)")
    r.add_argument("--chaos", type=int, metavar="SEED",
                   help="inject one fault at a random moment (testing: the run must end cleanly)")
    r.add_argument("--chaos-kind", choices=CHAOS_KINDS, help="the fault --chaos injects "
                   "(default: chosen by the seed)")
    add_measuring(r)
    add_force(r)
    add_format(r)
    r.set_defaults(fn="emul.cli.run:cmd_run")


def add_replay(sub: Subparsers) -> None:
    rp = sub.add_parser("replay", help="replay a low-memory-killer storm from a log")
    rp.add_argument("trace", help="lmkd logcat, kernel OOM log, CSV or JSON Lines")
    rp.add_argument("--scenario", help="base scenario (default scenarios/replay-base.yaml)")
    rp.add_argument("--strategies", default="sync,bitmap,percpu-zsfree",
                    help="comma-separated strategies (default sync,bitmap,percpu-zsfree)")
    when = rp.add_mutually_exclusive_group()
    when.add_argument("--time-scale", type=float, help="multiply the recorded kill times "
                      "(default 1: as recorded)")
    when.add_argument("--back-to-back", action="store_true",
                      help="ignore the recorded times: each reaper takes the next kill at once")
    rp.add_argument("--size-scale", type=float, default=1.0,
                    help="multiply every victim's rss and swap (default 1)")
    rp.add_argument("--target-mb", type=float, default=100.0,
                    help="report the time until this much memory was returned (default 100)")
    rp.add_argument("--oom-swap-ratio", type=float, default=1.0,
                    help="kernel OOM lines carry no swap size: swap = anon-rss x this")
    rp.add_argument("--strict", action="store_true", help="refuse the trace at its first "
                    "malformed kill line (default: skip such lines, name them, replay the rest)")
    rp.add_argument("--profile", help="cost profile (overrides the base scenario's)")
    rp.add_argument("--repeats", type=int, help="override the base scenario's repeats")
    rp.add_argument("-o", "--output",
                    help="output directory (default results/replay-<trace>-<time>)")
    add_measuring(rp)
    add_force(rp)
    add_format(rp)
    rp.set_defaults(fn="emul.cli.replay:cmd_replay")


def add_soak(sub: Subparsers) -> None:
    sk = sub.add_parser("soak", help="cycle a scenario with every strategy for N minutes, "
                        "auditing every cycle")
    sk.add_argument("scenario", nargs="?",
                    help="scenario (default scenarios/contention-mixed.yaml)")
    sk.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    sk.add_argument("--strategies", help="comma-separated (default: all)")
    sk.add_argument("--profile", help="cost profile (overrides the scenario's)")
    sk.add_argument("-o", "--output", help="output directory (default results/soak-<name>-<time>)")
    add_measuring(sk)
    add_force(sk)
    add_format(sk)
    sk.set_defaults(fn="emul.cli.run:cmd_soak")


def add_info(sub: Subparsers) -> None:
    sub.add_parser("strategies", help="list the GC strategies").set_defaults(
        fn="emul.cli.info:cmd_strategies")
    sub.add_parser("profiles", help="list the built-in cost profiles").set_defaults(
        fn="emul.cli.info:cmd_profiles")
    tp = sub.add_parser("topo", help="this machine's CPUs: capacity, clusters, caches, and the "
                        "names a scenario may pin workers by")
    tp.add_argument("--sysfs-root", default="/sys", metavar="DIR",
                    help="read DIR/devices/system/cpu instead of /sys's (a recorded tree)")
    tp.add_argument("--json", action="store_true", help="print JSON")
    tp.set_defaults(fn="emul.cli.info:cmd_topo")


def add_bench(sub: Subparsers) -> None:
    b = sub.add_parser("bench", help="microbenchmarks of emul's machinery against an atomic add")
    b.add_argument("--quick", action="store_true",
                   help="fewer batches and iterations (seconds once compiled)")
    b.add_argument("-o", "--output", help="also write the rows as JSON to this file")
    b.set_defaults(fn="emul.cli.tools:cmd_bench")


def add_machinery(sub: Subparsers) -> None:
    m = sub.add_parser("machinery", help="emul's own work per kernel step on this host, beside "
                       "the profile's targets (no repeat runs)")
    m.add_argument("scenario", nargs="?", help="scenario YAML file (default: the run's)")
    m.add_argument("--profile", help="cost profile name or YAML path (overrides the scenario's)")
    m.add_argument("--dilate", type=float, metavar="K", help="time dilation to check against")
    m.add_argument("--fresh", action="store_true",
                   help="measure again even if this host's figures are cached")
    m.add_argument("--json", action="store_true", help="print the rows as JSON")
    add_format(m)
    m.set_defaults(fn="emul.cli.machinery:cmd_machinery")


def add_validate(sub: Subparsers) -> None:
    v = sub.add_parser("validate", help="every published figure emul can re-run here, beside "
                       "emul's (a report: exits 0)")
    v.add_argument("--rows", metavar="1,3,...", help="only these rows of the record")
    v.add_argument("--quick", action="store_true",
                   help="3 repeats per run instead of the scenarios' 5")
    v.add_argument("--scale", type=float, default=1.0, metavar="F",
                   help="run every workload at F of its size and scale the times back (a smoke "
                   "test: the published figures are for the full size; default 1)")
    v.add_argument("--real", action="store_true", help="add row 8: this machine's real "
                   "kernel against emul (runs emul calibrate --setup: root, a free zram device)")
    v.add_argument("-o", "--output", help="output directory (default results/validate-<time>)")
    add_format(v)
    v.set_defaults(fn="emul.cli.validate:cmd_validate")


def add_calibrate(sub: Subparsers) -> None:
    c = sub.add_parser("calibrate", help="measure this machine's kernel (zram swap) and write a "
                       "cost profile, then compare emul with it")
    c.add_argument("--setup", action="store_true", help="(root) configure an unused /dev/zramN "
                   "as swap for the measurement and restore it afterwards")
    c.add_argument("--device", help="the zram device, /dev/zramN (default: the active zram swap "
                   "device; with --setup, the first unused one)")
    c.add_argument("--mib", type=int, default=256, help="MiB per process (default 256)")
    c.add_argument("--repeats", type=int, default=5, help="repeats of each measurement, "
                   "median taken (default 5)")
    c.add_argument("--output", help="profile to write (default profiles/calibrated-<host>.yaml)")
    c.add_argument("--dilate", type=float, default=1.0, metavar="K", help="time dilation of "
                   "the emulated runs (emul emulating the host it runs on needs room for its own "
                   "machinery; default 1)")
    c.add_argument("--no-emulate", action="store_true", help="only measure and fit: no emul "
                   "runs (emul's own machinery is then not subtracted from the costs)")
    c.set_defaults(fn="emul.cli.tools:cmd_calibrate")


def add_results(sub: Subparsers) -> None:
    c = sub.add_parser("compare", help="the same figures of several runs side by side")
    c.add_argument("runs", nargs="+", metavar="RUN",
                   help="a results directory or results.json; the first is the reference")
    c.add_argument("--floor", type=float, metavar="PCT", help="the A/A floor: the difference "
                   "in %% identical runs of this scenario show on this host (default: estimated "
                   "from the runs' spread); smaller differences are never marked")
    add_format(c)
    c.set_defaults(fn="emul.cli.tools:cmd_compare")
    rr = sub.add_parser("report", help="re-render a run's summary.txt and plots from results.json")
    rr.add_argument("run", metavar="RUN", help="a results directory or results.json")
    rr.add_argument("-o", "--output", help="write here instead of next to the results")
    rr.add_argument("--csv", action="store_true", help="also write the figures as CSV files")
    add_format(rr)
    rr.set_defaults(fn="emul.cli.tools:cmd_report")


class VersionAction(argparse.Action):
    """--version, computed only when asked for: the git revision costs two subprocesses,
    which no other command should pay on every start."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from emul import __version__
        from emul.harness.hoststate import emul_version
        rev = emul_version().get("git")
        print(f"emul {__version__}" + (f" (git {rev})" if rev else ""))
        parser.exit()


def add_farm_target(p: argparse.ArgumentParser) -> None:
    """Where the farm is: hosts to start over SSH, or a running scheduler."""
    p.add_argument("--hosts", metavar="H1,H2,...", help="start a Dask scheduler (on the first "
                   "host) and one worker per host over SSH; a host listed twice gets two")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="a running Dask scheduler "
                   "whose workers offer the resource emul=1")
    p.add_argument("--ssh-port", type=int, help="SSH port of every host (default: ssh's)")
    p.add_argument("--ssh-user", help="SSH user (default: ssh's)")
    p.add_argument("--ssh-key", metavar="FILE", help="SSH private key (default: ssh's)")
    p.add_argument("--ssh-known-hosts", metavar="FILE|none", help="known_hosts file; none: do "
                   "not check host keys (default: ~/.ssh/known_hosts)")
    p.add_argument("--remote-python", metavar="PATH", help="the hosts' Python with emul "
                   "installed (default: this one's path)")
    p.add_argument("--connect-timeout", type=float, default=30.0, metavar="S",
                   help="give up reaching the scheduler or a host after S seconds (default 30)")


def add_farm(sub: Subparsers) -> None:
    f = sub.add_parser("farm", help="one scenario across several hosts, through Dask")
    fs = f.add_subparsers(dest="farm_command", metavar="{run,hosts}")
    fs.required = True       # `emul farm` alone: argparse names the two, exit 2
    r = fs.add_parser("run", help="run a scenario on every host (--each) or deal its groups "
                      "out over identical hosts (--spread)")
    r.add_argument("scenario", nargs="?", help="scenario YAML file (default: "
                   "scenarios/seed-unmap.yaml)")
    mode = r.add_mutually_exclusive_group()
    mode.add_argument("--each", dest="spread", action="store_false", help="the whole scenario "
                      "on every host, one group per host in the results (default)")
    mode.add_argument("--spread", dest="spread", action="store_true", help="the matrix's "
                      "groups dealt out over the hosts, merged as one machine's run (every "
                      "host must be the same machine)")
    r.add_argument("--profile", help="cost profile name or YAML path (sent to every host)")
    r.add_argument("--repeats", type=int, help="override the scenario's repeats")
    r.add_argument("-o", "--output", help="output directory (default results/farm-<name>-<time>)")
    add_farm_target(r)
    add_measuring(r)
    add_force(r)
    add_format(r)
    r.set_defaults(fn="emul.cli.farm:cmd_farm_run", spread=False)
    h = fs.add_parser("hosts", help="what each host is: arch, CPUs, topology, kernel, emul")
    add_farm_target(h)
    add_format(h)
    h.set_defaults(fn="emul.cli.farm:cmd_farm_hosts")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="emul", description="A multiprocess concurrency emulator of the Linux zram "
        "swap-slot freeing path.")
    ap.add_argument("--version", action=VersionAction, nargs=0,
                    help="print emul's version (and git revision in a checkout) and exit")
    sub = ap.add_subparsers(dest="command")
    for add in (add_run, add_replay, add_soak, add_info, add_bench, add_machinery, add_validate,
                add_calibrate, add_results, add_farm):
        add(sub)
    return ap
