"""`emul farm` over real SSH, end to end, on this machine.

sshd is provided by tests/helpers/sshd.py: a real OpenSSH server (Debian's openssh-server,
installed with apt-get if /usr/sbin/sshd is missing) started for this module on a free port of
127.0.0.1, with a throw-away host key (written to a known_hosts file, so host keys are checked)
and a throw-away client key in its authorized_keys. Its sessions are given this test run's
EMUL_HISTORY, TMPDIR and EMUL_ARENA_TAG (sshd's SetEnv), so what runs on the "remote" side
keeps its history, temporary files and shared memory where the tests can check them. When sshd
cannot be had, the tests are skipped with the reason.

What is checked:
- `emul farm run --hosts 127.0.0.1` (the default scenario, one repeat) starts Dask's scheduler
  and one worker over SSH, runs the scenario there and exits 0; its results.json is the
  --each document with one cell, done, on host 127.0.0.1, every repeat's audit ok, both a sync
  and a non-sync variant; and afterwards nothing it started is alive: not the controller, no
  Dask scheduler or worker (distributed.cli.dask_spec), nothing else started through this
  sshd, no arena in /dev/shm, no control-socket or cell work directory;
- `emul farm hosts` describes the host (its name and architecture);
- a client key the server does not know is refused with exit 5 and one `emul: ` line.
"""
from __future__ import annotations

import json
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import run_emul, shm_entries

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.sshd import Sshd, keygen, sshd_server

RUN_TIMEOUT_S = 600
GONE_WAIT_S = 60.0      # how long the processes of a finished command may take to be gone


class Remote:
    """The module's sshd and the places its sessions were told to use."""

    def __init__(self, server: Sshd, tmp: Path, tag: str) -> None:
        self.server, self.tmp, self.tag = server, tmp, tag

    def options(self, key: Path | None = None) -> list[str]:
        s = self.server
        return ["--hosts", "127.0.0.1", "--ssh-port", str(s.port), "--ssh-user", s.user,
                "--ssh-key", str(key or s.key), "--ssh-known-hosts", str(s.known_hosts)]


@pytest.fixture(scope="module")
def remote(tmp_path_factory, own_history) -> Iterator[Remote]:
    tmp = tmp_path_factory.mktemp("farm-remote")
    tag = "f" + secrets.token_hex(4)
    env = {"EMUL_HISTORY": str(own_history), "TMPDIR": str(tmp), "EMUL_ARENA_TAG": tag}
    with sshd_server(setenv=env) as server:
        if isinstance(server, str):
            pytest.skip(f"no sshd for the farm tests: {server}")
        yield Remote(server, tmp, tag)


def _through(port: int) -> str:
    return f" 127.0.0.1 {port}"


def strays(remote: Remote, out: Path | None = None) -> list[str]:
    """What is still alive of the command's: its controller (`emul.cli ... run ... OUT`), a Dask
    scheduler or worker, or anything else started through the module's sshd (its sessions'
    SSH_CONNECTION names the server's port)."""
    found = []
    me = os.getpid()
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.info["pid"] == me:
                continue
            cmd = p.info["cmdline"] or []
            line = " ".join(cmd)
            if out is not None and "emul.cli" in line and "run" in cmd and str(out) in line:
                found.append(f"{p.pid} (controller): {line[:200]}")
                continue
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            conn = p.environ().get("SSH_CONNECTION", "")
            if conn.endswith(_through(remote.server.port)):
                what = "dask" if "distributed.cli.dask_spec" in line else "ssh session"
                found.append(f"{p.pid} ({what}): {line[:200]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def assert_all_gone(remote: Remote, out: Path | None = None) -> None:
    """Nothing of the command's alive, allowing GONE_WAIT_S for it to wind down (polled)."""
    deadline = time.monotonic() + GONE_WAIT_S
    left = strays(remote, out)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = strays(remote, out)
    assert not left, f"processes left running {GONE_WAIT_S:.0f} s after the command: {left}"
    assert shm_entries(f"emul-{remote.tag}-") == set(), "shared memory left behind"
    assert not [n for n in os.listdir(remote.tmp) if n.startswith("emul-ctl-")], \
        "control socket directory left behind"
    assert not [n for n in os.listdir(remote.tmp) if n.startswith("emul-farm-")], \
        "a cell's work directory left behind"


def explain(p: subprocess.CompletedProcess) -> str:
    return f"exit {p.returncode}\n--- stderr ---\n{p.stderr}\n--- stdout ---\n{p.stdout}"


def test_farm_run_on_loopback(remote: Remote, tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = run_emul("farm", "run", *remote.options(), "--repeats", "1", "--warmup", "0",
                 "-o", str(out), "--format", "plain", timeout=RUN_TIMEOUT_S)
    assert p.returncode == 0, explain(p)
    assert_all_gone(remote, out)
    results = out / "results.json"
    assert results.exists(), explain(p)
    doc = json.loads(results.read_text())
    farm = doc["farm"]
    assert farm["mode"] == "each"
    assert "127.0.0.1" in farm["hosts"]
    rows = doc["repeats"]
    assert rows, "no repeat rows"
    bad = [(r.get("variant"), r.get("audit")) for r in rows if not r["audit"]["ok"]]
    assert not bad, f"audit failed: {bad}"
    variants = {r["variant"] for r in rows}
    assert all(v.endswith(" @127.0.0.1") for v in variants), variants
    assert all(r.get("group") == "host=127.0.0.1" for r in rows), {r.get("group") for r in rows}
    assert "sync @127.0.0.1" in variants, variants
    assert variants - {"sync @127.0.0.1"}, f"no variant but sync: {variants}"
    cells = farm["cells"]
    assert len(cells) == 1, cells
    assert cells[0]["cell"] == "127.0.0.1", cells[0]["cell"]
    assert cells[0]["state"] == "done", cells[0]["state"]
    assert cells[0]["code"] == 0, cells[0]["code"]
    assert cells[0]["host"] == "127.0.0.1", cells[0]["host"]


def test_farm_hosts_describes_the_host(remote: Remote) -> None:
    p = run_emul("farm", "hosts", *remote.options(), "--format", "plain",
                 timeout=RUN_TIMEOUT_S)
    assert p.returncode == 0, explain(p)
    assert "127.0.0.1" in p.stdout, explain(p)
    assert platform.machine() in p.stdout, explain(p)
    assert_all_gone(remote)


def test_farm_refused_key_is_one_line(remote: Remote, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_ed25519"
    keygen(stranger, "not-authorized")
    p = run_emul("farm", "hosts", *remote.options(key=stranger), "--format", "plain",
                 timeout=RUN_TIMEOUT_S)
    assert p.returncode == 5, explain(p)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, explain(p)
    assert lines[0].startswith("emul: "), explain(p)
    assert "Traceback" not in p.stderr + p.stdout, explain(p)
    assert_all_gone(remote)
