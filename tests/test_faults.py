"""Faults: every way a run can die ends it cleanly (exit 3, partial results, nothing left)."""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import zmq

from conftest import run_emul, tiny_scenario, write_yaml
from emul.harness.control import ControlClient, ControlServer

KINDS = ("kill", "stop", "sigint", "sigterm", "raise-compiled", "raise-python")
REPEATS = 400     # far more than a run gets through before the fault


def long_scenario(tmp_path: Path) -> Path:
    doc = tiny_scenario(repeats=REPEATS, zram={"disksize": "32M"},
                        processes=[{"name": "victim", "vma": "16M", "swapped": 1.0}])
    return write_yaml(tmp_path / "long.yaml", doc)


def aborted_results(out: Path) -> dict:
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "aborted" and doc["reason"]
    assert len(doc["repeats"]) < REPEATS * 2          # it ended early, not at its natural end
    assert all(r["audit"]["ok"] for r in doc["repeats"])   # what finished, finished clean
    return doc


@pytest.mark.parametrize("kind", KINDS)
def test_each_fault_ends_the_run_cleanly(tmp_path: Path, kind: str, no_leftovers) -> None:
    out = tmp_path / "out"
    r = run_emul("run", str(long_scenario(tmp_path)), "--chaos", "11", "--chaos-kind", kind,
                 "-o", str(out))
    assert r.returncode == 3, r.stdout + r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    doc = aborted_results(out)
    assert doc["chaos"]["kind"] == kind and doc["chaos"]["target"]
    expected = {"kill": "killed by SIGKILL", "stop": "stopped answering",
                "sigint": "interrupted", "sigterm": "SIGTERM",
                "raise-compiled": "raised inside compiled code",
                "raise-python": "raised in the worker's Python code"}[kind]
    assert expected in doc["reason"] and expected in err[0]
    if kind.startswith("raise"):
        # the user sees one line; the worker's traceback is in the log
        log = (out / "run.log").read_text()
        assert "Traceback" in log and expected in log


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chaos_with_a_random_fault(tmp_path: Path, seed: int, no_leftovers) -> None:
    out = tmp_path / "out"
    r = run_emul("run", str(long_scenario(tmp_path)), "--chaos", str(seed), "-o", str(out))
    assert r.returncode == 3, r.stdout + r.stderr
    doc = aborted_results(out)
    assert doc["chaos"]["seed"] == seed and doc["chaos"]["kind"] in KINDS


def test_messages_from_strangers_are_dropped_and_counted() -> None:
    server = ControlServer()
    try:
        known = {"killer", "gc0"}
        good = ControlClient(server.endpoint, "killer", server.token)
        wrong_token = ControlClient(server.endpoint, "gc0", secrets.token_hex(16))
        stranger = ControlClient(server.endpoint, "intruder", server.token)
        raw = zmq.Context.instance().socket(zmq.DEALER)
        raw.setsockopt(zmq.IDENTITY, b"gc0-raw")
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(server.endpoint)
        wrong_token.send({"type": "hello"})                      # a known name, a wrong token
        stranger.send({"type": "hello"})                         # the token, an unknown name
        raw.send(b"\x80\x04not json, and never unpickled")       # a pickle's opening bytes
        raw.send(json.dumps({"type": "hello", "token": server.token}).encode()[:5])
        good.send({"type": "hello", "pid": 1})
        accepted = []
        for _ in range(100):     # sockets are not ordered among themselves: read all five
            got = server.recv(100, known)
            if got is not None:
                accepted.append(got)
            if accepted and server.dropped == 4:
                break
        assert [(name, msg["pid"]) for name, msg in accepted] == [("killer", 1)]
        assert server.dropped == 4
        for c in (good, wrong_token, stranger):
            c.close()
        raw.close()
    finally:
        server.close()


def test_the_control_socket_is_private(tmp_path: Path) -> None:
    import os
    import stat
    server = ControlServer()
    try:
        mode = stat.S_IMODE(os.stat(server.dir).st_mode)
        assert mode == 0o700 and server.endpoint.startswith("ipc://")
    finally:
        server.close()
    assert not os.path.exists(server.dir)


def test_results_count_dropped_messages(tmp_path: Path, no_leftovers) -> None:
    out = tmp_path / "out"
    r = run_emul("run", str(write_yaml(tmp_path / "t.yaml", tiny_scenario(repeats=1))),
                 "-o", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["control"] == {"dropped_messages": 0}


def test_a_scenario_larger_than_the_machine_is_refused(tmp_path: Path, no_leftovers) -> None:
    doc = tiny_scenario(zram={"disksize": "1T"})
    r = run_emul("run", str(write_yaml(tmp_path / "huge.yaml", doc)), "-o", str(tmp_path / "o"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "zram.disksize: expected a scenario whose shared memory fits this machine: it needs" \
        in r.stderr and "MiB" in r.stderr and "Traceback" not in r.stderr


def test_shared_memory_is_private_and_unlinked_once_unlinked() -> None:
    import os
    import stat

    import numpy as np

    from emul.harness.arena import Arena, Layout
    lay = Layout()
    lay.add("words", np.int64, 16)
    arena = Arena.create(lay)
    try:
        path = f"/dev/shm/{arena.name}"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        other = Arena.attach(arena.name, Layout.from_json(lay.to_json()))
        arena["words"][3] = 42
        assert other["words"][3] == 42          # the same memory, seen through a second mapping
        arena.unlink()
        assert not os.path.exists(path)
        assert other["words"][3] == 42          # mapped memory outlives the name
        other.close()
    finally:
        arena.unlink()
        arena.close()
