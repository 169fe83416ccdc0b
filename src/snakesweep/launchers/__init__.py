"""Launchers start a trial's training; the config's `launcher.type` picks one.

    allennlp   AllenNLP's training, forked from a worker that already imported allennlp and torch
    command    any program, as an argument list without a shell
    python     `module:function(config, serialization_dir)`, forked like allennlp

All three run each trial as its own session, output appended to the trial's log, and return a
`TrainingProcess` whose `stop()` ends the whole process group. New launchers register with
`@Launcher.register("name")`, as AllenNLP's `Registrable` components do. A launcher also owns
what depends on its trainer: the device overrides, the data check, archiving and evaluation, which
files of a run are weights, and which checkpoint an interrupted run continues from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from snakesweep.errors import UserError
from snakesweep.launchers.allennlp import AllenNLPLauncher
from snakesweep.launchers.base import Launcher
from snakesweep.launchers.command import CommandLauncher
from snakesweep.launchers.fork import fork_training
from snakesweep.launchers.process import ForkedProcess, PopenProcess, TrainingProcess
from snakesweep.launchers.python import PythonLauncher

__all__ = [
    "AllenNLPLauncher",
    "CommandLauncher",
    "ForkedProcess",
    "Launcher",
    "PopenProcess",
    "PythonLauncher",
    "TrainingProcess",
    "fork_training",
    "make_launcher",
]

DEFAULT_TYPE = "allennlp"
COMMON_FIELDS = ("type", "grace_s")
"""Keys of the `launcher` section read by the worker, not by a launcher."""


def make_launcher(spec: Mapping[str, Any], *, file: str | Path | None = "config") -> Launcher:
    """The launcher that the config's `launcher` section describes.

    Keys that only another launcher type reads may be present with empty values (the schema's
    defaults fill them in); set to anything else they are a mistake, reported as such.
    """
    if not isinstance(spec, Mapping):
        raise UserError(
            "must be a mapping with a `type`", file=file, field="launcher", fix="write e.g. {type: allennlp}"
        )
    name = spec.get("type", DEFAULT_TYPE)
    available = Launcher.list_available()
    if name not in available:
        raise UserError(
            f"unknown launcher type {name!r}",
            file=file,
            field="launcher.type",
            fix=f"choose one of {', '.join(available)}",
        )
    cls = Launcher.by_name(name)
    owners = {key: other for other in available for key in Launcher.by_name(other).fields}
    for key, value in spec.items():
        if key in COMMON_FIELDS or key in cls.fields:
            continue
        if key not in owners:
            known = sorted({*COMMON_FIELDS, *owners})
            fix = f"use one of {', '.join(known)}"
            raise UserError(f"unknown key {key!r}", file=file, field=f"launcher.{key}", fix=fix)
        if value not in (None, [], (), ""):
            raise UserError(
                f"is read by the {owners[key]} launcher only, and this one is {name}",
                file=file,
                field=f"launcher.{key}",
                fix=f"remove it, or set launcher.type: {owners[key]}",
            )
    return cls.from_spec({key: spec[key] for key in cls.fields if key in spec}, file=file)
