"""A trial's share of the study's budgets: its claim, each further epoch, the time it may still train.

The rules are the trial vocabulary's (snakesweep.trials); this is the worker's side of them: what it
writes before it reads, and when it asks.
"""

from __future__ import annotations

import math
import time

import optuna

from snakesweep import budgets
from snakesweep import trials as vocabulary
from snakesweep.optuna_api import StudyStore
from snakesweep.budgets import Limits

REFRESH_S = 1.0
"""How often a running trial reads the study again for the hours left: a trial started elsewhere
shortens every running trial's share."""


class Allowance:
    """Asks the study, for one worker's trials, whether the budgets leave room."""

    def __init__(self, store: StudyStore, limits: Limits, direction: str) -> None:
        self.store = store
        self.limits = limits
        self.direction = direction
        self._deadline, self._next_read = math.inf, 0.0  # monotonic times

    def refuse_claim(self, trial: optuna.Trial) -> str | None:
        """The limit a new claim would exceed, or None: then it is trained."""
        self._deadline, self._next_read = math.inf, 0.0
        if {vocabulary.EPOCHS, vocabulary.TRAIN_S} & set(trial.user_attrs):
            # A requeued trial: what the failed one trained is not its own.
            self.store.set_user_attr(trial, vocabulary.EPOCHS, 0)
            self.store.set_user_attr(trial, vocabulary.TRAIN_S, None)
            self.store.set_system_attr(trial, vocabulary.EPOCHS_HELD, 1)
        return budgets.claim_refusal(trial.number, self.store.trials(), self.limits, self.direction, time.time())

    def grant_epoch(self, trial: optuna.Trial, trained: int) -> bool:
        """Whether the trial may train one more epoch after `trained`: its hold is written, then counted."""
        if self.limits.epochs is None:
            return True
        self.store.set_system_attr(trial, vocabulary.EPOCHS_HELD, trained + 1)
        return not budgets.epochs_over(self.store.trials(), self.limits.epochs)

    def release(self, trial: optuna.Trial, trained: int) -> None:
        """The trainer has ended: the trial no longer holds an epoch it would train next."""
        if self.limits.epochs is not None:
            self.store.set_system_attr(trial, vocabulary.EPOCHS_HELD, trained)

    def seconds_left(self) -> float:
        """How long the trial may still train before the trial hours are spent (inf: no limit).

        Every running trial gets an equal share of what is left, so all reach the end together. The
        share is read again every REFRESH_S, but not once it has ended: the trial stops then rather
        than one more read later (a trial that ended early elsewhere leaves its time to new trials).
        """
        if self.limits.hours is None:
            return math.inf
        now = time.monotonic()
        if self._next_read <= now < self._deadline:
            self._deadline = now + budgets.seconds_left(self.store.trials(), self.limits.hours, time.time())
            self._next_read = now + REFRESH_S
        return self._deadline - now
