"""Issue 19: every signal at any moment, every odd environment — one clear outcome, nothing left.

Each test goes through the real command (signals to the real controller, real tmpfs mounts for
a full or read-only directory where the test has root) and asserts the documented exit code,
one line on stderr, no traceback, and nothing left in /dev/shm or TMPDIR (the ``no_leftovers``
fixture, tests/conftest.py).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from conftest import ROOT, emul_cmd, run_emul, shm_entries, tiny_scenario, write_yaml

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="mounting a tmpfs needs root")

EXIT_ABORTED, EXIT_USAGE, EXIT_IO = 3, 2, 5


def one_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@contextmanager
def tmpfs(path: Path, size: str = "64k", ro: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(emul_cmd(*args), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def wait_for(predicate, what: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    """Poll until predicate() holds (the run got somewhere), the run ends, or timeout."""
    import time
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s:.0f} s")
        time.sleep(0.005)


def status_of(out: Path) -> str | None:
    try:
        return json.loads((out / "results.json").read_text())["status"]
    except FileNotFoundError:
        return None


def tagged_arenas() -> set[str]:
    return shm_entries(f"emul-{os.environ['EMUL_ARENA_TAG']}-")


@pytest.fixture
def long_run(tmp_path):
    return write_yaml(tmp_path / "long.yaml", tiny_scenario(repeats=6))


# --- signals -------------------------------------------------------------------------------


def test_two_signals_at_random_moments_leave_nothing(tmp_path, no_leftovers, long_run):
    """A second SIGINT, SIGTERM or SIGHUP 0.3 s after the first, at 20 random moments from
    start-up to the last file written: every time exit 3 (or 0 when the run had finished its
    measuring: the files are then finished first), one line, results.json agreeing with the
    exit code, and nothing left in /dev/shm or TMPDIR (no_leftovers checks the last; each
    trial checks its own)."""
    import time
    rng = random.Random(19)
    t0 = time.monotonic()
    r = run_emul("run", str(long_run), "-o", str(tmp_path / "plain"))
    assert r.returncode == 0, r.stderr
    span = time.monotonic() - t0               # how long a whole run takes here
    sigs = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    for trial in range(20):
        out = tmp_path / f"out{trial}"
        sig = sigs[trial % 3]
        proc = start("run", str(long_run), "-o", str(out))
        time.sleep(rng.uniform(0.2, span))     # the moment is what the trial varies
        proc.send_signal(sig)
        time.sleep(0.3)
        if proc.poll() is None:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, err
        assert proc.returncode in (0, EXIT_ABORTED), (trial, proc.returncode, err)
        if proc.returncode == EXIT_ABORTED:
            one_line(err)
            assert status_of(out) in (None, "aborted"), (trial, err)
        else:
            assert status_of(out) == "ok" and (out / "summary.txt").exists(), (trial, err)
        assert not tagged_arenas(), (trial, err)
        assert not [n for n in os.listdir(os.environ["TMPDIR"]) if n.startswith("emul-ctl-")]


def test_a_signal_while_the_files_are_written_lets_them_finish(tmp_path, no_leftovers):
    """SIGTERM twice once the tables are printed (the files are written after them): the run
    finishes every file, says the signal came then, and exits as the run did (0), its
    results.json saying ok."""
    sc = write_yaml(tmp_path / "s.yaml", tiny_scenario(repeats=1))
    out = tmp_path / "out"
    proc = start("run", str(sc), "-o", str(out), "--format", "plain")
    for line in proc.stdout:
        if line.startswith("+"):             # the first table's border: writing starts next
            break
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "SIGTERM arrived while the results were being written" in one_line(err)
    assert status_of(out) == "ok"
    assert {"summary.txt", "trace.json", "memory.png", "timesplit.png"} <= set(os.listdir(out))
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_sighup_ends_the_run_like_sigterm(tmp_path, no_leftovers, long_run):
    out = tmp_path / "out"
    proc = start("run", str(long_run), "-o", str(out))
    for line in proc.stdout:
        if "repeat 2/" in line:
            break
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_ABORTED
    assert "interrupted (signal SIGHUP)" in one_line(err)
    assert status_of(out) == "aborted"


# --- what a SIGKILL leaves, and orphans -----------------------------------------------------


def test_a_killed_controllers_arena_and_socket_are_swept_by_the_next_run(tmp_path,
                                                                         no_leftovers, long_run):
    """SIGKILL while the workers start (the arena exists, not yet unlinked): the workers die
    with it, and the next emul command removes the arena and the control directory, saying
    so."""
    proc = start("run", str(long_run), "-o", str(tmp_path / "out"))
    wait_for(lambda: bool(tagged_arenas()), "arena in /dev/shm", proc)
    proc.kill()
    proc.wait()
    left = tagged_arenas()
    assert left, "the kill came after the arena was unlinked: nothing to sweep"
    r = run_emul("strategies")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    # gone (another emul run on this machine may have swept it first: every run sweeps)
    assert not tagged_arenas()


def test_the_sweep_takes_only_what_dead_controllers_left(tmp_path, monkeypatch):
    """In-process: an arena and a control directory of a dead pid go; those of a live pid
    stay, and so does an arena whose lock is held (a live controller in another pid
    namespace, whose pid means nothing here)."""
    import fcntl
    import secrets

    from emul.harness import leftovers
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        def plant(pid: int) -> tuple[Path, Path]:
            arena = Path("/dev/shm") / f"emul-sw{secrets.token_hex(3)}-{pid}-{secrets.token_hex(4)}"
            arena.write_bytes(b"")
            ctl = tmp_path / f"emul-ctl-{pid}-{secrets.token_hex(4)}"
            ctl.mkdir()
            return arena, ctl
        gone, kept, locked = plant(dead.pid), plant(alive.pid), plant(dead.pid)[0]
        fd = os.open(locked, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        removed = leftovers.sweep()
        assert str(gone[0]) in removed or not gone[0].exists()
        assert not gone[0].exists() and not gone[1].exists()
        assert kept[0].exists() and kept[1].exists() and locked.exists()
        os.close(fd)
    finally:
        alive.kill()
        alive.wait()
        for p in Path("/dev/shm").glob("emul-sw*"):
            p.unlink()


def test_workers_of_a_killed_controller_die_under_a_subreaper(tmp_path, no_leftovers,
                                                                long_run):
    """A subreaper (systemd --user, PR_SET_CHILD_SUBREAPER) adopts the workers of a killed
    controller: they must notice that their parent is no longer the controller (not that it is
    1) and leave at once, whatever moment the kill came."""
    launcher = ROOT / "tests" / "helpers" / "subreaper.py"
    for moment in ("spawned", "ready"):
        r = subprocess.run([sys.executable, str(launcher), moment, *emul_cmd(
            "run", str(long_run), "-o", str(tmp_path / f"out-{moment}"))], cwd=ROOT,
            capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        report = json.loads(r.stdout)
        assert report["workers_seen"] >= 1
        assert report["left_after_s"] < 10, report       # not the 120 s set-up timeout
        assert not report["still_alive"], report
    # what the SIGKILLed controllers left (their control directories) goes with the next run
    r = run_emul("strategies")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert not [n for n in os.listdir(os.environ["TMPDIR"]) if n.startswith("emul-ctl-")]


# --- output directories --------------------------------------------------------------------


def test_two_runs_on_one_output_directory(tmp_path, no_leftovers, long_run):
    """A second run on an -o a live run holds is refused, naming the first's pid; an -o with
    an earlier run's outputs is refused without --force, and --force replaces them."""
    out = tmp_path / "out"
    first = start("run", str(long_run), "-o", str(out), "--csv")
    wait_for(lambda: (out / "run.log").exists(), "run.log", first)
    r = run_emul("run", str(long_run), "-o", str(out))
    assert r.returncode == EXIT_USAGE
    assert f"in use by another emul run (pid {first.pid})" in one_line(r.stderr)
    first.communicate(timeout=300)
    assert first.returncode == 0
    r = run_emul("run", str(long_run), "-o", str(out), "--repeats", "1")
    assert r.returncode == EXIT_USAGE and "--force" in one_line(r.stderr)
    assert (out / "summary.csv").exists()
    r = run_emul("run", str(long_run), "-o", str(out), "--repeats", "1", "--force")
    assert r.returncode == 0, r.stderr
    assert not (out / "summary.csv").exists(), "an earlier run's file beside this run's"
    assert json.loads((out / "results.json").read_text())["scenario"]["repeats"] == 1


@needs_root
def test_a_full_output_directory_is_one_line_and_no_tmp_file(tmp_path, no_leftovers):
    """ENOSPC on -o: the tables are printed first, then exit 5 naming the file; no .tmp file
    is left behind."""
    sc = write_yaml(tmp_path / "s.yaml", tiny_scenario(repeats=1))
    with tmpfs(tmp_path / "full", "24k") as out:
        r = run_emul("run", str(sc), "-o", str(out), "--format", "plain")
        assert r.returncode == EXIT_IO, r.stderr
        line = one_line(r.stderr)
        assert "No space left on device" in line and str(out) in line
        assert "unmap" in r.stdout                   # the figures reached the terminal
        assert not [p for p in out.iterdir() if ".tmp" in p.name]


@needs_root
def test_read_only_output_and_shm(tmp_path, no_leftovers):
    """A read-only -o, a read-only /dev/shm (in a mount namespace of the test's own) and
    `emul report` into a read-only directory: exit 5, one line naming the place."""
    sc = write_yaml(tmp_path / "s.yaml", tiny_scenario(repeats=1))
    with tmpfs(tmp_path / "ro", ro=True) as ro:
        r = run_emul("run", str(sc), "-o", str(ro))
        assert r.returncode == EXIT_IO and "Read-only file system" in one_line(r.stderr)
        ok = tmp_path / "ok"
        assert run_emul("run", str(sc), "-o", str(ok)).returncode == 0
        r = run_emul("report", str(ok), "-o", str(ro))
        assert r.returncode == EXIT_IO and "Read-only file system" in one_line(r.stderr)
    shell = (f"mount --make-rprivate / && mount -t tmpfs -o ro,size=2g tmpfs /dev/shm && "
             f"exec {' '.join(emul_cmd('run', str(sc), '-o', str(tmp_path / 'o2')))}")
    r = subprocess.run(["unshare", "-m", "sh", "-c", shell], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    if "unshare failed" in r.stderr or "Operation not permitted" in r.stderr:
        pytest.skip(f"no mount namespace here: {r.stderr.strip()}")
    assert r.returncode == EXIT_IO, r.stderr
    assert "cannot create the arena in /dev/shm: Read-only file system" in one_line(r.stderr)


def test_long_tmpdir_and_ascii_output(tmp_path, no_leftovers):
    """A TMPDIR deeper than a Unix socket's path allows, and PYTHONIOENCODING=ascii: the run
    works (the socket goes to /tmp, the output replaces what ASCII cannot carry)."""
    deep = Path(os.environ["TMPDIR"]) / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    sc = write_yaml(tmp_path / "s.yaml", tiny_scenario(repeats=1))
    proc = start("run", str(sc), "-o", str(tmp_path / "out"),
                 env={"TMPDIR": str(deep), "PYTHONIOENCODING": "ascii"})
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and out.isascii() and "unmap" in out
    assert not [n for n in os.listdir("/tmp") if n.startswith(f"emul-ctl-{proc.pid}-")]


# --- the compiled-code cache ---------------------------------------------------------------


def cache_dir_with(env: dict) -> subprocess.CompletedProcess:
    code = "import emul, os; print(os.environ['NUMBA_CACHE_DIR']); print(emul.cache_problem())"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={k: v for k, v in {**os.environ, **env}.items()
                                          if k != "NUMBA_CACHE_DIR"})


@needs_root
def test_an_unwritable_home_falls_back_to_a_private_cache(tmp_path):
    """HOME read-only: the cache goes to a directory of this user's own under TMPDIR (0700),
    and numba is told to use no other (never the stale-prone cache beside the sources)."""
    with tmpfs(tmp_path / "home", ro=True) as home:
        r = cache_dir_with({"HOME": str(home), "XDG_CACHE_HOME": "", "TMPDIR": str(tmp_path)})
        path, problem = r.stdout.split()
        assert path.startswith(str(tmp_path / f"emul-{os.getuid()}-cache")) and problem == "None"
        assert (tmp_path / f"emul-{os.getuid()}-cache").stat().st_mode & 0o077 == 0
    code = "import emul, os; print(os.environ['NUMBA_CACHE_LOCATOR_CLASSES'])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "UserProvidedCacheLocator"


@needs_root
def test_no_writable_cache_is_one_line(tmp_path, no_leftovers):
    """Neither HOME nor TMPDIR writable (or full): emul run says so in one line, exit 5."""
    sc = write_yaml(tmp_path / "s.yaml", tiny_scenario(repeats=1))
    with tmpfs(tmp_path / "home", ro=True) as home, tmpfs(tmp_path / "tmp", ro=True) as tmp:
        env = {**os.environ, "HOME": str(home), "TMPDIR": str(tmp)}
        env.pop("XDG_CACHE_HOME", None)
        env.pop("NUMBA_CACHE_DIR", None)
        r = subprocess.run(emul_cmd("run", str(sc), "-o", str(tmp_path / "out")), cwd=ROOT,
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == EXIT_IO
        assert "no writable directory for the compiled-code cache" in one_line(r.stderr)


# --- results that measure nothing, bounds --------------------------------------------------


def test_a_scenario_that_swaps_nothing_is_refused(tmp_path, no_leftovers):
    sc = write_yaml(tmp_path / "s.yaml", tiny_scenario(
        processes=[{"name": "victim", "vma": "8M", "swapped": 0}]))
    r = run_emul("run", str(sc))
    assert r.returncode == EXIT_USAGE and "swapped: 0" in one_line(r.stderr)


def test_repeats_has_the_scenarios_upper_bound(tmp_path, no_leftovers):
    sc = write_yaml(tmp_path / "s.yaml", tiny_scenario())
    r = run_emul("run", str(sc), "--repeats", "100000")
    assert r.returncode == EXIT_USAGE and "from 1 to 1000" in one_line(r.stderr)


# --- in-process: the pieces behind the promises ---------------------------------------------


def test_a_failed_plot_leaves_no_file(tmp_path, monkeypatch):
    """A plot whose write dies half-way leaves neither a 0-byte PNG nor a temporary file."""
    from matplotlib.figure import Figure

    from emul.report import plots

    def half_then_fail(self, path, **kw):
        Path(path).write_bytes(b"")
        raise OSError(28, "No space left on device", str(path))
    monkeypatch.setattr(Figure, "savefig", half_then_fail)
    monkeypatch.setattr(plots, "figures", lambda doc: {"memory": Figure()})
    with pytest.raises(OSError):
        plots.render_all({"repeats": []}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_narrow_terminal_gets_plain_progress_lines():
    import io

    from rich.console import Console

    from emul.cli.progress import Progress
    buf = io.StringIO()
    p = Progress(Console(file=buf, width=20, force_terminal=True))
    p.expect(3)
    p("repeat 1/3: bitmap, a long line that a live status would wrap")
    p.stop()
    assert p.status is None                       # no live line to wrap into garbage
    assert "repeat 1/3" in buf.getvalue()


def test_interrupts_are_raised_once_and_never_inside_clean_up():
    """The handler's states, in-process: the first signal raises, a second while the clean-up
    holds is noted; a region's end raises what was noted while nothing was armed."""
    from emul.harness.signals import Interrupts
    ints = Interrupts()
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        with ints.catching():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(10**6):
                    pass
            finally:
                ints.hold()
                os.kill(os.getpid(), signal.SIGINT)      # noted: the clean-up goes on
                for _ in range(10**5):
                    pass
                assert ints.noted == ["SIGINT"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt, match="SIGHUP"):
        with ints.catching():
            with ints.held():
                os.kill(os.getpid(), signal.SIGHUP)
                for _ in range(10**5):
                    pass
            raise AssertionError("the noted SIGHUP was not raised when the hold ended")


def test_a_phase_shorter_than_a_tick_still_shows_its_cpu_time():
    """The workers' CPU time comes from schedstat (ns), not from 10 ms ticks: a busy phase of
    a few ms is seen as busy by the same-CPU check."""
    import psutil as ps

    from workers.base import schedstat_ns, usage_delta, usage_snapshot
    if schedstat_ns(0) is None:
        pytest.skip("this kernel has no /proc/self/schedstat")
    proc = ps.Process()
    before = usage_snapshot(proc)
    import time
    end = time.perf_counter() + 0.003
    while time.perf_counter() < end:
        pass
    # the kernel brings a running task's sum_exec_runtime up to date at a tick or a pass
    # through the scheduler (a worker's phase ends in one: it blocks on its socket); a 3 ms
    # spin may see no tick, so yield once, as the worker's block would
    os.sched_yield()
    d = usage_delta(before, usage_snapshot(proc))
    # ns resolution: more than nothing, and not a whole number of 10 ms ticks
    assert d["cpu_s"] > 0 and round(d["cpu_s"] * 1e9) % 10_000_000 != 0, d


def test_another_emul_run_on_the_same_cpus_is_seen(tmp_path):
    """A worker of another controller (here a real worker process waiting for its set-up, under
    a shell standing in for that controller) is found with its CPUs, and named in the
    warnings."""
    from emul.harness.leftovers import other_runs, sharing_warning
    from emul.report.stability import stability_warnings
    cmd = (f"taskset -c 0 {sys.executable} -m workers killer --parent $$ --control "
           f"ipc://{tmp_path}/nobody --name killer --token x & wait")
    shell = subprocess.Popen(["sh", "-c", cmd], cwd=ROOT)
    try:
        wait_for(lambda: any(r.pid == shell.pid for r in other_runs()), "the worker", shell, 60)
        run = next(r for r in other_runs() if r.pid == shell.pid)
        assert 0 in run.cpus
        assert f"pid {shell.pid} on CPU 0" in (sharing_warning({0}) or "")
    finally:
        for child in psutil.Process(shell.pid).children(recursive=True):
            child.kill()
        shell.kill()
        shell.wait()
    doc = {"repeats": [], "summary": [],
           "host": {"other_emul_runs": [{"pid": 7, "cpus": [0, 1]}]}}
    assert any("another emul run was live on this run's CPUs (pid 7 on CPU 0, 1)" in w
               for w in stability_warnings(doc))


def test_storms_that_measure_little_are_refused_or_warned(tmp_path, no_leftovers):
    """A storm whose kills free 0 kB is refused; a log whose time goes back says where."""
    zero = tmp_path / "zero.csv"
    zero.write_text("time_ms,name,rss_kb,swap_kb\n0,a,0,0\n5,b,0,0\n")
    r = run_emul("replay", str(zero))
    assert r.returncode == EXIT_USAGE and "frees 0 kB" in one_line(r.stderr)
    from emul.cli.replay import replay_warnings
    from emul.replay.traces import parse_trace
    log = ("03-14 10:02:12.000   612   612 I lowmemorykiller: Kill 'a' (100), uid 1, "
           "oom_score_adj 900 to free 1000kB rss, 2000kB swap\n"
           "03-14 10:02:11.000   612   612 I lowmemorykiller: Kill 'b' (101), uid 1, "
           "oom_score_adj 900 to free 1000kB rss, 2000kB swap\n")
    trace = parse_trace(log, "back.log")
    assert trace.stepped_back == (2,)
    assert any("the time goes back at 1 kill line (line 2" in w
               for w in replay_warnings(trace, "back.log"))


def test_a_trace_whose_name_is_not_utf8_replays(tmp_path, no_leftovers):
    """A trace file name with a byte that is no UTF-8 (a name from another system): the replay
    runs, its plot's title shows the byte escaped, summary.txt and results.json are written."""
    name = os.fsencode(tmp_path) + b"/storm-\xff.log"
    with open(name, "wb") as f:
        f.write((ROOT / "scenarios" / "traces" / "burst.log").read_bytes())
    out = tmp_path / "out"
    r = subprocess.run([*emul_cmd("replay"), name, "--repeats", "1", "--warmup", "0",
                        "--strategies", "sync,bitmap", "-o", str(out)], cwd=ROOT,
                       capture_output=True, timeout=600)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    assert "Traceback" not in err
    assert {"replay.png", "summary.txt", "results.json"} <= set(os.listdir(out))
