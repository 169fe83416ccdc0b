"""Optuna storages: URLs from config or the environment, masked for display, opened once per process."""

from __future__ import annotations

import os
import logging
import re
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, TypeVar

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from snakesweep.errors import UserError
from snakesweep.trials import stale_after_s

JOURNAL_PREFIX = "journal:"
T = TypeVar("T")
_log = logging.getLogger("snakesweep.storage")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
# The password runs to the last "@": drivers accept an unquoted "@" in it.
_PASSWORD_IN_URL = re.compile(r"^(?P<head>[a-z0-9+]+://[^:/@]*:)(?P<password>.*)(?P<tail>@[^@]*)$", re.I)
_SERVER_SCHEMES = ("mysql", "postgresql")


def default_url(config: Mapping[str, Any]) -> str:
    return f"sqlite:///{Path(config['results']) / 'optuna.db'}"


def storage_url(config: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> str:
    """The storage URL with environment variables expanded: `${OPTUNA_STORAGE}`, `${DB_PASSWORD}`."""
    return expand_url(config["study"]["storage"] or default_url(config), "study.storage", environ)


def expand_url(url: str, field: str, environ: Mapping[str, str] = os.environ) -> str:
    """A storage URL from config (at `field`) with the environment variables it names expanded."""

    def expand(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in environ:
            raise UserError(
                f"the storage URL names the environment variable {name}, which is not set",
                file="config",
                field=field,
                fix=f"export {name}=... before running",
            )
        return environ[name]

    expanded = _ENV_REFERENCE.sub(expand, url)
    if _ENV_REFERENCE.search(expanded):
        # One level of indirection (`${OPTUNA_STORAGE}` holding `${DB_PASSWORD}`) is expanded too.
        expanded = _ENV_REFERENCE.sub(expand, expanded)
    return expanded


def mask(url: str) -> str:
    """The URL with its password replaced by ***: the only form we print, log or write."""
    match = _PASSWORD_IN_URL.match(url)
    if not match:
        return url
    return f"{match['head']}***{match['tail']}"


def mask_text(text: str, url: str) -> str:
    """Remove the password of `url` from any text (driver error messages quote it sometimes)."""
    match = _PASSWORD_IN_URL.match(url)
    text = text.replace(url, mask(url))
    if match and match["password"]:
        text = text.replace(match["password"], "***")
    return text


def kind(url: str) -> str:
    """sqlite, journal, mysql, postgresql, or the URL's scheme."""
    if url.startswith(JOURNAL_PREFIX):
        return "journal"
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def is_server(url: str) -> bool:
    return kind(url) in _SERVER_SCHEMES


def sqlite_path(url: str) -> Path | None:
    if kind(url) != "sqlite":
        return None
    return Path(url.split(":///", 1)[1]) if ":///" in url else None


def journal_path(url: str) -> Path | None:
    return Path(url[len(JOURNAL_PREFIX):]) if kind(url) == "journal" else None


def local_file(url: str) -> Path | None:
    """The file an embedded storage lives in (SQLite database or journal), else None."""
    return sqlite_path(url) or journal_path(url)


def open_storage(url: str, *, heartbeat_s: int | None = None, create_schema: bool = False,
                 field: str = "study.storage") -> BaseStorage:
    """Open a storage; RDB storages get heartbeats so a killed worker's trial is failed and retried.

    Only the one study-creating step passes create_schema: workers that race to create the
    tables of an empty database crash.
    """
    path = local_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if kind(url) == "journal":
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {}
    if kind(url) == "sqlite":
        # Many workers write one file: wait for the lock rather than failing at once.
        engine_kwargs["connect_args"] = {"timeout": 120}
    else:
        engine_kwargs["pool_pre_ping"] = True  # a restarted server: reconnect, do not fail
    heartbeat: dict[str, Any] = {}
    try:
        with warnings.catch_warnings():  # heartbeats have been "experimental" since Optuna 2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if heartbeat_s:
                heartbeat = {
                    "heartbeat_interval": heartbeat_s,
                    "grace_period": stale_after_s(heartbeat_s),
                    "heartbeat_stale_trial_callback": retry_callback(),
                }
            storage = RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=not create_schema, **heartbeat)
    except Exception as error:  # drivers raise many types; the user needs one line
        raise UserError(
            f"cannot open the storage {mask(url)}: {mask_text(_first_line(error), url)}",
            file="config",
            field=field,
            fix="check the URL, that the server is up and reachable, and that the driver is installed",
        ) from None
    if kind(url) == "sqlite":
        _serialise_sqlite_transactions(storage.engine)
    return storage


def _serialise_sqlite_transactions(engine: sqlalchemy.engine.Engine) -> None:
    """Make SQLite transactions real and exclusive.

    Python's sqlite3 driver opens a transaction only at the first write, so Optuna's
    read-then-update of a WAITING trial (SELECT ... FOR UPDATE, which SQLite ignores) lets two
    workers start the same queued trial. BEGIN IMMEDIATE takes the write lock up front: the second
    worker waits for the first to commit and then sees the trial RUNNING.
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection: sqlalchemy.engine.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

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


def through_outages(call: Callable[..., T], *args: Any, within_s: float, **kwargs: Any) -> T:
    """Run one storage call, retrying with backoff while the server is unreachable, up to `within_s`.

    pool_pre_ping only checks a connection when it leaves the pool; a server restarted during a
    query still breaks that query, and the worker would die with its trial half-told. A longer
    outage ends in StorageUnreachable: one line, and the next run of the workflow goes on.
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
                    f"the storage stayed unreachable for {within_s:.0f} s: {_first_line(error)}",
                    file="config",
                    field="study.storage",
                    fix="bring the database server back, then run the workflow again: the study goes on "
                        "where it stopped and the interrupted trials are redone",
                ) from None
            _log.warning("storage unreachable, retrying in %.1fs", pause)
            time.sleep(pause)
            pause = min(2 * pause, 5.0)


def retry_callback() -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    """Requeues a killed trial's parameters as a new WAITING trial (at most 3 times)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
