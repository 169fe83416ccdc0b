"""Storage URLs: from the config and the environment, with the user info read whole, masked for display.

A password is often generated or shared and may hold `@`, `:` or `/`. SQLAlchemy ends the user
info at the first `@`, so `u:p@ss@db` would reach host `ss@db` and look the password's tail up in
DNS. Here the user info runs to the last `@`, and its parts are percent-encoded before any driver
sees the URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from snakesweep.errors import UserError

JOURNAL_PREFIX = "journal:"
MASK = "***"
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
# scheme://USERINFO@REST: the user info (not starting with "/", as sqlite:////path does) to the last "@".
_WITH_USER_INFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/].*)@(?P<rest>[^@]*)$", re.S)
_SERVER_SCHEMES = ("mysql", "postgresql")


@dataclass(frozen=True)
class UserInfo:
    """The decoded user and password of a URL, and what surrounds them."""

    scheme: str
    user: str
    password: str | None
    rest: str  # host[:port][/database][?query]


def user_info(url: str) -> UserInfo | None:
    match = _WITH_USER_INFO.match(url)
    if not match:
        return None
    user, colon, password = match["userinfo"].partition(":")
    return UserInfo(match["scheme"], unquote(user), unquote(password) if colon else None, match["rest"])


def _encoded(info: UserInfo) -> str:
    password = "" if info.password is None else ":" + quote(info.password, safe="")
    return f"{info.scheme}{quote(info.user, safe='')}{password}@{info.rest}"


def default_url(config: Mapping[str, Any]) -> str:
    return f"sqlite:///{Path(config['results']) / 'optuna.db'}"


def storage_url(config: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> str:
    """The storage URL as the drivers must read it (see expand_url)."""
    return expand_url(config["study"]["storage"] or default_url(config), field="study.storage", environ=environ)


def expand_url(url: str, *, field: str, environ: Mapping[str, str] = os.environ) -> str:
    """A URL from config as the drivers must read it: `${OPTUNA_STORAGE}` and `${DB_PASSWORD}` expanded,
    the user info percent-encoded. Secrets stay out of config files this way.

    In the user info, a variable's value is taken as it is (`@`, `%` and all: `DB_PASSWORD` holds
    the password itself), and what is written out is read as the drivers read it (`%40` is `@`).
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in environ:
            raise UserError(
                f"the URL names the environment variable {name}, which is not set",
                file="config",
                field=field,
                fix=f"export {name}=... before running",
            )
        return environ[name]

    def literal(text: str) -> str:
        pieces, start = [], 0
        for reference in _ENV_REFERENCE.finditer(text):
            pieces += [unquote(text[start:reference.start()]), value(reference)]
            start = reference.end()
        return "".join([*pieces, unquote(text[start:])])

    if not _WITH_USER_INFO.match(url):  # the user info, if any, is in a variable (`${OPTUNA_STORAGE}`)
        url = _ENV_REFERENCE.sub(value, url)
    match = _WITH_USER_INFO.match(url)
    if not match:
        return _ENV_REFERENCE.sub(value, url)
    written = match["userinfo"]
    if ":" in written:
        user_part, _, password_part = written.partition(":")
        user, password = literal(user_part), literal(password_part)
    else:  # `${CREDENTIALS}` holding user:password
        user, colon, rest = literal(written).partition(":")
        password = rest if colon else None
    rest_of_url = _ENV_REFERENCE.sub(value, match["rest"])
    return _encoded(UserInfo(match["scheme"], user, password, rest_of_url))


def mask(url: str) -> str:
    """The URL with its user and password replaced by ***: the only form we print, log or write."""
    info = user_info(url)
    if info is None:
        return url
    password = "" if info.password is None else f":{MASK}"
    return f"{info.scheme}{MASK}{password}@{info.rest}"


def mask_text(text: str, url: str) -> str:
    """Remove the user and password of `url` from any text (driver errors name the user, some the password)."""
    info = user_info(url)
    if info is None:
        return text
    for form in (url, _encoded(info)):
        text = text.replace(form, mask(url))
    secrets = {info.password, quote(info.password, safe="")} if info.password else set()
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for name in {info.user, quote(info.user, safe="")} - {""}:
        # As a word only: a user `db` must not turn the host `db.example.org` into `***.example.org`.
        text = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", MASK, text)
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
