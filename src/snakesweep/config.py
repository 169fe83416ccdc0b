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
    return config


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


