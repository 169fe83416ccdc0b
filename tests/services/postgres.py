"""A private PostgreSQL on 127.0.0.1 for tests: `postgres_server(tmp)`, as the `postgres` account."""

from __future__ import annotations

import contextlib
import getpass
import grp
import os
import pwd
import secrets
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.services.base import (
    DEFAULT_TIMEOUT,
    LOCALHOST,
    ServiceError,
    _base_env,
    _Daemon,
    _new_tag,
    _port_open,
    _postgres_bindir,
    _run,
    free_port,
    process_alive,
)
from tests.services.database import DatabaseServer

_PRIVATE_PREFIX = "snakesweep-postgres-"  # private data dirs under the system temp dir


@dataclass(kw_only=True)
class PostgresInfo(DatabaseServer):
    """A running PostgreSQL: a database owned by a user with a random password."""

    scheme = "postgresql+psycopg2"
    drop_statement = 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);'

    socket_dir: Path
    os_user: str  # the unprivileged account the server runs as
    _bindir: Path = field(repr=False)

    def sql(self, statements: str, database: str | None = None) -> str:
        """Run SQL as the superuser `postgres` over the UNIX socket (trust; statements on stdin)."""
        argv = [str(self._bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
                "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d", database or "postgres"]
        return _run(argv, input=statements, env=_base_env(self.tag)).stdout

    def _create(self, name: str, user: str, password: str) -> None:
        """A database owned by `user`, created if missing; the role gets `password` either way."""
        exists = self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{user}';").strip()
        verb = "ALTER" if exists else "CREATE"
        self.sql(f"{verb} ROLE \"{user}\" LOGIN PASSWORD '{password}';")
        if not self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';").strip():
            self.sql(f"CREATE DATABASE \"{name}\" OWNER \"{user}\" ENCODING 'UTF8' TEMPLATE template0;")

    def _ready(self) -> bool:
        if not _port_open(self.port):
            return False
        return self._answers([str(self._bindir / "pg_isready"), "-q", "-h", LOCALHOST, "-p", str(self.port), "-t", "2"])


def _reachable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether every directory above `path` lets `uid` pass (the x bit for it)."""
    groups = {gid, *(g.gr_gid for g in grp.getgrall() if pwd.getpwuid(uid).pw_name in g.gr_mem)}
    for directory in [path, *path.parents]:
        try:
            st = directory.stat()
        except OSError:
            return False
        if st.st_uid == uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return False
    return True


def _remove_orphaned_private_dirs() -> None:
    """Private data dirs left by a test run that was killed (its owner.pid no longer alive)."""
    for directory in Path(tempfile.gettempdir()).glob(f"{_PRIVATE_PREFIX}*"):
        try:
            owner = int((directory / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if not process_alive(owner):
            shutil.rmtree(directory, ignore_errors=True)


def _postgres_os_user() -> str:
    if os.geteuid() != 0:
        return getpass.getuser()
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ServiceError("no unprivileged account (postgres or nobody) to run PostgreSQL as")


@contextlib.contextmanager
def postgres_server(tmp: str | os.PathLike, *, database: str = "sweeps", user: str = "sweeper",
                    password: str | None = None, port: int | None = None,
                    timeout: float = DEFAULT_TIMEOUT) -> Iterator[PostgresInfo]:
    """A private PostgreSQL under `tmp/postgres`, on 127.0.0.1:`port` (default: a free one).

    initdb and the server run as the `postgres` system account (initdb refuses root). When that
    account cannot reach `tmp` (pytest's base temp directory is mode 0700), the data directory goes
    to a private directory under the system temp dir instead, linked as `tmp/postgres/data` and
    removed on exit; the log stays at `tmp/postgres/postgres.log`.
    """
    bindir = _postgres_bindir()
    if bindir is None:
        raise ServiceError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin): run tests/services/install-packages")
    base = Path(tmp).resolve() / "postgres"
    base.mkdir(parents=True, exist_ok=True)
    os_user = _postgres_os_user()
    entry = pwd.getpwnam(os_user)
    tag = _new_tag("postgres")
    env = _base_env(tag)
    env["HOME"] = entry.pw_dir if os.path.isdir(entry.pw_dir) else "/"
    private: Path | None = None
    if _reachable_by(base, entry.pw_uid, entry.pw_gid):
        home = base
    else:
        _remove_orphaned_private_dirs()
        private = Path(tempfile.mkdtemp(prefix=_PRIVATE_PREFIX))
        (private / "owner.pid").write_text(str(os.getpid()))
        home = private
        link = base / "data"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(private / "data")
    datadir, rundir = home / "data", home / "run"
    log = base / "postgres.log"
    fixed_port = port is not None
    port = port or free_port()
    tmp_dirs = [datadir, rundir]
    if private is not None:
        os.chown(private, entry.pw_uid, entry.pw_gid)
    for directory in tmp_dirs:
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        directory.chmod(0o700)

    try:
        if not (datadir / "PG_VERSION").exists():
            _run([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                 env=env, user=os_user, cwd=home, timeout=max(timeout, 120))
        argv = [
            str(bindir / "postgres"), "-D", str(datadir), "-p", str(port),
            "-c", f"listen_addresses={LOCALHOST}", "-c", f"unix_socket_directories={rundir}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "shared_buffers=64MB", "-c", "max_connections=300", "-c", "logging_collector=off",
            "-c", "log_min_messages=warning", "-c", "password_encryption=scram-sha-256",
        ]
        daemon = _Daemon("postgres", argv, log, env, cwd=home, user=os_user, stop_signal=signal.SIGINT)
        password = password or secrets.token_hex(16)
        info = PostgresInfo(host=LOCALHOST, port=port, database=database, user=user, password=password,
                            socket_dir=rundir, datadir=datadir, log=log, os_user=os_user, tag=tag,
                            _daemon=daemon, _bindir=bindir, _timeout=timeout)
        yield from info._serve(argv.index("-p") + 1, str, fixed_port)
    finally:
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)
