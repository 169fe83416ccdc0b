"""A private MariaDB on 127.0.0.1 for tests: `mariadb_server(tmp)`.

    with mariadb_server(tmp) as db:
        env = {**os.environ, **db.env}          # DB_PASSWORD
        url = db.url_template                   # mysql+pymysql://sweeper:${DB_PASSWORD}@127.0.0.1:PORT/sweeps
        db.restart()
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.services.base import (
    DEFAULT_TIMEOUT,
    LOCALHOST,
    _base_env,
    _Daemon,
    _new_tag,
    _port_open,
    _raise_if_missing,
    _run,
    _which,
    free_port,
    missing_binaries,
)
from tests.services.database import DatabaseServer


@dataclass(kw_only=True)
class MariaDBInfo(DatabaseServer):
    """A running MariaDB: a database and a user with a random password; `restart()` keeps port and data."""

    scheme = "mysql+pymysql"
    drop_statement = "DROP DATABASE IF EXISTS `{name}`;"

    socket: Path
    admin_defaults: Path  # client option file: root over the UNIX socket, no password

    def sql(self, statements: str, database: str | None = None) -> str:
        """Run SQL as the server's root over its UNIX socket (statements on stdin); returns stdout."""
        argv = [_which("mariadb") or "mariadb", f"--defaults-extra-file={self.admin_defaults}",
                "--batch", "--skip-column-names"]
        if database:
            argv.append(database)
        return _run(argv, input=statements, env=_base_env(self.tag)).stdout

    def _create(self, name: str, user: str, password: str) -> None:
        """A database (utf8mb4) with all privileges for `user`."""
        statements = [f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;"]
        for host in ("%", "localhost"):
            statements.append(f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{password}';")
            statements.append(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{user}'@'{host}';")
        statements.append("FLUSH PRIVILEGES;")
        self.sql("\n".join(statements))

    def _ready(self) -> bool:
        if not self.socket.exists() or not _port_open(self.port):
            return False
        admin = _which("mariadb-admin") or _which("mysqladmin") or "mariadb-admin"
        return self._answers([admin, f"--defaults-extra-file={self.admin_defaults}", "--connect-timeout=2", "ping"])

    def _listening_on(self) -> str:
        return f"{self.socket} and port {self.port}"


@contextlib.contextmanager
def mariadb_server(tmp: str | os.PathLike, *, database: str = "sweeps", user: str = "sweeper",
                   password: str | None = None, port: int | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> Iterator[MariaDBInfo]:
    """A private MariaDB under `tmp/mariadb`, on 127.0.0.1:`port` (default: a free one).

    The server runs as root (`--user=root`); root logs in over the UNIX socket only. `database` and
    `user` (from any host, password `password`, default random hex) are created.
    """
    _raise_if_missing("MariaDB", missing_binaries("mariadb"))
    base = Path(tmp).resolve() / "mariadb"
    datadir, rundir, tmpdir = base / "data", base / "run", base / "tmp"
    for directory in (datadir, rundir, tmpdir):
        directory.mkdir(parents=True, exist_ok=True)
    tag = _new_tag("mariadb")
    env = _base_env(tag)
    log = base / "mariadbd.log"
    sock = rundir / "mysqld.sock"
    fixed_port = port is not None
    port = port or free_port()
    admin = base / "admin.cnf"
    admin.write_text(f"[client]\nuser=root\nsocket={sock}\n")
    admin.chmod(0o600)

    if not (datadir / "mysql").is_dir():
        _run([_which("mariadb-install-db") or "mariadb-install-db", "--no-defaults", "--user=root",
              f"--datadir={datadir}", "--auth-root-authentication-method=socket", "--skip-test-db",
              "--skip-name-resolve", f"--tmpdir={tmpdir}"],
             env=env, timeout=max(timeout, 120))

    mariadbd = _which("mariadbd") or "/usr/sbin/mariadbd"
    argv = [
        mariadbd, "--no-defaults", "--user=root", f"--datadir={datadir}", f"--socket={sock}",
        f"--port={port}", f"--bind-address={LOCALHOST}", f"--pid-file={rundir / 'mariadbd.pid'}",
        f"--tmpdir={tmpdir}", "--skip-name-resolve", "--skip-log-bin", "--max-connections=500",
        "--character-set-server=utf8mb4", "--collation-server=utf8mb4_bin",
        "--innodb-buffer-pool-size=512M", "--innodb-log-file-size=48M",
        "--innodb-flush-log-at-trx-commit=2", "--innodb-lock-wait-timeout=900",
        "--skip-innodb-doublewrite", "--performance-schema=OFF",
    ]
    daemon = _Daemon("mariadbd", argv, log, env)
    password = password or secrets.token_hex(16)
    info = MariaDBInfo(host=LOCALHOST, port=port, database=database, user=user, password=password,
                       socket=sock, datadir=datadir, log=log, admin_defaults=admin, tag=tag,
                       _daemon=daemon, _timeout=timeout)
    yield from info._serve(argv.index(f"--port={port}"), lambda new: f"--port={new}", fixed_port)
