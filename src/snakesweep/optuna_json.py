"""optuna.json: the sampler and pruner it names, read, built, and tried out before any trial needs them.

Optuna's constructors take most wrong values silently (`"n_startup_trials": "5"`) and fail in the
middle of a trial. So every attribute is checked against the constructor's annotation, and a fresh
copy of the built object runs a few trials of the study's own space in memory.
"""

from __future__ import annotations

import builtins
import collections.abc
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from snakesweep.errors import UserError
from snakesweep.logs import quiet_optuna

MAX_STARTUP = 10
"""The tryout runs the startup trials (`n_startup_trials`), at most this many, and two more."""


def load_optuna_json(path: str | Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sampler and pruner specs from allennlp-optuna's optuna.json; TPE and no pruning by default."""
    default_sampler = {"type": "TPESampler", "attributes": {}}
    default_pruner = {"type": "NopPruner", "attributes": {}}
    if path is None:
        return default_sampler, default_pruner
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError("file not found", file=path, field="study.optuna", fix="fix the path in the config") from None
    except json.JSONDecodeError as error:
        raise UserError(f"not valid JSON: {error.msg} at line {error.lineno}", file=path) from None
    if not isinstance(data, dict) or set(data) - {"sampler", "pruner"}:
        raise UserError(
            "expected an object with the keys sampler and pruner",
            file=path,
            fix='write {"sampler": {"type": "TPESampler", "attributes": {}}, "pruner": {...}}',
        )
    specs = []
    for key, default in (("sampler", default_sampler), ("pruner", default_pruner)):
        spec = data.get(key, default)
        if not isinstance(spec, dict) or "type" not in spec or set(spec) - {"type", "attributes"}:
            raise UserError('expected {"type": ClassName, "attributes": {...}}', file=path, field=key)
        attributes = spec.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise UserError("expected an object", file=path, field=f"{key}.attributes",
                            fix='write {"name": value, ...}')
        specs.append({"type": spec["type"], "attributes": dict(attributes)})
    return specs[0], specs[1]


def build(
    spec: Mapping[str, Any],
    key: str,
    path: str | Path | None,
    suggest: Callable[[optuna.Trial], Any],
    direction: str | list[str],
    **extra: Any,
) -> Any:
    """The `key` ("sampler" or "pruner") that `spec` names, its attributes checked and the object tried out.

    `extra` fills constructor arguments the attributes leave out (the sampler's seed); `suggest`
    draws a point of the study's space for the tryout; `direction` is a list for several objectives.
    """
    module, base = (optuna.samplers, optuna.samplers.BaseSampler) if key == "sampler" else (
        optuna.pruners, optuna.pruners.BasePruner)
    name = spec["type"]
    known = _classes(module, base)
    cls = known.get(name) if isinstance(name, str) else None
    if cls is None:
        raise UserError(f"unknown {key} {name!r}", file=path, field=f"{key}.type", fix="use one of: " + ", ".join(known))
    parameters = inspect.signature(cls).parameters
    accepted = f"accepted: {', '.join(parameters)}"
    for option, value in spec["attributes"].items():
        if option in parameters and not _fits(value, _annotation(cls, parameters[option])):
            wanted = _spelled(parameters[option].annotation)
            raise UserError(f"{name} takes {wanted}, not {value!r}", file=path, field=f"{key}.attributes.{option}",
                            fix=f"write a value of type {wanted}")
    attributes = {**{k: v for k, v in extra.items() if k in parameters}, **spec["attributes"]}
    try:
        built, fresh = cls(**attributes), cls(**attributes)
    except (TypeError, ValueError) as error:
        raise UserError(f"{name} rejects its attributes: {error}", file=path, field=f"{key}.attributes",
                        fix=accepted) from None
    startup = attributes.get("n_startup_trials", getattr(parameters.get("n_startup_trials"), "default", 0))
    trials = min(startup, MAX_STARTUP) + 2 if isinstance(startup, int) else 2
    try:
        _try_out(fresh, key, suggest, direction, trials)
    except Exception as error:  # whatever Optuna raises mid-trial is the attributes' fault here
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{name} fails on trial runs with these attributes: {problem}", file=path,
                        field=f"{key}.attributes", fix=f"change them, or choose another {key}; {accepted}") from None
    return built


def _classes(module: types.ModuleType, base: type) -> dict[str, type]:
    """The concrete samplers or pruners a module exports, by name."""
    found = {}
    for name in dir(module):
        value = getattr(module, name)
        if inspect.isclass(value) and issubclass(value, base) and not inspect.isabstract(value):
            found[name] = value
    return found


def _try_out(component: Any, key: str, suggest: Callable[[optuna.Trial], Any], direction: str | list[str],
             trials: int) -> None:
    """Trials in memory with reports and pruning checks, as a worker runs them (without reports
    for several objectives, which Optuna cannot prune)."""
    sampler = component if key == "sampler" else optuna.samplers.RandomSampler(seed=0)
    pruner = component if key == "pruner" else optuna.pruners.NopPruner()
    directions = [direction] if isinstance(direction, str) else direction
    with quiet_optuna():  # the tryout is no study of the user's
        study = optuna.create_study(sampler=sampler, pruner=pruner, directions=directions)
        for number in range(trials):
            trial = study.ask()
            suggest(trial)
            if len(directions) > 1:
                study.tell(trial, [float((number + i) % 3) for i in range(len(directions))])
                continue
            state = TrialState.COMPLETE
            for step in range(3):
                trial.report(float(number % 3 + step), step)
                if trial.should_prune():
                    state = TrialState.PRUNED
                    break
            study.tell(trial, float(number % 3) if state == TrialState.COMPLETE else None, state=state)


class _Names(dict):  # type: ignore[type-arg]
    """Names for evaluating an annotation string: the module's, builtins, then typing's; unknown ones are Any."""

    def __init__(self, module_globals: Mapping[str, Any]) -> None:
        super().__init__()
        self.module_globals = module_globals

    def __missing__(self, name: str) -> Any:
        for source in (self.module_globals, vars(builtins), vars(collections.abc), vars(typing)):
            if name in source:
                return source[name]
        return Any


def _annotation(cls: type, parameter: inspect.Parameter) -> Any:
    """A constructor parameter's annotation as a type; Any when it cannot be known."""
    annotation = parameter.annotation
    if annotation is inspect.Parameter.empty:
        return Any
    if not isinstance(annotation, str):
        return annotation
    try:
        names = getattr(inspect.unwrap(cls.__init__), "__globals__", {})  # unwrapped: Optuna's decorators
        return eval(annotation, {}, _Names(names))  # the annotation is Optuna's own source text
    except Exception:
        return Any


def _spelled(annotation: Any) -> str:
    """An annotation as the constructor's source writes it."""
    if isinstance(annotation, str):
        return annotation
    if annotation is type(None):
        return "None"
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(_spelled(arg) for arg in typing.get_args(annotation))
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value can stand for an argument annotated `hint` (shallow for what JSON cannot hold)."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is typing.Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if hint is None or hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    base = origin or hint
    if not isinstance(base, type):
        return True
    if not isinstance(value, base):
        return False
    if isinstance(value, dict) and len(args) == 2:
        return all(_fits(item, args[1]) for item in value.values())
    if isinstance(value, list) and len(args) == 1:
        return all(_fits(item, args[0]) for item in value)
    return True
