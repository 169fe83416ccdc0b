"""config.yaml: loading, validation against the one schema, defaults."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from snakesweep.errors import UserError

SCHEMA_NAME = "config.schema.yaml"


@cache
def schema() -> dict[str, Any]:
    """The config schema shipped with the package (workflow/schemas links to the same file)."""
    text = resources.files("snakesweep").joinpath("schemas", SCHEMA_NAME).read_text()
    return yaml.safe_load(text)


def _with_defaults(validator_class: type) -> type:
    """A validator class that fills in each property's default before descending into it."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def fill_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema_)

    return jsonschema.validators.extend(validator_class, {"properties": fill_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def validate_config(data: Mapping[str, Any] | None, source: str | Path = "config") -> dict[str, Any]:
    """Validate a config mapping and return a copy with every default filled in."""
    config = copy.deepcopy(dict(data or {}))
    errors = sorted(_Validator(schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        field = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        raise UserError(error.message, file=source, field=field, fix=_fix_for(error))
    _objectives(config, source)
    return config


DEFAULT_METRIC = "best_validation_accuracy"
DEFAULT_DIRECTION = "maximize"


def _objectives(config: dict[str, Any], source: str | Path) -> None:
    """One objective (objective.metric, study.direction) or several (objective.metrics,
    study.directions), never a mix; the one form's defaults filled in, so a config already
    completed passes again unchanged."""
    study, objective, select = config["study"], config["objective"], config["select"]
    several = "metrics" in objective or "directions" in study
    if not several:
        objective.setdefault("metric", DEFAULT_METRIC)
        study.setdefault("direction", DEFAULT_DIRECTION)
        return
    for field, single in (("objective.metric", "metric" in objective), ("study.direction", "direction" in study)):
        if single:
            raise UserError("one objective and several at once", file=source, field=field,
                            fix="with objective.metrics and study.directions, leave out objective.metric "
                                "and study.direction")
    metrics, directions = objective.get("metrics"), study.get("directions")
    if metrics is None or directions is None:
        given, missing = ("objective.metrics", "study.directions") if directions is None else (
            "study.directions", "objective.metrics")
        raise UserError(f"{given} without {missing}", file=source, field=missing,
                        fix="give both lists, one direction (maximize or minimize) for each metric")
    if len(metrics) < 2:
        raise UserError(f"{len(metrics)} metric in a list of several objectives", file=source,
                        field="objective.metrics", fix="list two metrics or more, or write one as objective.metric")
    if len(set(metrics)) != len(metrics):
        raise UserError("a metric is listed twice", file=source, field="objective.metrics",
                        fix="list each metric once")
    if len(directions) != len(metrics):
        raise UserError(f"{len(directions)} directions for {len(metrics)} metrics", file=source,
                        field="study.directions", fix="give one direction for each of objective.metrics, in order")
    if study["patience"] is not None:
        raise UserError("patience needs one objective: with several there is no single best value to improve",
                        file=source, field="study.patience",
                        fix="leave study.patience out and bound the sweep with n_trials or study.budget")
    if select["metric"] is not None and select["metric"] not in metrics:
        raise UserError(f"{select['metric']!r} is not one of objective.metrics", file=source,
                        field="select.metric", fix="use one of: " + ", ".join(metrics))
    for name in select["where"]:
        if name not in metrics:
            raise UserError(f"{name!r} is not one of objective.metrics", file=source, field=f"select.where.{name}",
                            fix="bound one of: " + ", ".join(metrics))


def objective_metrics(config: Mapping[str, Any]) -> list[str]:
    """The metric names of a completed config: [objective.metric], or objective.metrics."""
    objective = config["objective"]
    return list(objective["metrics"]) if "metrics" in objective else [objective["metric"]]


def objective_directions(config: Mapping[str, Any]) -> list[str]:
    """Their directions, in the same order."""
    study = config["study"]
    return list(study["directions"]) if "directions" in study else [study["direction"]]


def _fix_for(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return "allowed keys: " + ", ".join(allowed)
    if error.validator == "enum":
        return "use one of: " + ", ".join(map(str, error.validator_value))
    return f"see {SCHEMA_NAME} for what this field takes"


def load_config(path: str | Path) -> dict[str, Any]:
    """Read, validate and complete a config.yaml."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError("file not found", file=path, fix="pass an existing --configfile") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"not valid YAML: {getattr(error, 'problem', error)}", file=where) from None
    if data is not None and not isinstance(data, dict):
        raise UserError("the top level must be a mapping", file=path)
    return validate_config(data, path)


