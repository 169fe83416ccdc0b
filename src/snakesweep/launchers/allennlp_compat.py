"""allennlp-optuna's `optuna_pruner` trainer callback, accepted and left idle.

allennlp-optuna configs prune with `trainer.callbacks: [{type: 'optuna_pruner'}]`, a callback that
talks to the trial from inside the trainer. Here the worker prunes from the epoch files instead,
so the same Jsonnet trains unchanged with a callback that does nothing.
"""

from __future__ import annotations

from typing import Any

NAME = "optuna_pruner"


def register_optuna_pruner() -> None:
    from allennlp.training.callbacks import TrainerCallback

    if NAME in TrainerCallback.list_available():
        return

    @TrainerCallback.register(NAME)
    class IdleOptunaPruner(TrainerCallback):
        """Stands in for allennlp-optuna's pruner; its arguments (monitor, ...) are accepted and unused."""

        def __init__(self, serialization_dir: str, **kwargs: Any) -> None:
            super().__init__(serialization_dir)
