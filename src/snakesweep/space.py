"""Search spaces: an ordered tuple of parameters, sampled define-by-run.

`snakesweep.space_parsing` reads them from allennlp-optuna's hparams.json or a compact mapping.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from snakesweep.errors import UserError


@dataclass(frozen=True)
class Param:
    """One parameter: sampled (int, float, categorical), a list of grid values, or a constant."""

    name: str
    kind: str  # "int", "float", "categorical", "grid" or "constant"
    low: float | None = None
    high: float | None = None
    step: float | None = None  # always set for "int" (1 by default)
    log: bool = False
    choices: tuple[Any, ...] = ()
    value: Any = None  # the constant's value
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    default: Any = None
    has_default: bool = False

    def distribution(self) -> optuna.distributions.BaseDistribution | None:
        """Optuna's distribution for this parameter; None for a constant."""
        if self.kind == "int":
            low, high, step = int(self.low), int(self.high), int(self.step)
            return optuna.distributions.IntDistribution(low, high, log=self.log, step=step)
        if self.kind == "float":
            return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.kind in ("categorical", "grid"):
            return optuna.distributions.CategoricalDistribution(self.choices)
        return None

    def suggest(self, trial: optuna.Trial) -> Any:
        """Draw this parameter from the trial (a constant returns its value)."""
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        if self.kind in ("categorical", "grid"):
            return trial.suggest_categorical(self.name, list(self.choices))
        return self.value

    def is_active(self, values: Mapping[str, Any]) -> bool:
        """Whether every condition holds under the values drawn so far."""
        return all(ref in values and any(_same(values[ref], v) for v in allowed) for ref, allowed in self.when)

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this parameter, or None if it can take it."""
        if self.kind in ("int", "float"):
            integer = self.kind == "int"
            if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
                return f"expected {'an integer' if integer else 'a number'}, got {value!r}"
            if not (math.isfinite(value) and self.low <= value <= self.high):
                return f"{value!r} is outside [{self.low}, {self.high}]"
            if self.step is not None and not _on_step(value - self.low, self.step):
                return f"{value!r} is not {self.low} plus a multiple of the step {self.step}"
            return None
        if self.kind == "constant":
            return None if _same(value, self.value) else f"{value!r} differs from the constant {self.value!r}"
        if any(_same(value, choice) for choice in self.choices):
            return None
        return f"{value!r} is not one of {list(self.choices)}"

    def grid_values(self) -> list[Any] | None:
        """Every value this parameter can take, if there are finitely many and no condition."""
        if self.when:
            return None
        if self.kind in ("categorical", "grid"):
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step)))
        if self.kind == "float" and self.step is not None:
            count = round((self.high - self.low) / self.step)
            return [min(round(self.low + i * self.step, 12), self.high) for i in range(count + 1)]
        return None

    def to_dict(self) -> Any:
        """The normalised compact form: a value, a list, or a mapping with a type."""
        if self.kind == "constant":
            return self.value
        if self.kind == "grid":
            return list(self.choices)
        spec: dict[str, Any] = {"type": self.kind}
        if self.kind == "categorical":
            spec["choices"] = list(self.choices)
        else:
            spec.update(low=self.low, high=self.high)
            if self.step is not None and not (self.kind == "int" and self.step == 1):
                spec["step"] = self.step
            if self.log:
                spec["log"] = True
        if self.when:
            spec["when"] = {ref: sorted(allowed, key=_canonical) for ref, allowed in self.when}
        if self.has_default:
            spec["default"] = self.default
        return spec


@dataclass(frozen=True)
class SearchSpace:
    """An ordered tuple of parameters and where they were read from."""

    params: tuple[Param, ...]
    source: str = "<space>"

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Every active parameter's value, drawn in declaration order; constants and defaults included."""
        values: dict[str, Any] = {}
        for param in self.params:
            if param.is_active(values):
                values[param.name] = param.suggest(trial)
            elif param.has_default:
                values[param.name] = param.default
        return values

    @property
    def is_grid(self) -> bool:
        """True when every parameter is a list of grid values or a constant."""
        return all(param.kind in ("grid", "constant") for param in self.params)

    def grid(self) -> dict[str, list[Any]]:
        """The search space for `optuna.samplers.GridSampler`; constants are never suggested, so left out."""
        grid: dict[str, list[Any]] = {}
        for param in self.params:
            if param.kind == "constant":
                continue
            values = param.grid_values()
            if values is None:
                why = "it has a condition" if param.when else f"a {param.kind} range without a step is not finite"
                raise _error(self.source, param.name, f"GridSampler cannot enumerate this parameter: {why}",
                             f"write it as a list of values ({param.name}: [a, b, c]) or choose another sampler")
            grid[param.name] = values
        return grid

    @property
    def grid_size(self) -> int | None:
        """Number of grid points when `is_grid`, else None."""
        return math.prod(len(values) for values in self.grid().values()) if self.is_grid else None

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Optuna distributions of every sampled parameter, conditional ones included."""
        return {p.name: d for p in self.params if (d := p.distribution()) is not None}

    def to_dict(self) -> dict[str, Any]:
        """The normalised compact mapping; `space_parsing.parse_space` reads it back to the same space."""
        return {param.name: param.to_dict() for param in self.params}

    def fingerprint(self) -> str:
        """Short digest of the normalised space: independent of format, key order and source."""
        return hashlib.sha256(_canonical(self.to_dict()).encode()).hexdigest()[:12]

    def check_point(self, point: Mapping[str, Any], where: str) -> None:
        """Check a start point for `study.enqueue_trial`; parameters it leaves out are left to the sampler."""
        if not isinstance(point, Mapping):
            raise _error(where, None, f"a start point must map parameter names to values, got {point!r}")
        names = [param.name for param in self.params]
        for name in point:
            if name not in names:
                raise _error(where, str(name), "unknown parameter", f"the space declares: {', '.join(names)}")
        values: dict[str, Any] = {}
        undecided: set[str] = set()
        for param in self.params:
            given = param.name in point
            if given and (problem := param.problem(point[param.name])) is not None:
                raise _error(where, param.name, problem, f"give a value the space allows ({self.source})")
            if any(ref in undecided for ref, _ in param.when):
                undecided.add(param.name)
            elif not param.is_active(values):
                if given:
                    needs = " and ".join(f"{ref} in {list(allowed)}" for ref, allowed in param.when)
                    raise _error(where, param.name, f"given, but inactive at this point (needs {needs})",
                                 "remove it from the start point or change the values it depends on")
                if param.has_default:
                    values[param.name] = param.default
            elif given or param.kind == "constant":
                values[param.name] = point[param.name] if given else param.value
            else:
                undecided.add(param.name)


def _error(source: str | Path, field: str | None, problem: str, fix: str | None = None) -> UserError:
    return UserError(problem, file=source, field=field, fix=fix)


def _on_step(span: float, step: float) -> bool:
    count = span / step
    return abs(count - round(count)) <= 1e-9 * max(1.0, abs(count))


def _same(a: Any, b: Any) -> bool:
    """Equal, without taking true for 1 (Optuna's categorical choices tell them apart)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
