"""Two adjustments to AllenNLP 2.10.1, installed in the worker before it forks trials.

- allennlp-optuna's `optuna_pruner` trainer callback, accepted and left idle. allennlp-optuna
  configs prune with `trainer.callbacks: [{type: 'optuna_pruner'}]`, a callback that talks to the
  trial from inside the trainer. Here the worker prunes from the epoch files instead, so the same
  Jsonnet trains unchanged with a callback that does nothing.
- A checkpoint moved to another directory. The trainer's checkpoint keeps the absolute path of
  `best.th`, and a requeued trial continues in a directory of its own: restored, that path is made
  to point at the `best.th` moved along (or at nothing, when none came: the trainer then keeps its
  final weights, and the metrics stay those of its best epoch).

Distributed ranks are spawned, not forked: they import `snakesweep.launchers.allennlp_rank`
through `include_package`, which installs the same two.
"""

from __future__ import annotations

import os
from typing import Any

NAME = "optuna_pruner"


def install() -> None:
    register_optuna_pruner()
    restore_best_model_here()


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
