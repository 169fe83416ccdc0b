"""The study's budgets: trials, epochs and trial hours used and left, the claim rule, and patience.

Part of the trial vocabulary: the attribute names and trial sets it reads are those of trials.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from snakesweep.trials import CLAIMED, EPOCHS, EPOCHS_HELD, FINISHED, TRAIN_S, is_surplus, is_warm_start, real_trials


@dataclass(frozen=True)
class Limits:
    """When the study stops: trials, epochs, trial hours (each None for no limit), and patience."""

    n_trials: int | None = None
    epochs: int | None = None
    hours: float | None = None
    patience: int | None = None
    min_delta: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def reached(self, usage: Usage) -> str | None:
        """The limit spent for good, by trials that no longer run; None while some is left."""
        if self.n_trials is not None and usage.finished >= self.n_trials:
            return "n_trials"
        if self.epochs is not None and usage.epochs_closed >= self.epochs:
            return "epochs"
        if self.hours is not None and usage.seconds_closed >= 3600 * self.hours:
            return "hours"
        return None

    def full(self, usage: Usage) -> bool:
        """No room for another trial now; a running trial may still fail or stop early and leave some."""
        return ((self.n_trials is not None and usage.finished + usage.running >= self.n_trials)
                or (self.epochs is not None and usage.epochs_closed + usage.epochs_running >= self.epochs)
                or (self.hours is not None and usage.seconds >= 3600 * self.hours))

    def used(self, usage: Usage) -> dict[str, float]:
        """For each limit set, the fraction used (running trials included); the largest binds."""
        fractions = {}
        if self.n_trials is not None:
            fractions["n_trials"] = usage.finished / self.n_trials
        if self.epochs is not None:
            fractions["epochs"] = usage.epochs / self.epochs
        if self.hours is not None:
            fractions["hours"] = usage.seconds / (3600 * self.hours)
        return fractions

    def binding(self, usage: Usage) -> str | None:
        fractions = self.used(usage)
        return max(fractions, key=lambda name: fractions[name]) if fractions else None

    def stop_reason(self, usage: Usage, recorded: Mapping[str, Any] | None) -> str | None:
        """Why the study stopped: a patience stop recorded under today's setting, or the limit reached."""
        if self.patience is not None and recorded and same_patience(recorded, self):
            return "patience"
        return self.reached(usage)


@dataclass
class Usage:
    """What the study has spent, read from its trials at one moment (surplus claims left out)."""

    finished: int = 0
    running: int = 0
    epochs: int = 0
    epochs_closed: int = 0
    """Epochs of the trials that no longer run (finished and failed): spent for good."""
    epochs_running: int = 0
    """Epochs the running trials hold: each one's trained epochs and the one it may train next."""
    seconds: float = 0.0
    seconds_closed: float = 0.0


def trained_epochs(trial: FrozenTrial) -> int:
    """Epochs the trial trained, over its repeats; the worker records them after every epoch."""
    if trial.state == TrialState.WAITING:  # a requeued trial carries the failed one's attributes
        return 0
    return int(trial.user_attrs.get(EPOCHS) or 0)


def epochs_held(trial: FrozenTrial) -> int:
    """Epochs a trial counts against the epoch budget.

    A running trial holds the epoch it may train next too (EPOCHS_HELD; its first until it asks
    for more, none once its trainer has ended), and a waiting one its first, so a claim or an epoch
    counts everything granted before it.
    """
    if trial.state == TrialState.WAITING:
        return 1
    if trial.state == TrialState.RUNNING:
        held = trial.system_attrs.get(EPOCHS_HELD)
        return trained_epochs(trial) + 1 if held is None else max(int(held), trained_epochs(trial))
    return trained_epochs(trial)


def trial_seconds(trial: FrozenTrial, now: float) -> float:
    """A trial's training time: from its claim to the end of its training, or to `now` while it runs.

    A trial whose worker was killed has no record of it: its time then runs to when it was failed.
    """
    if trial.state == TrialState.WAITING or trial.datetime_start is None:
        return 0.0
    if trial.state != TrialState.RUNNING and isinstance(trial.user_attrs.get(TRAIN_S), (int, float)):
        return float(trial.user_attrs[TRAIN_S])
    end = trial.datetime_complete.timestamp() if trial.datetime_complete is not None else now
    return max(0.0, end - trial.datetime_start.timestamp())


def usage(trials: Iterable[FrozenTrial], now: float) -> Usage:
    spent = Usage()
    for trial in real_trials(trials):
        seconds = trial_seconds(trial, now)
        spent.epochs += trained_epochs(trial)
        spent.seconds += seconds
        if trial.state == TrialState.RUNNING:
            spent.running += 1
            spent.epochs_running += epochs_held(trial)
        elif trial.state != TrialState.WAITING:
            spent.finished += trial.state in FINISHED
            spent.epochs_closed += trained_epochs(trial)
            spent.seconds_closed += seconds
    return spent


def claim_refusal(number: int, trials: Iterable[FrozenTrial], limits: Limits, direction: str,
                  now: float) -> str | None:
    """The budget rules for claim `number`, applied after it was created: the limit it would exceed, or None.

    Trial numbers are handed out in creation order, so the trials read after a claim include every
    older one. Trials: the finished ones and the older claims must leave room, so the study never
    holds more finished trials than asked for, without a lock. Epochs: see `epochs_over`; the claim
    holds the first epoch it will train. Hours: some must be left. Patience: no stop yet.
    """
    trials = list(trials)
    if limits.n_trials is not None:
        finished = sum(t.state in FINISHED and not is_warm_start(t) for t in trials)
        older = sum(t.number < number and t.state in CLAIMED and not is_surplus(t) for t in trials)
        if finished + older >= limits.n_trials:
            return "n_trials"
    if limits.epochs is not None and epochs_over(trials, limits.epochs, claim=number):
        return "epochs"
    if limits.hours is not None and usage(trials, now).seconds >= 3600 * limits.hours:
        return "hours"
    if limits.patience is not None and patience_stop(trials, direction, limits.patience, limits.min_delta):
        return "patience"
    return None


def epochs_over(trials: Iterable[FrozenTrial], budget: int, claim: int | None = None) -> bool:
    """The epoch rule: whether the epochs held exceed the budget; read right after writing one's own hold.

    Each hold (a claim's first epoch, a running trial's next one) is written before the trials are
    read, and granted only if the total read is within the budget. Of any two holds, the later
    reader sees the other's write, so the hold read last sees every granted one: the epochs granted
    never exceed the budget, without a lock. A claim leaves out the first epoch of newer claims,
    which count it in turn (their creation follows its own), so concurrent claims do not refuse
    each other.
    """
    total = 0
    for trial in real_trials(trials):
        held = epochs_held(trial)
        if claim is not None and trial.number > claim and trial.state in CLAIMED:
            held -= 1
        total += held
    return total > budget


def seconds_left(trials: Iterable[FrozenTrial], hours: float, now: float) -> float:
    """Seconds until the trial time reaches `hours`, should every running trial go on."""
    spent = usage(trials, now)
    return (3600 * hours - spent.seconds) / max(spent.running, 1)


def patience_stop(trials: Iterable[FrozenTrial], direction: str, patience: int,
                  min_delta: float) -> dict[str, Any] | None:
    """Where patience stops the study, or None: the first time `patience` finished trials in a row
    did not beat the best value by more than `min_delta`.

    Trials count in number (claim) order, up to the first one still running or waiting, and from
    the first completed one on. That part of the study only grows, whatever order trials finish
    in, so every worker, at any later time, finds the same stop.
    """
    sign = -1 if direction == "maximize" else 1
    best: FrozenTrial | None = None
    streak = 0
    for trial in sorted(real_trials(trials), key=lambda t: t.number):
        if trial.state in CLAIMED:
            return None
        if trial.state not in FINISHED:
            continue
        if trial.state == TrialState.COMPLETE and (best is None or sign * trial.value < sign * best.value - min_delta):
            best, streak = trial, 0
        elif best is not None:
            streak += 1
            if streak >= patience:
                return {"reason": "patience", "patience": patience, "min_delta": min_delta,
                        "best_trial": best.number, "after_trial": trial.number}
    return None


def same_patience(recorded: Mapping[str, Any], limits: Limits) -> bool:
    """Whether a recorded patience stop was decided under the config's setting."""
    return (recorded.get("reason") == "patience" and recorded.get("patience") == limits.patience
            and recorded.get("min_delta") == limits.min_delta)


def time_left(budget: Limits, binding: str | None, spent: Usage, busy_s: float, workers: int) -> float | None:
    """Seconds until the binding limit is reached, at the pace so far (hours: with the trials running)."""
    if binding == "hours" and budget.hours is not None:
        return max(3600 * budget.hours - spent.seconds, 0.0) / max(spent.running or workers, 1)
    if binding == "n_trials" and budget.n_trials is not None:
        done, total = spent.finished, budget.n_trials
    elif binding == "epochs" and budget.epochs is not None:
        done, total = spent.epochs, budget.epochs
    else:
        return None
    if done >= total:
        return 0.0
    return (total - done) / done * busy_s if done and busy_s > 0 else None
