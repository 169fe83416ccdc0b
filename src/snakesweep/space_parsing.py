"""Reading search spaces: allennlp-optuna's hparams.json or a compact mapping.

Two ways to write the same space::

    [{"type": "float", "attributes": {"name": "lr", "low": 1e-4, "high": 0.1, "log": true}}]

    lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
    encoder: {type: categorical, choices: [cnn, lstm]}
    hidden_size: {type: int, low: 32, high: 256, when: {encoder: lstm}, default: 0}
    width: {type: int, low: 32, high: 256, default: 64}   # the value of trials that did not sample it
    dropout: [0.0, 0.2, 0.5]      # grid values
    num_epochs: 5                 # constant, never sampled
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from snakesweep.space import Param, SearchSpace, _error, _on_step, _same

# type name -> (kind, keys it accepts); the legacy names are those of allennlp-optuna's Optuna 2.
_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "int": ("int", ("low", "high", "step", "log")),
    "float": ("float", ("low", "high", "step", "log")),
    "categorical": ("categorical", ("choices",)),
    "uniform": ("float", ("low", "high")),
    "loguniform": ("float", ("low", "high")),
    "discrete_uniform": ("float", ("low", "high", "q")),
}
_TYPE_FIX = "use one of: int, float, categorical (legacy: uniform, loguniform, discrete_uniform)"
_ENTRY_KEYS = ("type", "attributes", "when", "default")
_ENTRY_FIX = 'write {"type": ..., "attributes": {"name": ..., ...}}'
_SCALARS = (str, int, float, bool, type(None))


def load_space(path: str | Path) -> SearchSpace:
    """Read a search space from a .json, .yaml or .yml file."""
    path = Path(path)
    return parse_space(_read(path), str(path))


def parse_space(data: Any, source: str = "<space>") -> SearchSpace:
    """Build a search space from loaded data: allennlp-optuna's list or the compact mapping."""
    params: list[Param] = []
    if isinstance(data, list):
        for index, entry in enumerate(data):
            params.append(_from_entry(entry, index, params, source))
    elif isinstance(data, Mapping):
        if "type" in data and "attributes" in data:
            raise _error(source, None, "this looks like one allennlp-optuna entry, not a space",
                         "wrap the entries in a list: [{type: ..., attributes: {...}}, ...]")
        for name, spec in data.items():
            params.append(_from_mapping(name, spec, params, source))
    else:
        problem = f"expected a list (allennlp-optuna format) or a mapping of parameter names, got {_kind_of(data)}"
        raise _error(source, None, problem, "write [{type: float, attributes: {name: lr, ...}}] or lr: {type: float}")
    if not params:
        raise _error(source, None, "the space declares no parameters", "declare at least one parameter")
    return SearchSpace(tuple(params), source)


def _from_entry(entry: Any, index: int, earlier: list[Param], source: str) -> Param:
    """One allennlp-optuna entry: {type, attributes: {name, ...}} plus optional when and default."""
    label = f"entry {index + 1}"
    if not isinstance(entry, Mapping):
        raise _error(source, label, f"expected a mapping, got {_kind_of(entry)}", _ENTRY_FIX)
    attributes = entry.get("attributes")
    name = attributes.get("name") if isinstance(attributes, Mapping) else None
    _known_keys(entry, _ENTRY_KEYS, source, name if isinstance(name, str) and name else label)
    if not isinstance(attributes, Mapping):
        raise _error(source, label, "attributes missing or not a mapping", _ENTRY_FIX)
    if not isinstance(name, str) or not name:
        raise _error(source, f"{label}.attributes.name", "missing parameter name", 'add "name": "..."')
    if "type" not in entry:
        raise _error(source, name, "missing type", _TYPE_FIX)
    return _conditioned(_sampled(name, entry["type"], attributes, ("name",), earlier, source), entry, earlier, source)


def _from_mapping(name: Any, spec: Any, earlier: list[Param], source: str) -> Param:
    """One compact entry: a typed mapping, a list of grid values or a constant."""
    if not isinstance(name, str) or not name:
        raise _error(source, str(name), f"parameter names must be text, got {name!r}", "quote the name")
    if isinstance(spec, list):
        return Param(name, "grid", choices=_choices(spec, name, source))
    if isinstance(spec, _SCALARS):
        return Param(name, "constant", value=spec)
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise _error(source, name, "a mapping needs a type", f"{_TYPE_FIX}; or write a list of grid values or one "
                     "constant value")
    param = _sampled(name, spec["type"], spec, ("type", "when", "default"), earlier, source)
    return _conditioned(param, spec, earlier, source)


def _sampled(
    name: str, type_: Any, options: Mapping[str, Any], extra: tuple[str, ...], earlier: list[Param], source: str
) -> Param:
    """A sampled parameter from its type name and options, every value checked."""
    if any(param.name == name for param in earlier):
        raise _error(source, name, "duplicate parameter name", "give each parameter its own name")
    if not isinstance(type_, str) or type_ not in _TYPES:
        raise _error(source, f"{name}.type", f"unknown type {type_!r}", _TYPE_FIX)
    kind, keys = _TYPES[type_]
    _known_keys(options, extra + keys, source, name)
    if kind == "categorical":
        if "choices" not in options:
            raise _error(source, name, "missing choices", "add choices: [a, b, ...]")
        return Param(name, kind, choices=_choices(options["choices"], f"{name}.choices", source))
    integer = kind == "int"
    for key in ("low", "high", "q") if type_ == "discrete_uniform" else ("low", "high"):
        if key not in options:
            raise _error(source, name, f"missing {key}", f"add {key}: <number>")
    low = _number(options["low"], f"{name}.low", source, integer)
    high = _number(options["high"], f"{name}.high", source, integer)
    step_key = "q" if type_ == "discrete_uniform" else "step"
    step = options.get(step_key)
    log = True if type_ == "loguniform" else options.get("log") or False
    if not isinstance(log, bool):
        raise _error(source, f"{name}.log", f"log must be true or false, got {log!r}", "write log: true")
    if low > high:
        raise _error(source, f"{name}.low", f"low {low} is greater than high {high}", "swap low and high")
    if log and low <= 0:
        raise _error(source, f"{name}.low", f"log scale needs low > 0, got {low}", "raise low above 0 or drop log")
    if step is None:
        return Param(name, kind, low=low, high=high, step=1 if integer else None, log=log)
    field = f"{name}.{step_key}"
    step = _number(step, field, source, integer)
    if step <= 0:
        raise _error(source, field, f"{step_key} must be positive, got {step}", f"write {step_key}: <number> > 0")
    if log and not (integer and step == 1):
        raise _error(source, field, "log and step cannot be combined", "drop one of them")
    if not _on_step(high - low, step):
        raise _error(source, field, f"{step_key} {step} does not divide high - low = {high - low:g}",
                     "choose low, high and step so that the range is a whole number of steps")
    return Param(name, kind, low=low, high=high, step=step, log=log)


def _conditioned(param: Param, spec: Mapping[str, Any], earlier: list[Param], source: str) -> Param:
    """Add `when` (conditions on earlier parameters) and `default` to a sampled parameter.

    The default is its value where it is not sampled: when its condition is off, and in trials of
    an earlier study that did not have it (study.warm_start), which is why an unconditional
    parameter's default must be a value it can take.
    """
    name, when = param.name, spec.get("when")
    if when is None:
        if "default" not in spec:
            return param
        default = spec["default"]
        problem = param.problem(default) if isinstance(default, _SCALARS) else f"got {_kind_of(default)}"
        if problem is not None:
            raise _error(source, f"{name}.default", f"default must be a value {name} can take: {problem}",
                         "give the value earlier trials ran with (study.warm_start), or add a condition")
        return replace(param, default=default, has_default=True)
    if not isinstance(when, Mapping) or not when:
        raise _error(source, f"{name}.when", "when must map earlier parameter names to a value or a list of values",
                     "write when: {encoder: [lstm, gru]}")
    by_name = {p.name: p for p in earlier}
    conditions = []
    for ref, allowed in when.items():
        field, values = f"{name}.when.{ref}", allowed if isinstance(allowed, list) else [allowed]
        if ref not in by_name:
            raise _error(source, field, f"condition on {ref!r}, which is not declared before {name}",
                         "a condition may only use a parameter declared above it; declared above: "
                         + (", ".join(by_name) or "none"))
        if not values:
            raise _error(source, field, "empty list of values", "list the values that enable it")
        target = by_name[ref]
        for value in values:
            problem = target.problem(value)
            if problem is not None and not (target.has_default and _same(value, target.default)):
                raise _error(source, field, f"{ref} can never be {value!r}: {problem}", f"use values {ref} can take")
        conditions.append((ref, tuple(values)))
    default = spec.get("default")
    if not isinstance(default, _SCALARS):
        raise _error(source, f"{name}.default", f"default must be one value, got {_kind_of(default)}",
                     "write a single value")
    return replace(param, when=tuple(conditions), default=default, has_default="default" in spec)


def _choices(values: Any, field: str, source: str) -> tuple[Any, ...]:
    """Categorical choices or grid values: a non-empty list of distinct single values."""
    if not isinstance(values, list) or not values:
        raise _error(source, field, "choices must be a non-empty list", "list at least one value")
    for index, value in enumerate(values):
        if not isinstance(value, _SCALARS):
            raise _error(source, field, f"choices must be single values, got {_kind_of(value)}",
                         "use text, numbers, booleans or null")
        if any(_same(value, other) for other in values[:index]):
            raise _error(source, field, f"duplicate choice {value!r}", "list each value once")
    return tuple(values)


def _number(value: Any, field: str, source: str, integer: bool) -> int | float:
    """A finite number (an int where `integer`); booleans and text are refused."""
    wanted = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise _error(source, field, f"expected {wanted}, got {value!r}", f"write {wanted}: no quotes, not true/false")
    if not math.isfinite(value):
        raise _error(source, field, f"expected a finite number, got {value!r}", "write a finite bound")
    return value if integer else float(value)

def _known_keys(spec: Mapping[str, Any], allowed: tuple[str, ...], source: str, field: str) -> None:
    unknown = [str(key) for key in spec if key not in allowed]
    if unknown:
        raise _error(source, f"{field}.{unknown[0]}", f"unknown key {', '.join(unknown)}",
                     f"allowed here: {', '.join(allowed)}")

def _kind_of(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "text", type(None): "nothing"}
    return next((text for cls, text in names.items() if isinstance(value, cls)), repr(value))

class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int | None) -> None:
        super().__init__(key)
        self.key, self.line = key, line


class _Loader(yaml.SafeLoader):
    """Safe YAML that also reads 1e-4 as a number and refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, _SCALARS):
                if key in seen:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key, None)
        result[key] = value
    return result


def _read(path: Path) -> Any:
    """The file's data, with every read or syntax problem as a UserError."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise _error(path, None, f"unsupported file type {suffix or '(none)'}", "use a .json, .yaml or .yml file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _error(path, None, "file not found", "fix the search space path in the config") from None
    except (OSError, UnicodeDecodeError) as error:
        raise _error(path, None, f"cannot read the file: {error}") from None
    try:
        if suffix == ".json":
            return json.loads(text, object_pairs_hook=_unique_keys)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except _DuplicateKey as error:
        at = f" at line {error.line}" if error.line else ""
        raise _error(path, str(error.key), f"duplicate key{at}", "write each key once") from None
    except json.JSONDecodeError as error:
        at = f"at line {error.lineno}, column {error.colno}"
        raise _error(path, None, f"not valid JSON: {error.msg} {at}", "fix the syntax") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise _error(path, None, f"not valid YAML: {problem}{at}", "fix the syntax") from None
