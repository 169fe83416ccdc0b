"""Optuna storages opened once per process: for the workers, or read-only for the inspection commands.

The URL side (expansion, user info, masking) is `snakesweep.urls`; its names are re-exported here.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import sqlite3
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import quote

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from snakesweep.errors import UserError
from snakesweep.trials import PER_ATTEMPT, STALE_RETRIES
from snakesweep.urls import (JOURNAL_PREFIX, default_url, expand_url, is_server, journal_path, kind, local_file, mask,  # noqa: F401
                             mask_text, sqlite_path, storage_url)

T = TypeVar("T")
_log = logging.getLogger("snakesweep.storage")
_READ_ONLY_SESSION = {
    "mysql": "SET SESSION TRANSACTION READ ONLY",
    "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
}
_NO_WRITE_LOCK = contextvars.ContextVar("snakesweep_no_write_lock", default=False)


def open_storage(url: str, *, create_schema: bool = False, read_only: bool = False,
                 field: str = "study.storage") -> BaseStorage:
    """Open a storage. Optuna's own heartbeats stay off: workers keep theirs (trials.Silence).

    Only the one study-creating step passes create_schema: workers that race to create the
    tables of an empty database crash. `read_only` (status, trials, best-params, report) writes
    nothing, not even a lock or a WAL file: results/ may be on a read-only mount or another
    user's; a local storage file must exist.
    """
    path = local_file(url)
    if path is not None and read_only and not path.is_file():
        raise UserError(
            f"no sweep has started: the storage {mask(url)} does not exist yet",
            file="config",
            field=field,
            fix="start the sweep with snakemake (or snakesweep create-study), or pass the right --configfile",
        )
    if path is not None and not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    if kind(url) == "journal":
        return JournalStorage(JournalFileBackend(str(path)))  # an existing file is only read until a write
    engine_kwargs: dict[str, Any] = {}
    if kind(url) == "sqlite" and read_only and path is not None:
        engine_kwargs["creator"] = _sqlite_reader(path)
    elif kind(url) == "sqlite":
        # Many workers write one file: wait for the lock rather than failing at once.
        engine_kwargs["connect_args"] = {"timeout": 120}
    else:
        engine_kwargs["pool_pre_ping"] = True  # a restarted server: reconnect, do not fail
    try:
        storage = RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=not create_schema)
    except Exception as error:  # drivers raise many types; the user needs one line
        raise storage_error(url, error, field=field) from None
    if kind(url) in _READ_ONLY_SESSION and read_only:
        _read_only_sessions(storage.engine, _READ_ONLY_SESSION[kind(url)])
    elif kind(url) == "sqlite" and not read_only:
        _serialise_sqlite_transactions(storage.engine)
    return storage


def storage_error(url: str, error: BaseException, verb: str = "open the storage",
                  field: str = "study.storage") -> UserError:
    """One line for a storage that cannot be opened: the driver's own reason, not Optuna's wrapper
    ("An exception is raised during the commit ... e.g. exceeding max length")."""
    reason = mask_text(_first_line(_database_error(error)), url)
    return UserError(
        f"cannot {verb} {mask(url)}: {reason}",
        file="config",
        field=field,
        fix="check that the server is up and reachable from here, the host, port, user and password in "
            f"{field} (and the variables it names), and that the driver is installed"
        if is_server(url) else f"check the path in {field} and that the file is a snakesweep storage",
    )


def _database_error(error: BaseException) -> BaseException:
    """The SQLAlchemy or driver error under Optuna's wrappers, else `error` itself."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error)):
            return current
        current = current.__cause__ or current.__context__
    return error


def _sqlite_reader(path: Path) -> Callable[[], sqlite3.Connection]:
    """Connections that cannot write and create no file next to the database.

    `mode=ro` on a database in WAL mode creates `-wal` and `-shm` files when they are missing (and
    fails in a read-only directory). They are missing only when no connection is open, so nobody
    writes: the database file is then read as immutable. Otherwise they exist and `mode=ro` reads
    the workers' latest commits through them.
    """

    def connect() -> sqlite3.Connection:
        idle = _in_wal_mode(path) and not Path(f"{path}-wal").exists()
        uri = f"file:{quote(str(path))}?{'immutable=1' if idle else 'mode=ro'}"
        return sqlite3.connect(uri, uri=True, timeout=120, check_same_thread=False)

    return connect


def _in_wal_mode(path: Path) -> bool:
    """Bytes 18 and 19 of a SQLite header (the file format versions) are 2 in WAL mode."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[18] == 2


def _read_only_sessions(engine: sqlalchemy.engine.Engine, statement: str) -> None:
    """Every later transaction on a server is read-only: a bug that writes fails instead."""

    @sqlalchemy.event.listens_for(engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(statement)
        cursor.close()
        dbapi_connection.commit()  # PostgreSQL reverts a SET made in a transaction that is rolled back

    engine.dispose()  # connections opened during start-up predate the listener


@contextmanager
def no_write_lock() -> Iterator[None]:
    """The storage calls of this thread inside only read: on SQLite they take no write lock."""
    token = _NO_WRITE_LOCK.set(True)
    try:
        yield
    finally:
        _NO_WRITE_LOCK.reset(token)


def _serialise_sqlite_transactions(engine: sqlalchemy.engine.Engine) -> None:
    """Make SQLite transactions real and exclusive, except those of `no_write_lock` calls.

    Python's sqlite3 driver opens a transaction only at the first write, so Optuna's
    read-then-update of a WAITING trial (SELECT ... FOR UPDATE, which SQLite ignores) lets two
    workers start the same queued trial. BEGIN IMMEDIATE takes the write lock up front: the second
    worker waits for the first to commit and then sees the trial RUNNING.

    Reads that write nothing begin a plain (deferred) transaction: in WAL mode it reads a snapshot
    beside the writer and never queues for the lock. Taking the lock for them too, 16 workers'
    reads of the whole study on a loaded machine kept heartbeats from landing for half a minute.
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin(connection: sqlalchemy.engine.Connection) -> None:
        connection.exec_driver_sql("BEGIN" if _NO_WRITE_LOCK.get() else "BEGIN IMMEDIATE")

    engine.dispose()  # connections opened during start-up predate the listeners


def _is_connection_error(error: BaseException) -> bool:
    """A lost or refused connection (a restarting server), possibly wrapped by Optuna."""
    while error is not None:
        if isinstance(error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
            return True
        if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
            return True
        error = error.__cause__ or error.__context__
    return False


class StorageUnreachable(UserError):
    """The storage stayed unreachable longer than a worker waits for it."""


def through_outages(call: Callable[..., T], *args: Any, within_s: float, url: str = "", **kwargs: Any) -> T:
    """Run one storage call, retrying with backoff while the server is unreachable, up to `within_s`.

    pool_pre_ping only checks a connection when it leaves the pool; a server restarted during a
    query still breaks that query, and the worker would die with its trial half-told. A longer
    outage ends in StorageUnreachable: one line, and the next run of the workflow goes on; the
    driver's reason in it is masked with `url` (a refused login names the user).
    """
    deadline = time.monotonic() + within_s
    pause = 0.2
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if not _is_connection_error(error):
                raise
            if time.monotonic() + pause > deadline:
                raise StorageUnreachable(
                    f"the storage stayed unreachable for {within_s:.0f} s: {mask_text(_first_line(error), url)}",
                    file="config",
                    field="study.storage",
                    fix="bring the database server back, then run the workflow again: the study goes on "
                        "where it stopped and the interrupted trials are redone",
                ) from None
            _log.warning("storage unreachable, retrying in %.1fs", pause)
            time.sleep(pause)
            pause = min(2 * pause, 5.0)


class _Requeue(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry, without what only the failed attempt recorded (its reason, its epochs...)."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        attempt = copy.deepcopy(trial)
        attempt.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in PER_ATTEMPT}
        super().__call__(study, attempt)


def retry_callback(max_retry: int | None = STALE_RETRIES) -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    """Requeues a killed trial's parameters as a new WAITING trial (at most `max_retry` times)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _Requeue(max_retry=max_retry)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
