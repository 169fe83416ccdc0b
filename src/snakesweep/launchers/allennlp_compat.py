"""Adjustments to AllenNLP 2.10.1, installed in the worker before it forks trials.

- allennlp-optuna's `optuna_pruner` trainer callback, accepted and left idle. allennlp-optuna
  configs prune with `trainer.callbacks: [{type: 'optuna_pruner'}]`, a callback that talks to the
  trial from inside the trainer. Here the worker prunes from the epoch files instead, so the same
  Jsonnet trains unchanged with a callback that does nothing.
- A checkpoint moved to another directory. The trainer's checkpoint keeps the absolute path of
  `best.th`, and a requeued trial continues in a directory of its own: restored, that path is made
  to point at the `best.th` moved along (or at nothing, when none came: the trainer then keeps its
  final weights, and the metrics stay those of its best epoch).

- The end-of-epoch handshake (snakesweep.launchers.verdicts): a trainer callback that waits for the
  worker's verdict in `on_epoch`, which AllenNLP's trainer calls after writing `metrics_epoch_N.json`.
  `add_epoch_verdicts` adds it to a trial's single-process `gradient_descent` trainer.

Distributed ranks are spawned, not forked: they import `snakesweep.launchers.allennlp_rank`
through `include_package`, which installs the same (the handshake's socket does not reach them).
"""

from __future__ import annotations

import os
from typing import Any

from snakesweep import trialfiles
from snakesweep.launchers import verdicts

NAME = "optuna_pruner"
VERDICT_CALLBACK = "snakesweep_epoch_verdict"


def install() -> None:
    register_optuna_pruner()
    restore_best_model_here()
    register_epoch_verdict()


def register_optuna_pruner() -> None:
    from allennlp.training.callbacks import TrainerCallback

    if NAME in TrainerCallback.list_available():
        return

    @TrainerCallback.register(NAME)
    class IdleOptunaPruner(TrainerCallback):
        """Stands in for allennlp-optuna's pruner; its arguments (monitor, ...) are accepted and unused."""

        def __init__(self, serialization_dir: str, **kwargs: Any) -> None:
            super().__init__(serialization_dir)


def restore_best_model_here() -> None:
    from allennlp.training.gradient_descent_trainer import GradientDescentTrainer

    restore = GradientDescentTrainer._maybe_restore_checkpoint
    if getattr(restore, "snakesweep", False):
        return

    def restore_here(self: GradientDescentTrainer) -> None:
        restore(self)
        best = self._best_model_filename
        if best and self._serialization_dir and os.path.dirname(best) != str(self._serialization_dir):
            here = os.path.join(self._serialization_dir, os.path.basename(best))
            self._best_model_filename = here if os.path.exists(here) else None

    restore_here.snakesweep = True  # type: ignore[attr-defined]
    GradientDescentTrainer._maybe_restore_checkpoint = restore_here


def register_epoch_verdict() -> None:
    from allennlp.training.callbacks import TrainerCallback

    if VERDICT_CALLBACK in TrainerCallback.list_available():
        return

    @TrainerCallback.register(VERDICT_CALLBACK)
    class EpochVerdict(TrainerCallback):
        """Waits in `on_epoch` for the worker's verdict; not after the last epoch: nothing follows it."""

        def on_epoch(self, trainer: Any, metrics: dict[str, Any], epoch: int, is_primary: bool = True,
                     **kwargs: Any) -> None:
            if is_primary and epoch + 1 < trainer._num_epochs:
                verdicts.epoch_written(epoch)


def add_epoch_verdicts(params: Any) -> None:
    """Add the verdict callback to a trial's `gradient_descent` trainer, when its worker waits to answer.

    Other trainer types may take no callbacks: their epoch files are watched without a handshake.
    """
    trainer = params.params.get("trainer")
    if trialfiles.after_epoch_written is None or not isinstance(trainer, dict):
        return
    if trainer.get("type", "gradient_descent") == "gradient_descent":
        trainer["callbacks"] = [*(trainer.get("callbacks") or []), {"type": VERDICT_CALLBACK}]
