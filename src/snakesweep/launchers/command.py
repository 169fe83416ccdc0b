"""The `command` launcher: any program, run as an argument list without a shell.

    launcher:
      type: command
      command: [python, train.py, --config, "{config}", --out, "{serialization_dir}"]

Placeholders, written as in `str.format` (`{{` for a literal brace, `{trial_number:04d}` works):
`{config}` (the rendered config file), `{serialization_dir}` (where the metrics files go),
`{trial_number}`, `{threads}`, and for resuming `{checkpoint_dir}` (`<serialization_dir>/checkpoints`)
and `{resume_epoch}` (the first epoch to train: 0, or n + 1 when `checkpoint_dir/epoch_<n>` is the
checkpoint to continue from). The same two reach the trainer as SNAKESWEEP_CHECKPOINT_DIR and
SNAKESWEEP_RESUME_EPOCH. Paths are absolute. Parameter values never reach the command line: they
are in the config file, and no shell ever parses the arguments.

A leading `python` or `python3` runs the worker's own interpreter (its virtualenv or conda env).

The program is not held at the end of its epochs (`wait_for_verdicts` is for forked trainers): the
worker reads each epoch file as it appears and stops the program on a verdict, so it may train a
little past one.
"""

from __future__ import annotations

import os
import shutil
import string
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snakesweep.errors import UserError
from snakesweep.launchers.base import Launcher, string_list
from snakesweep.launchers.checkpoints import protocol_env
from snakesweep.launchers.process import PopenProcess
from snakesweep.process_env import thread_environment
from snakesweep.trialfiles import checkpoint_dir

FIELD = "launcher.command"
EXAMPLE = '[python, train.py, --config, "{config}", --out, "{serialization_dir}"]'
PLACEHOLDERS = ("config", "serialization_dir", "trial_number", "threads", "checkpoint_dir", "resume_epoch")
_SAMPLE = {"config": "config.json", "serialization_dir": "trial", "trial_number": 0, "threads": 1,
           "checkpoint_dir": "trial/checkpoints", "resume_epoch": 0}


def interpreter_or(program: str) -> str:
    """A leading `python` means this process's own interpreter: the one snakesweep is installed in."""
    return sys.executable if program in ("python", "python3") else program


@Launcher.register("command")
class CommandLauncher(Launcher):
    """Runs `command` in its own session, stdout and stderr appended to the trial's log."""

    fields = ("command",)

    def __init__(self, command: Sequence[str], *, file: str | Path | None = None) -> None:
        self.file = file
        self.command = string_list(command, field=FIELD, file=file, example=EXAMPLE)
        if not self.command or not self.command[0]:
            raise UserError("is empty", file=file, field=FIELD, fix=f"name the program to run: {EXAMPLE}")
        for argument in self.command:
            self._check_placeholders(argument)
        self.program = interpreter_or(self.command[0])

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, file: str | Path | None = None) -> CommandLauncher:
        if spec.get("command") is None:
            raise UserError(
                "the command launcher needs a command", file=file, field=FIELD, fix=f"add {EXAMPLE}"
            )
        return cls(spec["command"], file=file)

    def _check_placeholders(self, argument: str) -> None:
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(argument) if name is not None]
        except ValueError as error:
            raise UserError(
                f"argument {argument!r}: {error}",
                file=self.file,
                field=FIELD,
                fix="write a literal brace as {{ or }}",
            ) from None
        for name in names:
            if name not in PLACEHOLDERS:
                known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                raise UserError(
                    f"argument {argument!r} has the unknown placeholder {{{name}}}",
                    file=self.file,
                    field=FIELD,
                    fix=f"use {known}; write a literal brace as {{{{ or }}}}",
                )
        try:
            argument.format(**_SAMPLE)
        except (ValueError, TypeError) as error:
            raise UserError(
                f"argument {argument!r}: {error}", file=self.file, field=FIELD, fix="fix the format spec"
            ) from None

    def prepare(self) -> None:
        """Check that the program exists, so a typo fails the worker before its first trial."""
        if "{" in self.command[0] and self.program != sys.executable:
            return  # known per trial only
        if os.sep in self.program:
            found = os.path.isfile(self.program) and os.access(self.program, os.X_OK)
        else:
            found = shutil.which(self.program) is not None
        if not found:
            raise UserError(
                f"program {self.program!r} not found or not executable",
                file=self.file,
                field=FIELD,
                fix="give its absolute path, or put it on PATH",
            )

    def arguments(
        self, config_path: Path, serialization_dir: Path, *, trial_number: int, threads: int, resume_epoch: int = 0
    ) -> list[str]:
        """The argument list for one trial, placeholders filled in."""
        values = {
            "config": os.path.abspath(config_path),
            "serialization_dir": os.path.abspath(serialization_dir),
            "trial_number": trial_number,
            "threads": threads,
            "checkpoint_dir": str(checkpoint_dir(os.path.abspath(serialization_dir))),
            "resume_epoch": resume_epoch,
        }
        program = self.program if self.program == sys.executable else self.program.format(**values)
        return [program, *(argument.format(**values) for argument in self.command[1:])]

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
    ) -> PopenProcess:
        argv = self.arguments(config_path, serialization_dir, trial_number=trial_number, threads=threads,
                              resume_epoch=resume_epoch)
        child_env = {**os.environ, **thread_environment(threads), **protocol_env(serialization_dir, resume_epoch),
                     **dict(env)}
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            try:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=child_env,
                    start_new_session=True,
                    close_fds=True,
                )
            except (FileNotFoundError, PermissionError, NotADirectoryError) as error:
                raise UserError(
                    f"cannot run {argv[0]!r}: {error.strerror}",
                    file=self.file,
                    field=FIELD,
                    fix="give the program's absolute path, or put it on PATH",
                ) from None
        return PopenProcess(popen)
