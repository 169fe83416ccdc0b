"""The `python` launcher: a function `train(config: dict, serialization_dir: str)` in a forked process.

    launcher:
      type: python
      function: mypackage.train:train

The module is imported once per worker, in `prepare()`; each trial runs in a child forked from
the worker, so it starts with the module (and torch, if the module imports it) already loaded.
The function writes the epoch files itself (`snakesweep.trialfiles.write_epoch_metrics`); in a
worker's trial each call returns once the worker has judged that epoch (the pruner, the budgets),
and not at all when the trial is stopped there. If it returns a mapping and has written no
`metrics.json`, the mapping is written as `metrics.json`.
To resume, it saves with `trialfiles.saving_checkpoint` and starts from
`trialfiles.resume_checkpoint(serialization_dir)` (SNAKESWEEP_RESUME_EPOCH tells the same epoch).
Modules are looked up in the current directory too, as AllenNLP's `--include-package` does.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from snakesweep.errors import UserError
from snakesweep.launchers.base import Launcher, importable_cwd
from snakesweep.launchers.checkpoints import protocol_env
from snakesweep.launchers.fork import fork_training
from snakesweep.launchers.process import ForkedProcess
from snakesweep.trialfiles import read_final_metrics, write_final_metrics

FIELD = "launcher.function"
EXAMPLE = "mypackage.train:train"
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def split_reference(reference: Any, *, field: str = FIELD, file: str | Path | None = None) -> tuple[str, str]:
    """("module", "function") from "module:function", or a UserError."""
    if not isinstance(reference, str):
        raise UserError(
            "must be a string 'module:function'", file=file, field=field, fix=f"write e.g. {EXAMPLE}"
        )
    module_name, colon, attribute = reference.partition(":")
    if not colon or not _DOTTED.match(module_name) or not _DOTTED.match(attribute):
        raise UserError(
            f"{reference!r} is not of the form 'module:function'",
            file=file,
            field=field,
            fix=f"write e.g. {EXAMPLE}",
        )
    return module_name, attribute


def import_function(
    reference: str, *, field: str = FIELD, file: str | Path | None = None
) -> Callable[..., Any]:
    """The callable named by "module:function" ("module:Class.method" works too)."""
    module_name, attribute = split_reference(reference, field=field, file=file)
    try:
        with importable_cwd():
            target: Any = importlib.import_module(module_name)
    except Exception as error:  # an error inside the user's module is theirs to fix, not a crash of ours
        raise UserError(
            f"cannot import {module_name!r}: {type(error).__name__}: {error}",
            file=file,
            field=field,
            fix="check the module name, and that it imports in this environment",
        ) from None
    for name in attribute.split("."):
        if not hasattr(target, name):
            raise UserError(
                f"{module_name!r} has no {attribute!r}", file=file, field=field, fix="check the function name"
            )
        target = getattr(target, name)
    if not callable(target):
        raise UserError(f"{reference!r} is not callable", file=file, field=field, fix="name a function")
    return target


@Launcher.register("python")
class PythonLauncher(Launcher):
    """Calls `function(config, serialization_dir)` in a child forked from the worker."""

    fields = ("function",)

    def __init__(self, function: str, *, file: str | Path | None = None) -> None:
        self.file = file
        self.reference = function
        split_reference(function, file=file)
        self.function: Callable[..., Any] | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, file: str | Path | None = None) -> PythonLauncher:
        if spec.get("function") is None:
            raise UserError(
                "the python launcher needs a function", file=file, field=FIELD, fix=f"add e.g. {EXAMPLE}"
            )
        return cls(spec["function"], file=file)

    def prepare(self) -> None:
        if self.function is None:
            self.function = import_function(self.reference, file=self.file)

    def start(
        self,
        config_path: Path,
        serialization_dir: Path,
        *,
        trial_number: int,
        log_path: Path,
        threads: int,
        env: Mapping[str, str],
        resume_epoch: int = 0,
        wait_for_verdicts: bool = False,
    ) -> ForkedProcess:
        self.prepare()
        function = self.function
        assert function is not None
        directory = str(Path(serialization_dir).absolute())
        config_file = Path(config_path).absolute()

        def run() -> None:
            with open(config_file, encoding="utf-8") as handle:
                config = json.load(handle)
            result = function(config, directory)
            if isinstance(result, Mapping) and read_final_metrics(directory) is None:
                write_final_metrics(directory, result)

        env = {**protocol_env(serialization_dir, resume_epoch), **env}
        return fork_training(run, log_path=log_path, threads=threads, env=env, wait_for_verdicts=wait_for_verdicts)
