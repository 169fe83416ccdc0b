"""What every launcher shares: the registry and base class, and helpers for reading their config."""

from __future__ import annotations

import contextlib
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from snakesweep.errors import UserError
from snakesweep.launchers.checkpoints import CheckpointSearch, protocol_checkpoint, protocol_weights
from snakesweep.launchers.process import TrainingProcess

L = TypeVar("L", bound="type[Launcher]")


class Launcher(ABC):
    """Starts a trial's training. Chosen by `type` in the config's `launcher` section.

    Subclasses register with `@Launcher.register("name")`, list the config keys they read in
    `fields`, and build themselves from those keys in `from_spec`. The policy methods (overrides,
    data check, archive, evaluation, which files are weights, where a run resumes) default to what
    a launcher that knows nothing of its trainer can do, the trial file protocol; a launcher for a
    known framework overrides them.
    """

    fields: ClassVar[tuple[str, ...]] = ()
    _registry: ClassVar[dict[str, type[Launcher]]] = {}

    @classmethod
    def register(cls, name: str) -> Callable[[L], L]:
        def add(subclass: L) -> L:
            if name in cls._registry and cls._registry[name] is not subclass:
                raise ValueError(f"launcher type {name!r} is already registered")
            cls._registry[name] = subclass
            return subclass

        return add

    @classmethod
    def by_name(cls, name: str) -> type[Launcher]:
        return cls._registry[name]

    @classmethod
    def list_available(cls) -> list[str]:
        return sorted(cls._registry)

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: Mapping[str, Any], *, file: str | Path | None = None) -> Launcher:
        """Build from the keys of `fields` present in the config's `launcher` section."""

    def prepare(self) -> None:
        """Once per worker, before the first trial: check the setup and import what trials need."""

    @abstractmethod
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
    ) -> TrainingProcess:
        """Start training on the rendered config; stdout and stderr are appended to `log_path`.

        `resume_epoch` > 0: `serialization_dir` holds the checkpoint `find_checkpoint` found for
        that epoch (moved there from an interrupted run), and the training continues from it.
        `wait_for_verdicts`: where the launcher can, the trainer waits at the end of each epoch until
        the caller answers through the returned process's `verdicts` (a forked trainer); others ignore it.
        """

    def device_overrides(self) -> dict[str, Any]:
        """Overrides that put the training on this process's device; none by default."""
        return {}

    def run_overrides(self, seed: int, seed_keys: Sequence[str], user_overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The seed at every seed key, then the device overrides the user did not set.

        The caller applies its own overrides on top.
        """
        overrides: dict[str, Any] = {key: seed for key in seed_keys}
        for key, value in self.device_overrides().items():
            if key not in user_overrides:
                overrides[key] = value
        return overrides

    def check_data(self, rendered: Mapping[str, Any], source: str) -> None:
        """Check the data files a rendered config names; nothing by default."""

    def final_key_in_epoch_files(self, key: str) -> bool:
        """Whether every `metrics_epoch_N.json` of the trainer holds `key` when its `metrics.json` will.

        True lets the worker find a metric name that does not exist at the first epoch. An unknown
        trainer may write other keys at the end than after each epoch: False by default.
        """
        return False

    def weight_files(self, run_dir: Path) -> list[Path]:
        """The files and directories of a run that hold weights or optimizer state."""
        return protocol_weights(run_dir)

    def find_checkpoint(self, run_dir: Path) -> CheckpointSearch:
        """The newest checkpoint of a run that is whole and loadable, and the damaged newer ones."""
        return protocol_checkpoint(run_dir)

    def archive(self, model_dir: Path) -> None:
        """Package a retrained model for evaluation; nothing by default."""

    def evaluate(self, model_dir: Path, test_data: str, output: Path) -> None:
        """Write the test metrics of a retrained model to `output` as a JSON object."""
        raise UserError(
            "no way to evaluate a model of this launcher",
            file="config",
            field="retrain.evaluate_command",
            fix="give a command with {model_dir}, {test_data} and {output} that writes a JSON object of metrics",
        )


def string_list(value: Any, *, field: str, file: str | Path | None, example: str) -> list[str]:
    """A config value that must be a list of strings."""
    if isinstance(value, str):
        raise UserError(
            f"is the string {value!r}, not a list", file=file, field=field, fix=f"write a list: {example}"
        )
    items = list(value) if isinstance(value, Iterable) and not isinstance(value, Mapping) else None
    if items is None or any(not isinstance(item, str) for item in items):
        raise UserError("must be a list of strings", file=file, field=field, fix=f"write a list: {example}")
    return items


@contextlib.contextmanager
def importable_cwd() -> Iterator[None]:
    """Modules in the current directory importable for the block, as AllenNLP's --include-package."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)
