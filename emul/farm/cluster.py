"""Reaching a farm's hosts: a running Dask scheduler by its address, or hosts over SSH.

A host is a Dask worker that offers the resource ``emul`` (``dask worker ... --nthreads 1
--resources emul=1 --name rk3588-a``). Over SSH (``--hosts``) the farm starts them itself with
Dask's SSH deployment (asyncssh): the scheduler on the first host, one worker per listed host,
each named after its host, and stops them all when it ends.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from emul.errors import Unreachable

CONNECT_TIMEOUT_S = 30.0
INSTALL_HINT = "pip install 'emul[farm]' (Dask distributed and asyncssh)"


@dataclass(frozen=True)
class SshOptions:
    """What asyncssh.connect is given for every host (None: asyncssh's default, which reads
    ~/.ssh/config, the user's keys and ~/.ssh/known_hosts)."""
    port: int | None = None
    user: str | None = None
    key: str | None = None
    known_hosts: str | None = None      # a file, or "none": do not check host keys
    remote_python: str | None = None    # the hosts' Python (default: this one's path)
    connect_timeout: float | None = None

    def connect_options(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.port is not None:
            out["port"] = self.port
        if self.user:
            out["username"] = self.user
        if self.key:
            out["client_keys"] = [self.key]
        if self.connect_timeout is not None:
            out["connect_timeout"] = self.connect_timeout
        if self.known_hosts:
            out["known_hosts"] = None if self.known_hosts == "none" else self.known_hosts
        return out


@dataclass
class Host:
    name: str            # the worker's name: what every table and group calls the host
    address: str         # the worker's address at the scheduler
    info: dict[str, Any] = field(default_factory=dict)   # identity.describe() on the host


def need_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise Unreachable(f"emul farm needs Dask distributed, which is not installed: "
                          f"{INSTALL_HINT}") from None


def host_names(hosts: list[str]) -> list[str]:
    """One unique name per listed host: a host listed twice gets #2, #3 (two workers on one
    machine)."""
    seen: dict[str, int] = {}
    out = []
    for h in hosts:
        seen[h] = seen.get(h, 0) + 1
        out.append(h if seen[h] == 1 else f"{h}#{seen[h]}")
    return out


def ssh_cluster(hosts: list[str], ssh: SshOptions) -> Any:
    """A SpecCluster of Dask's SSH scheduler and workers: the scheduler on hosts[0], a worker
    named after each host (what SSHCluster builds, with names)."""
    from distributed.deploy.spec import SpecCluster
    from distributed.deploy.ssh import Scheduler, Worker
    opts = ssh.connect_options()
    python = ssh.remote_python or sys.executable
    scheduler = {"cls": Scheduler, "options": {
        "address": hosts[0], "connect_options": opts, "remote_python": python,
        "kwargs": {"port": 0, "dashboard": False}}}
    workers = {name: {"cls": Worker, "options": {
        "address": host, "connect_options": opts, "remote_python": python,
        "worker_class": "distributed.Worker",
        "kwargs": {"nthreads": 1, "resources": {"emul": 1}, "name": name}}}
        for host, name in zip(hosts, host_names(hosts))}
    return SpecCluster(workers, scheduler, name="emul-farm")


class Farm:
    """A client of the farm's scheduler and the hosts it offers (closed on exit, and the SSH
    cluster with it)."""

    def __init__(self, scheduler: str | None, hosts: list[str] | None,
                 ssh: SshOptions = SshOptions(), timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        need_distributed()
        import logging
        # Dask logs to stderr; emul's stderr is its progress and, on failure, one line
        logging.getLogger("distributed").setLevel(logging.ERROR)
        from distributed import Client
        self.cluster: Any = None
        where = scheduler or ",".join(hosts or [])
        try:
            if scheduler:
                self.client = Client(scheduler, timeout=timeout_s, set_as_default=False)
            else:
                self.cluster = ssh_cluster(list(hosts or []), ssh)
                self.client = Client(self.cluster, timeout=timeout_s, set_as_default=False)
        except Exception as exc:       # asyncssh, OSError, TimeoutError: all one line
            self.close()
            raise Unreachable(f"cannot reach the farm at {where}: "
                              f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        self.where = where

    def workers(self) -> dict[str, dict[str, Any]]:
        """The scheduler's workers that offer emul, by address. Asked of the scheduler each
        time: client.scheduler_info() returns a cache that the client's own periodic refresh
        overwrites with a copy holding no workers, so a poll could see every host gone."""
        info = self.client.sync(self.client.scheduler.identity, n_workers=-1)["workers"]
        return {a: w for a, w in info.items() if (w.get("resources") or {}).get("emul", 0) >= 1}

    def hosts(self) -> list[Host]:
        """Every host, described by itself; refused if there is none."""
        from emul.farm.identity import describe
        workers = self.workers()
        if not workers:
            raise Unreachable(f"no worker at {self.where} offers the emul resource: start each "
                              f"host's worker with dask worker ADDRESS --nthreads 1 "
                              f"--resources emul=1 --name NAME")
        infos = self.client.run(describe, workers=list(workers))
        hosts = [Host(str(w.get("name", a)), a, infos.get(a, {})) for a, w in workers.items()]
        return sorted(hosts, key=lambda h: h.name)

    def close(self) -> None:
        client = getattr(self, "client", None)
        try:
            if client is not None:
                client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

    def __enter__(self) -> Farm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
