"""A real OpenSSH server on 127.0.0.1 for the tests (stdlib only).

``sshd_server()`` is a context manager: it makes sure ``/usr/sbin/sshd`` is there (installing
Debian's ``openssh-server`` with apt-get if it is not), writes a throw-away host key, client key,
``authorized_keys``, ``known_hosts`` and ``sshd_config`` in a temporary directory, starts
``sshd -D -e`` on a free port of 127.0.0.1, waits until it accepts connections, and yields an
:class:`Sshd` (or, when sshd cannot be had, a reason string the caller passes to
``pytest.skip``). On exit sshd is terminated and waited for.

    with sshd_server() as server:
        if isinstance(server, str):
            pytest.skip(server)
        ... ssh -p server.port -i server.key -o UserKnownHostsFile=server.known_hosts ...
"""
from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
INSTALL_TIMEOUT_S = 900.0
READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Sshd:
    host: str
    port: int
    user: str
    key: Path            # the client's private key (its public half is in authorized_keys)
    known_hosts: Path    # [127.0.0.1]:PORT with the server's host key
    directory: Path
    pid: int

    def ssh_args(self) -> list[str]:
        """The ssh(1) options that reach this server and check its host key."""
        return ["-p", str(self.port), "-i", str(self.key), "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
                f"{self.user}@{self.host}"]


def _tail(text: str | bytes | None, n: int = 400) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return (text or "").strip()[-n:]


def ensure_sshd(timeout_s: float = INSTALL_TIMEOUT_S) -> str | None:
    """None when /usr/sbin/sshd is (now) installed, else why not."""
    if SSHD.exists():
        return None
    apt = shutil.which("apt-get")
    if apt is None:
        return f"{SSHD} is missing and there is no apt-get to install openssh-server"
    if os.geteuid() != 0:
        return f"{SSHD} is missing and installing openssh-server needs root"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    deadline = time.monotonic() + timeout_s
    install = [apt, "install", "-y", "--no-install-recommends", "openssh-server"]
    last = ""
    for step in ([install], [[apt, "update"], install]):
        try:
            for cmd in step:
                left = max(1.0, deadline - time.monotonic())
                p = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=left,
                                   stdin=subprocess.DEVNULL)
                if p.returncode != 0:
                    last = f"{' '.join(cmd[1:])} exited {p.returncode}: {_tail(p.stderr)}"
                    break
        except (OSError, subprocess.TimeoutExpired) as exc:
            last = f"{type(exc).__name__}: {exc}"
            break
        if SSHD.exists():
            return None
    return f"{SSHD} is missing and openssh-server could not be installed ({last})"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                    "-f", str(path)], check=True, capture_output=True, timeout=60,
                   stdin=subprocess.DEVNULL)


def wait_listening(proc: subprocess.Popen, host: str, port: int, timeout_s: float) -> str | None:
    """None once host:port accepts a connection and answers with an SSH banner; else why not
    (sshd exited, or the deadline passed)."""
    deadline = time.monotonic() + timeout_s
    last = "no attempt"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"sshd exited {proc.returncode} before listening"
        try:
            with socket.create_connection((host, port), timeout=2.0) as s:
                s.settimeout(2.0)
                if s.recv(64).startswith(b"SSH-"):
                    return None
                last = "no SSH banner"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.05)        # between polls of the condition, not a wait in its place
    return f"sshd did not accept connections on {host}:{port} within {timeout_s:.0f} s ({last})"


def _children(pid: int) -> list[int]:
    """pid's live descendants (sshd's per-connection processes), from /proc."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                out += kids
                todo += kids
        except (OSError, ValueError):
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def stop(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """sshd terminated and waited for, and its sessions with it (they outlive the listener)."""
    kids = _children(proc.pid) if proc.poll() is None else []
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for k in kids:
            with contextlib.suppress(OSError):
                os.kill(k, sig)
        deadline = time.monotonic() + timeout_s
        while any(_alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.05)
        kids = [k for k in kids if _alive(k)]
        if not kids:
            break


@contextlib.contextmanager
def sshd_server(host: str = "127.0.0.1", setenv: dict[str, str] | None = None
                ) -> Iterator[Sshd | str]:
    """Yield a running sshd on ``host`` (see the module's docstring), or a reason string when
    sshd cannot be installed or started. ``setenv``: variables every session gets (sshd's
    SetEnv), e.g. a test's EMUL_HISTORY, which would not otherwise reach the remote side."""
    reason = ensure_sshd()
    if reason is not None:
        yield reason
        return
    with tempfile.TemporaryDirectory(prefix="emul-sshd-") as tmp:
        d = Path(tmp)
        os.chmod(d, 0o700)
        host_key, client_key = d / "ssh_host_ed25519_key", d / "client_ed25519"
        try:
            keygen(host_key, "emul-test-host")
            keygen(client_key, "emul-test-client")
        except (OSError, subprocess.SubprocessError) as exc:
            yield f"ssh-keygen failed: {type(exc).__name__}: {exc}"
            return
        authorized = d / "authorized_keys"
        authorized.write_text(client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        port = free_port(host)
        known = d / "known_hosts"
        host_pub = host_key.with_name(host_key.name + ".pub").read_text().split()
        known.write_text(f"[{host}]:{port} {host_pub[0]} {host_pub[1]}\n")
        config = d / "sshd_config"
        config.write_text("\n".join([
            f"ListenAddress {host}",
            f"Port {port}",
            f"HostKey {host_key}",
            f"AuthorizedKeysFile {authorized}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            f"PidFile {d / 'sshd.pid'}",
            "LogLevel INFO",
            # one SetEnv line: sshd keeps only the first line of a keyword
            *([" ".join(["SetEnv", *(f'"{k}={v}"' for k, v in setenv.items())])]
              if setenv else []),
            "",
        ]))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        with open(d / "sshd.log", "wb") as log:
            try:
                proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            except OSError as exc:
                yield f"cannot start {SSHD}: {exc}"
                return
            try:
                why = wait_listening(proc, host, port, READY_TIMEOUT_S)
                if why is not None:
                    stop(proc)
                    log.flush()
                    yield f"{why}: {_tail((d / 'sshd.log').read_bytes())}"
                    return
                yield Sshd(host, port, getpass.getuser(), client_key, known, d, proc.pid)
            finally:
                stop(proc)
