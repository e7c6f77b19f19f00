"""The worker supervisor: spawn, handshake, send / expect, the start gate, waits, shutdown.

One supervisor owns one set of worker processes (``python -m workers <role>``) and the control
socket they talk to. The controller uses it for a run's actors; ``emul bench`` for its peer.

Protocol (emul/harness/control.py carries it; JSON only):

  worker → hello            the process is up and its socket connected
  setup  → worker           arena name and layout, the worker's row, CPUs, ticks per ns
  worker → ready            pinned, attached, compiled code loaded
  phase  → worker           {phase, seq, args, gate}; with gate the worker arrives at the start
                            gate and waits for the controller to open it for seq
  worker → done             one PhaseDone per phase (versioned; checked here), or error
  exit   → worker           leave

Anything unexpected ends the run with RunAborted naming the worker and the phase: a worker that
died (and how), stopped (SIGSTOP) for longer than STOPPED_GRACE_S, sent an error (its traceback
goes to the run's log), or did not answer in time.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import psutil
import zmq

from emul import PACKAGE_ROOT
from emul.errors import RunAborted
from emul.harness.arena import Arena
from emul.harness.control import ControlServer
from emul.harness.signals import INTERRUPTS
from emul.kernel.layout import CTL_GATE_ARRIVE, CTL_GATE_GO

STOPPED_GRACE_S = 2.0
POLL_MS = 50
SAMPLE_MS = 2          # poll interval while a phase's sampler runs
EXIT_GRACE_S = 2.0     # a worker asked to exit gets this long before SIGKILL
PHASE_DONE_VERSION = 2


@dataclass
class WorkerProc:
    """One worker process: its name (unique), role (the module under workers/), arena row."""

    name: str
    role: str
    index: int
    cpus: list[int]
    popen: subprocess.Popen | None = None
    stopped_since: float | None = None
    ran_on: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Usage:
    """What the worker's process did during the phase (psutil and /proc/self/sched)."""

    cpu_s: float
    wall_s: float
    voluntary: int
    involuntary: int
    migrations: int | None
    runqueue_wait_s: float | None = None    # runnable but another task had the CPU


@dataclass(frozen=True)
class PhaseDone:
    """A worker's one result per phase. ``result`` is a phase's own figures (most have none:
    the controller reads the measurements from the worker's row of shared memory)."""

    seq: int
    cpu_now: int
    cpus_allowed: list[int]
    usage: Usage | None
    result: dict

    @classmethod
    def from_msg(cls, name: str, msg: dict) -> "PhaseDone":
        if msg.get("v") != PHASE_DONE_VERSION:
            raise RunAborted(f"worker {name} sent a phase result of version {msg.get('v')!r}, "
                             f"expected {PHASE_DONE_VERSION} (a worker of another emul?)")
        try:
            usage = msg.get("usage")
            return cls(seq=int(msg["seq"]), cpu_now=int(msg["cpu_now"]),
                       cpus_allowed=[int(c) for c in msg["cpus_allowed"]],
                       usage=None if usage is None else Usage(**usage),
                       result=dict(msg.get("result") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise RunAborted(f"worker {name} sent a malformed phase result: {exc}") from None


class Supervisor:
    """The processes of one set of workers and their control socket."""

    def __init__(self, workers: list[WorkerProc], log_path: str | None = None,
                 on_phase: Callable[[str], None] | None = None, boost: bool = False) -> None:
        self.workers = workers
        self.boost = boost          # each worker runs at nice -20 in a session of its own
        self.nice: dict[str, int] = {}      # worker -> the nice it runs at
        self.by_name = {w.name: w for w in workers}
        self.log_path = log_path
        self.on_phase = on_phase
        self.server: ControlServer | None = None
        self.seq = 0
        self.dropped_messages = 0
        self._phase = "start-up"

    @property
    def control(self) -> ControlServer:
        """The control socket (from start until shutdown)."""
        if self.server is None:
            raise RunAborted(f"the control socket is closed during {self.phase}")
        return self.server

    @staticmethod
    def popen(w: WorkerProc) -> subprocess.Popen:
        if w.popen is None:
            raise RunAborted(f"worker {w.name} was never started")
        return w.popen

    @property
    def phase(self) -> str:
        """What the workers are doing now: in error messages, and shown live on a terminal."""
        return self._phase

    @phase.setter
    def phase(self, text: str) -> None:
        self._phase = text
        if self.on_phase is not None:
            self.on_phase(text)

    # --- start-up ------------------------------------------------------------------------------

    def start(self, arena: Arena, ticks_per_ns: float, timeout_s: float) -> None:
        """Spawn every worker, hand each its set-up, wait until all are ready; then unlink the
        arena's name (every worker has it mapped: nothing can leak it from here on)."""
        with INTERRUPTS.held():      # created and recorded for shutdown as one step
            self.server = ControlServer()
        self.phase = "worker start-up"
        for w in self.workers:
            with INTERRUPTS.held():
                w.popen = self._spawn(w)
        setup = {"type": "setup", "arena": arena.name, "layout": arena.layout.to_json(),
                 "ticks_per_ns": ticks_per_ns, "boost": self.boost}
        ready: set[str] = set()
        deadline = time.monotonic() + timeout_s
        while len(ready) < len(self.workers):
            name, msg = self.expect({"hello", "ready"}, deadline)
            w = self.by_name[name]
            if msg["type"] == "hello":
                self.send(name, dict(setup, index=w.index, cpus=w.cpus))
            else:
                ready.add(name)
                self.nice[name] = int(msg.get("nice", 0))
        arena.unlink()

    def _spawn(self, w: WorkerProc) -> subprocess.Popen:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(PACKAGE_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        # workers/__main__.py sets up the parent-death signal before the role's heavy imports
        cmd = [sys.executable, "-m", "workers", w.role, "--parent", str(os.getpid()),
               "--control", self.control.endpoint, "--name", w.name,
               "--token", self.control.token]
        if not self.log_path:
            return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=log)

    # --- messages ------------------------------------------------------------------------------

    def send(self, name: str, msg: dict) -> None:
        """Send to a worker; one that has vanished ends the run with the reason it died."""
        try:
            self.control.send(name, msg)
        except zmq.ZMQError:
            try:
                self.popen(self.by_name[name]).wait(timeout=5)  # gone: let check_workers say how
            except subprocess.TimeoutExpired:
                pass
            self.check_workers()
            raise RunAborted(f"worker {name} is unreachable during {self.phase}") from None

    def expect(self, types: set[str], deadline: float,
               on_poll: Callable[[], None] | None = None) -> tuple[str, dict]:
        """The next message of one of these types from any worker; errors end the run."""
        while True:
            if on_poll is not None:
                on_poll()
            got = self.control.recv(SAMPLE_MS if on_poll else POLL_MS, set(self.by_name))
            if got is not None:
                name, msg = got
                if msg["type"] == "error":
                    self.worker_failed(name, msg)
                if msg["type"] in types:
                    return name, msg
            self.check_workers()
            if time.monotonic() > deadline:
                raise RunAborted(f"no answer from the workers within the time limit during "
                                 f"{self.phase}")

    def worker_failed(self, name: str, msg: dict) -> None:
        """A worker's error message: its traceback to the log, one line to the user."""
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(f"--- worker {name} ---\n{msg.get('traceback', '')}\n")
        raise RunAborted(f"worker {name} failed during {self.phase}: {msg.get('message')}")

    def raise_pending_error(self) -> None:
        """Read what is queued on the socket; raise a worker's error if one sent it."""
        while self.server is not None:
            got = self.server.recv(0, set(self.by_name))
            if got is None:
                return
            if got[1]["type"] == "error":
                self.worker_failed(*got)

    # --- health --------------------------------------------------------------------------------

    def check_workers(self) -> None:
        """End the run if a worker has exited, or has been stopped for too long."""
        now = time.monotonic()
        for w in self.workers:
            proc = self.popen(w)
            rc = proc.poll()
            if rc is not None:
                self.raise_pending_error()     # it may have said why before it exited
                how = (f"was killed by {signal.Signals(-rc).name}" if rc < 0
                       else f"exited with status {rc}")
                raise RunAborted(f"worker {w.name} (pid {proc.pid}) {how} during {self.phase}")
            try:
                stopped = psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED
            except psutil.NoSuchProcess:
                continue
            if not stopped:
                w.stopped_since = None
                continue
            w.stopped_since = w.stopped_since or now
            if now - w.stopped_since > STOPPED_GRACE_S:
                raise RunAborted(f"worker {w.name} (pid {proc.pid}) stopped answering "
                                 f"(stopped for {now - w.stopped_since:.1f} s) during "
                                 f"{self.phase}")

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float,
                   on_poll: Callable[[], None] | None = None) -> None:
        """Poll predicate (every millisecond) while watching the workers."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            self.check_workers()
            if time.monotonic() > deadline:
                raise RunAborted(f"{self.phase} did not finish within {timeout_s:.0f} s")
            if on_poll is not None:
                on_poll()
            time.sleep(0.001)

    # --- phases --------------------------------------------------------------------------------

    def start_phase(self, ctl: np.ndarray, assignments: dict[str, tuple[str, dict]], timeout_s: float,
                    before_go: Callable[[], None] | None = None) -> int:
        """Send each named worker its phase, wait until all reached the gate, open it."""
        self.seq += 1
        ctl[CTL_GATE_ARRIVE] = 0
        for name, (phase, args) in assignments.items():
            self.send(name, {"type": "phase", "phase": phase, "seq": self.seq, "args": args})
        self.wait_until(lambda: ctl[CTL_GATE_ARRIVE] >= len(assignments), timeout_s)
        if before_go is not None:
            before_go()
        ctl[CTL_GATE_GO] = self.seq
        return self.seq

    def send_ungated(self, name: str, phase: str, args: dict | None = None) -> int:
        """A phase that starts at once, without the gate (a control-plane echo)."""
        self.seq += 1
        self.send(name, {"type": "phase", "phase": phase, "seq": self.seq, "args": args or {},
                         "gate": False})
        return self.seq

    def wait_done(self, names: set[str], timeout_s: float,
                  on_poll: Callable[[], None] | None = None) -> dict[str, PhaseDone]:
        """Every named worker's PhaseDone for the current phase."""
        out: dict[str, PhaseDone] = {}
        deadline = time.monotonic() + timeout_s
        while set(out) != names:
            name, msg = self.expect({"done"}, deadline, on_poll)
            if msg.get("seq") == self.seq and name in names:
                out[name] = PhaseDone.from_msg(name, msg)
                self.by_name[name].ran_on.add(out[name].cpu_now)
        return out

    # --- shutdown ------------------------------------------------------------------------------

    def shutdown(self, wake: Callable[[], None] | None = None) -> None:
        """Ask every worker to exit (``wake`` first breaks their compiled loops), SIGKILL those
        still there after EXIT_GRACE_S, close the socket. Idempotent."""
        if self.server is not None:
            for w in self.workers:
                if w.popen is not None and w.popen.poll() is None:
                    try:
                        self.server.send(w.name, {"type": "exit"})
                    except Exception:
                        pass
        if wake is not None:
            try:
                wake()
            except Exception:
                pass
        deadline = time.monotonic() + EXIT_GRACE_S
        for w in self.workers:
            if w.popen is None:
                continue
            try:
                w.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.popen.kill()
                w.popen.wait()
        if self.server is not None:
            self.dropped_messages = self.server.dropped
            self.server.close()
            self.server = None
