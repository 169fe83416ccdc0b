"""Session-scoped pytest fixtures for the real servers of `tests/services/` (mariadb.py, postgres.py, slurm.py).

Registered for the whole suite by `pytest_plugins = ["tests.services.fixtures"]` in
`tests/conftest.py`. Each server starts the first time a test asks for it, once per test run, and
stops when the run ends (pass, fail or Ctrl-C); the teardown then fails loudly if any process it
started is still alive.

- `mariadb`, `postgres`: `MariaDBInfo` / `PostgresInfo` (a database `sweeps`, a user
  `sweeper` with a random password; `url_template`, `env`, `url()`, `restart()`, `create_database()`).
- `mariadb_database`, `postgres_database`: a fresh database on that server for one test, dropped after.
- `slurm`: `SlurmInfo`, a one-node cluster with two fake GPUs and slurmdbd (own MariaDB);
  pass `slurm.env` to every subprocess.
- `slurm_clean`: the same cluster for one test; every job left in the queue is cancelled after it.

Without the packages (`tests/services/install-packages`) or without root, these fixtures skip the
test, except under CI (`CI` set), where they fail.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.services.base import missing_binaries, process_alive, tagged_processes
from tests.services.mariadb import MariaDBInfo, mariadb_server
from tests.services.postgres import PostgresInfo, postgres_server
from tests.services.slurm import SlurmInfo, slurm_cluster

DAEMON_NAMES = ("munged", "slurmctld", "slurmd", "slurmdbd", "slurmstepd", "mariadbd", "postgres")
_tearing_down = False  # set once a session server starts stopping; see _services_sigterm


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"service tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def require(kind: str, needs_root: bool = False) -> None:
    missing = missing_binaries(kind)
    if missing:
        _unavailable(f"{kind} is not installed ({', '.join(missing)}); run: sudo bash tests/services/install-packages")
    if needs_root and os.geteuid() != 0:
        _unavailable(f"the {kind} test cluster needs root (slurmd launches jobs, mknod makes the fake GPUs)")


def _leftovers(tag: str, pids: list[int | None]) -> list[str]:
    """Processes named like our daemons (pgrep -x) that carry our tag or have one of our PIDs."""
    ours = {pid for pid in pids if pid}
    tagged = {pid for pid, _ in tagged_processes(tag)}
    found = []
    for name in DAEMON_NAMES:
        result = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
        for line in result.stdout.split():
            pid = int(line)
            if (pid in ours or pid in tagged) and process_alive(pid):
                found.append(f"{name}[{pid}]")
    # Anything else still carrying the tag (a job's sleep, a shell).
    found += [f"{name}[{pid}]" for pid, name in tagged_processes(tag) if name not in DAEMON_NAMES]
    return found


def _begin_teardown() -> None:
    global _tearing_down
    _tearing_down = True


def check_stopped(what: str, tag: str, pids: list[int | None]) -> None:
    left = _leftovers(tag, pids)
    if left:
        raise RuntimeError(f"{what} left processes running after its teardown: {', '.join(left)}")


@pytest.fixture(scope="session")
def _services_sigterm() -> Iterator[None]:
    """Turn SIGTERM (CI timeouts, `kill`) into KeyboardInterrupt so the teardowns run.

    A SIGTERM that arrives while the servers are being stopped is ignored: the stop is bounded and
    an interrupt in the middle of it would leave processes or directories behind.
    """
    previous = signal.getsignal(signal.SIGTERM)
    installed = False
    if previous in (signal.SIG_DFL, None):
        def interrupt(signum, frame):  # noqa: ARG001
            if not _tearing_down:
                raise KeyboardInterrupt("SIGTERM")
        try:
            signal.signal(signal.SIGTERM, interrupt)
            installed = True
        except ValueError:  # not the main thread
            pass
    yield
    if installed:
        signal.signal(signal.SIGTERM, previous)


def _database_server(kind: str, start: Callable[[Path], Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require(kind)
    with start(tmp_path_factory.mktemp(kind)) as info:
        tag, pids = info.tag, [info.pid]
        yield info
        _begin_teardown()
        pids.append(info.pid)  # a restart() changes it
    check_stopped(kind, tag, pids)


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory, _services_sigterm: None) -> Iterator[MariaDBInfo]:
    yield from _database_server("mariadb", mariadb_server, tmp_path_factory)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory, _services_sigterm: None) -> Iterator[PostgresInfo]:
    yield from _database_server("postgres", postgres_server, tmp_path_factory)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory, _services_sigterm: None) -> Iterator[SlurmInfo]:
    require("slurm", needs_root=True)
    with slurm_cluster(tmp_path_factory.mktemp("slurm"), gpus=2, cpus=2, with_dbd=True) as info:
        tag = info.tag
        pids = list(info.pids().values())
        if info.mariadb is not None:
            pids.append(info.mariadb.pid)
        yield info
        _begin_teardown()
    check_stopped("slurm", tag, pids)


@pytest.fixture
def slurm_clean(slurm: SlurmInfo) -> Iterator[SlurmInfo]:
    """The session cluster; whatever the test left in the queue is cancelled afterwards."""
    yield slurm
    slurm.cancel_all()


@dataclass(frozen=True)
class Database:
    """One test's database on a shared server."""

    name: str
    url_template: str  # ...:${DB_PASSWORD}@...
    env: dict[str, str]  # {"DB_PASSWORD": ...}
    password: str

    def url(self) -> str:
        """With the password in it: in-process use only."""
        return self.url_template.replace("${DB_PASSWORD}", self.password)


def _database_name(request: pytest.FixtureRequest) -> str:
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40].strip("_")
    return f"t_{stem}_{uuid.uuid4().hex[:6]}"


def _private_database(server: MariaDBInfo | PostgresInfo,
                      request: pytest.FixtureRequest) -> Iterator[Database]:
    """A database of the test's own on `server`, dropped afterwards."""
    name = _database_name(request)
    server.create_database(name)
    template = server.url_template.rsplit("/", 1)[0] + f"/{name}"
    yield Database(name, template, dict(server.env), server.password)
    server.drop_database(name)


@pytest.fixture
def mariadb_database(mariadb: MariaDBInfo, request: pytest.FixtureRequest) -> Iterator[Database]:
    yield from _private_database(mariadb, request)


@pytest.fixture
def postgres_database(postgres: PostgresInfo, request: pytest.FixtureRequest) -> Iterator[Database]:
    yield from _private_database(postgres, request)

