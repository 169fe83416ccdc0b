"""The base of the two SQL test servers (mariadb.py, postgres.py): what they share, once."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

from tests.services.base import DEFAULT_TIMEOUT, _base_env, _Daemon, _kill_tagged, _start_on_port, _wait_for


@dataclass(kw_only=True)
class DatabaseServer:
    """A running SQL server: a database and a user with a random password; `restart()` keeps port and data.

    A subclass says what differs: its URL scheme, how SQL runs (`sql`, `_create`) and when the
    daemon answers (`_ready`).
    """

    scheme: ClassVar[str]  # SQLAlchemy's dialect+driver, e.g. mysql+pymysql
    drop_statement: ClassVar[str]  # DROP DATABASE for `{name}`

    host: str
    port: int
    database: str
    user: str
    password: str
    datadir: Path
    log: Path
    tag: str
    _daemon: _Daemon = field(repr=False)
    _timeout: float = field(default=DEFAULT_TIMEOUT, repr=False)

    @property
    def url_template(self) -> str:
        """`SCHEME://USER:${DB_PASSWORD}@127.0.0.1:PORT/DB`: the password comes from the environment."""
        return f"{self.scheme}://{self.user}:${{DB_PASSWORD}}@{self.host}:{self.port}/{self.database}"

    def url(self, database: str | None = None) -> str:
        """The URL with the password in it, for in-process use only (never print or log it)."""
        return f"{self.scheme}://{self.user}:{self.password}@{self.host}:{self.port}/{database or self.database}"

    @property
    def env(self) -> dict[str, str]:
        """Variables for processes that expand `url_template`."""
        return {"DB_PASSWORD": self.password}

    @property
    def pid(self) -> int | None:
        return self._daemon.pid

    def sql(self, statements: str, database: str | None = None) -> str:
        """Run SQL as the server's superuser over its UNIX socket (statements on stdin); returns stdout."""
        raise NotImplementedError

    def create_database(self, name: str, user: str | None = None, password: str | None = None) -> None:
        """A database for `user` (default: this server's user), created if missing."""
        user = user or self.user
        password = password if password is not None else (self.password if user == self.user else secrets.token_hex(16))
        self._create(name, user, password)

    def _create(self, name: str, user: str, password: str) -> None:
        raise NotImplementedError

    def drop_database(self, name: str) -> None:
        self.sql(self.drop_statement.format(name=name))

    def stop(self) -> None:
        self._daemon.stop()

    def start(self) -> None:
        """Start the same data directory again on the same port (after `stop()`)."""
        if self._daemon.running():
            return
        self._daemon.start()
        self._wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _ready(self) -> bool:
        """Whether the server answers now."""
        raise NotImplementedError

    def _listening_on(self) -> str:
        return f"port {self.port}"

    def _answers(self, argv: list[str]) -> bool:
        """Whether a client's check (ping, pg_isready) succeeds."""
        return subprocess.run(argv, capture_output=True, env=_base_env(self.tag), timeout=15).returncode == 0

    def _wait(self) -> None:
        _wait_for(self._ready, self._daemon, f"no answer on {self._listening_on()}", self._timeout)

    def _serve(self, port_index: int, render: Callable[[int], str], fixed_port: bool) -> Iterator[Self]:
        """Start (on a new port if the chosen one was taken), create the database, yield; stop on exit."""
        try:
            _start_on_port(self._daemon, self._wait, port_index, render, lambda new: setattr(self, "port", new),
                           fixed_port)
            self.create_database(self.database, self.user, self.password)
            yield self
        finally:
            self._daemon.stop()
            _kill_tagged(self.tag)
