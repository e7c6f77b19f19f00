"""The control plane: ZeroMQ ROUTER (controller) <-> DEALER (workers), JSON messages only.

The socket lives in a private directory (mode 0700) as ``ipc://…/control``. Every message is a
JSON object with a ``type`` from MESSAGE_TYPES; worker messages carry the run's token. Nothing is
ever unpickled or evaluated. ZeroMQ never carries per-slot traffic: only set-up, phase starts and
phase results.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile

import zmq

WORKER_MESSAGES = {"hello", "ready", "done", "error"}
CTL_PREFIX = "emul-ctl-"
# a Unix socket's path holds at most 107 bytes (sun_path); ZeroMQ refuses longer ones
MAX_SOCKET_PATH = 100
FALLBACK_BASE = "/tmp"
CONTROLLER_MESSAGES = {"setup", "phase", "exit"}


class ControlServer:
    """The controller's end: bind, receive validated worker messages, send to a worker by name."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_hex(16)
        # created 0700; the pid in the name lets a later run sweep it if this one is killed
        self.dir = tempfile.mkdtemp(prefix=f"{CTL_PREFIX}{os.getpid()}-", dir=socket_base())
        self.endpoint = f"ipc://{self.dir}/control"
        self.ctx = zmq.Context()
        try:
            self.sock = self.ctx.socket(zmq.ROUTER)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            self.sock.bind(self.endpoint)
        except BaseException:
            self.ctx.destroy(0)
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.dropped = 0
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)

    def recv(self, timeout_ms: int, known: set[str]) -> tuple[str, dict] | None:
        """One worker message within timeout_ms, or None. Malformed or foreign ones are dropped."""
        if not self.poller.poll(timeout_ms):
            return None
        frames = self.sock.recv_multipart()
        if len(frames) != 2:
            self.dropped += 1
            return None
        ident, payload = frames
        try:
            name = ident.decode()
            msg = json.loads(payload)
        except (UnicodeDecodeError, ValueError):
            self.dropped += 1
            return None
        if (not isinstance(msg, dict) or msg.get("type") not in WORKER_MESSAGES
                or msg.get("token") != self.token or name not in known):
            self.dropped += 1
            return None
        return name, msg

    def send(self, name: str, msg: dict) -> None:
        assert msg["type"] in CONTROLLER_MESSAGES
        self.sock.send_multipart([name.encode(), json.dumps(msg).encode()])

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()
        shutil.rmtree(self.dir, ignore_errors=True)


def socket_base() -> str:
    """Where the control directory goes: TMPDIR, unless a socket there would have a path too
    long for a Unix socket (a deep TMPDIR), then /tmp."""
    base = tempfile.gettempdir()
    longest = len(os.path.join(base, f"{CTL_PREFIX}{os.getpid()}-xxxxxxxx", "control"))
    return base if longest <= MAX_SOCKET_PATH else FALLBACK_BASE


def control_bases() -> list[str]:
    """Every directory a control directory of this user may be in (for the sweep)."""
    return list(dict.fromkeys([tempfile.gettempdir(), FALLBACK_BASE]))


class ControlClient:
    """A worker's end: one DEALER named after the worker."""

    def __init__(self, endpoint: str, name: str, token: str) -> None:
        self.name, self.token = name, token
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 1000)
        self.sock.setsockopt(zmq.IDENTITY, name.encode())
        self.sock.connect(endpoint)

    def send(self, msg: dict) -> None:
        msg = dict(msg, token=self.token)
        assert msg["type"] in WORKER_MESSAGES
        self.sock.send(json.dumps(msg).encode())

    def recv(self, timeout_ms: int) -> dict | None:
        if not self.sock.poll(timeout_ms):
            return None
        try:
            msg = json.loads(self.sock.recv())
        except ValueError:
            return None
        if not isinstance(msg, dict) or msg.get("type") not in CONTROLLER_MESSAGES:
            return None
        return msg

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()
