"""Render a Jsonnet config with trial parameters, then apply dotted overrides.

Two styles are supported: external variables read the allennlp-optuna way
(``std.parseJson(std.extVar('lr'))``, ``std.extVar('encoder')``) and top-level
arguments (``function(lr=0.001) {...}``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import _jsonnet

from snakesweep.errors import UserError

__all__ = ["UnusedParamWarning", "apply_overrides", "detect_style", "parse_override", "render"]

Style = Literal["extvar", "tla"]

# Comments are blanked out before scanning for reads; strings are kept as they are.
_COMMENT_OR_STRING = re.compile(
    r"(?P<comment>//[^\n]*|\#[^\n]*|/\*.*?\*/)"
    r"|(?P<string>\|\|\|.*?\|\|\||@'(?:[^']|'')*'|@\"(?:[^\"]|\"\")*\"|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")",
    re.S,
)
_EXTVAR_READ = re.compile(r"""std\.extVar\s*\(\s*@?(['"])(.*?)\1\s*\)""")
_EXTVAR_CALL = re.compile(r"std\.extVar\s*\(")
_IMPORT = re.compile(r"""\bimport\s*@?(['"])(.*?)\1""")
_STATIC = re.compile(r"STATIC ERROR: (?P<file>.+?):\(?(?P<line>\d+):\d+\)?(?:-\(?[\d:]+\)?)?: (?P<message>.*)")
_FRAME = re.compile(r"^\t(?P<file>[^\t]+?):\(?(?P<line>\d+):\d+")
_NO_PARAMETER = re.compile(r"function has no parameter (\S+)")
_UNBOUND = re.compile(r"function parameter (\S+?)\.? not bound in call")
_UNDEFINED_EXTVAR = re.compile(r"undefined external variable: (\S+)", re.I)


class UnusedParamWarning(UserWarning):
    """A search-space parameter that the Jsonnet config never reads."""


def detect_style(path: str | os.PathLike[str]) -> Style:
    """Return ``"tla"`` when the file's top-level value is a function, else ``"extvar"``."""
    path = _existing(path)
    quoted = str(path.resolve()).replace("'", "''")
    try:
        kind = json.loads(_jsonnet.evaluate_snippet(str(path), f"std.type(import @'{quoted}')"))
    except RuntimeError:  # e.g. the top level reads an external variable; real errors surface in render
        return "extvar"
    return "tla" if kind == "function" else "extvar"


def render(
    path: str | os.PathLike[str],
    params: Mapping[str, Any],
    *,
    style: str = "auto",
    overrides: Mapping[str, Any] | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Render a Jsonnet file with ``params`` into a JSON object, then apply ``overrides``.

    An unread parameter is an :class:`UnusedParamWarning`, or a :class:`UserError` when ``strict``.
    """
    path = _existing(path)
    if style not in ("auto", "extvar", "tla"):
        raise UserError(f"unknown style {style!r}", field="style", fix="use auto, extvar or tla")
    detected = detect_style(path) if style in ("auto", "tla") else "extvar"
    if style == "tla" and detected != "tla":
        raise UserError("style is tla but the top level is not a function", file=path, fix="use style extvar or auto")
    if detected == "tla":
        config, unused = _render_tla(path, params)
    else:
        config = _evaluate(path, ext_vars={name: _extvar_text(name, value) for name, value in params.items()})
        read = _extvar_reads(path)
        unused = [] if read is None else sorted(set(params) - read)
    if unused:
        _report_unused(path, unused, detected, strict)
    return apply_overrides(config, overrides or {})


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"trainer.num_epochs=20"`` into a key and a value (JSON when it parses, else the string)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"override {text!r} is not KEY=VALUE", field="override", fix="write e.g. trainer.num_epochs=20")
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        value = raw
    return key, value


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``config`` with dotted overrides merged in, like ``allennlp train -o``."""
    result: dict[str, Any] = copy.deepcopy(dict(config))
    for key, value in overrides.items():
        parts = key.split(".")
        if not all(parts):
            raise UserError(f"empty part in the dotted key {key!r}", field=f"override {key}",
                            fix="write e.g. trainer.num_epochs")
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        result = _merge(nested, result, key)
    return result


def _merge(preferred: Any, fallback: Any, key: str) -> Any:
    """Merge ``preferred`` into ``fallback``: dicts key-wise, a dict onto a list by index."""
    if isinstance(preferred, Mapping) and isinstance(fallback, Mapping):
        merged = dict(fallback)
        for name, value in preferred.items():
            merged[name] = _merge(value, fallback[name], key) if name in fallback else copy.deepcopy(value)
        return merged
    if isinstance(preferred, Mapping) and isinstance(fallback, list):
        merged_list = list(fallback)
        for index_text, value in preferred.items():
            try:
                index = int(index_text)
                merged_list[index] = _merge(value, fallback[index], key)
            except ValueError:
                raise UserError(f"{index_text!r} is not a list index", field=f"override {key}",
                                fix="use a number for list items") from None
            except IndexError:
                raise UserError(f"list index {index_text} is out of range (the list has {len(fallback)} items)",
                                field=f"override {key}", fix="use an existing index") from None
        return merged_list
    return copy.deepcopy(preferred)


def _existing(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserError("Jsonnet file not found", file=path, fix="fix the model config path")
    return path


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _json_text(name: str, value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise UserError(f"value {value!r} cannot be passed to Jsonnet: {error}", field=name,
                        fix="use numbers, strings, booleans, null, lists or objects") from None


def _extvar_text(name: str, value: Any) -> str:
    """Strings go raw (``std.extVar``); the rest as JSON text (``std.parseJson(std.extVar(..))``)."""
    return value if isinstance(value, str) else _json_text(name, value)


def _render_tla(path: Path, params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Call the top-level function; arguments it does not take are dropped and returned."""
    codes = {name: _json_text(name, value) for name, value in params.items()}
    unused: list[str] = []
    while True:
        try:
            return _evaluate(path, tla_codes=codes, retry_unknown=True), sorted(unused)
        except _UnknownParameter as missing:
            if missing.name not in codes:
                raise UserError(f"top-level function has no parameter {missing.name}", file=path) from None
            del codes[missing.name]
            unused.append(missing.name)


class _UnknownParameter(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _evaluate(path: Path, *, retry_unknown: bool = False, **kwargs: Mapping[str, str]) -> dict[str, Any]:
    try:
        text = _jsonnet.evaluate_file(str(path), **kwargs)
    except RuntimeError as error:
        unknown = _NO_PARAMETER.search((str(error).splitlines() or [""])[0]) if retry_unknown else None
        if unknown:
            raise _UnknownParameter(unknown.group(1)) from None
        raise _user_error(str(error), path) from None
    config = json.loads(text)
    if not isinstance(config, dict):
        raise UserError(f"renders to a JSON {type(config).__name__}, not an object", file=path,
                        fix="make the top level of the config an object {...}")
    return config


def _user_error(text: str, path: Path) -> UserError:
    """Turn the binding's error text into one line: file:line, field, message and fix."""
    lines = text.splitlines() or [text]
    static = _STATIC.match(lines[0])
    if static:
        return UserError(f"invalid Jsonnet: {static['message']}", file=f"{static['file']}:{static['line']}",
                         fix="fix the Jsonnet at that line")
    message = lines[0].removeprefix("RUNTIME ERROR: ").rstrip(".")
    where = str(path)
    for line in lines[1:]:
        frame = _FRAME.match(line)
        if frame and not frame["file"].startswith("<") and frame["file"] != "std.jsonnet":
            where = f"{frame['file']}:{frame['line']}"
            break
    if extvar := _UNDEFINED_EXTVAR.search(message):
        name = extvar.group(1)
        return UserError(f"external variable {name} is not set", file=where, field=name,
                         fix=f"add {name} to the search space or give it a fixed value in the config")
    if unbound := _UNBOUND.search(message):
        name = unbound.group(1)
        return UserError(f"top-level argument {name} has no value", file=where, field=name,
                         fix=f"add {name} to the search space or give the argument a default")
    if "json.exception.parse_error" in message:
        return UserError(message, file=where, fix="read string parameters with std.extVar, without std.parseJson")
    return UserError(message, file=where, fix="fix the Jsonnet at that line")


def _extvar_reads(path: Path) -> set[str] | None:
    """Names read with ``std.extVar('name')`` in the file and its imports; None if a read is computed."""
    names: set[str] = set()
    pending, seen = [path.resolve()], set()
    while pending:
        current = pending.pop()
        if current in seen or not current.is_file():
            continue
        seen.add(current)
        source = _COMMENT_OR_STRING.sub(lambda m: " " if m["comment"] else m[0], current.read_text(encoding="utf-8"))
        reads = list(_EXTVAR_READ.finditer(source))
        if len(reads) != len(_EXTVAR_CALL.findall(source)):
            return None
        names.update(match.group(2) for match in reads)
        pending.extend((current.parent / match.group(2)).resolve() for match in _IMPORT.finditer(source))
    return names


def _report_unused(path: Path, names: list[str], style: Style, strict: bool) -> None:
    how = f"read them with std.extVar('{names[0]}')" if style == "extvar" else "make them top-level arguments"
    error = UserError(f"search-space parameter(s) never read by the config: {', '.join(names)}", file=path,
                      field=", ".join(names), fix=f"{how} or remove them from the search space")
    if strict:
        raise error
    warnings.warn(str(error), UnusedParamWarning, stacklevel=3)
