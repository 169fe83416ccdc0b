"""The trial vocabulary every stage shares: attribute names, counting, the budget rule, the best trial.

The worker writes these attributes; selection, retraining, inspection and the report read them.
None of those imports the worker: they all import this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

# User attributes: shown in the trials table.
WORKER = "worker"
EPOCHS = "epochs"
PRUNED_AT_EPOCH = "pruned_at_epoch"
FAIL_REASON = "fail_reason"
LOG_TAIL = "log_tail"
RESUMED_FROM_EPOCH = "resumed_from_epoch"
"""The epoch a requeued trial continued at, from its predecessor's checkpoint; absent when it started at 0."""
PER_ATTEMPT = (EPOCHS, PRUNED_AT_EPOCH, FAIL_REASON, LOG_TAIL, RESUMED_FROM_EPOCH)
"""What one attempt at a trial recorded: not handed on to the copy a requeue makes."""

# System attributes: bookkeeping of ours, and of Optuna's retry callback and grid sampler.
SURPLUS = "snakesweep:surplus"
HEARTBEAT = "snakesweep:heartbeat"
FAILED_TRIAL = "failed_trial"
RETRY_HISTORY = "retry_history"
GRID_ID = "grid_id"
GAVE_UP = "snakesweep:gave_up"
"""Failed for good (a crash, a missing metric): its parameters are not queued again."""
INTERRUPTED = "snakesweep:interrupted"
"""Stopped by a signal to its worker: queued again however often that happens."""
STALE_RETRIES = 3
"""How often a trial whose worker was killed outright is queued again (an interrupted one: always)."""

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
CLAIMED = (TrialState.RUNNING, TrialState.WAITING)
STALE_AFTER_BEATS = 2
"""A running trial silent for this many heartbeat intervals has lost its worker."""


@dataclass
class Counts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


_COUNTED = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


def is_surplus(trial: FrozenTrial) -> bool:
    """A claim that lost the race for the budget: closed at once, never trained, in no table."""
    return bool(trial.system_attrs.get(SURPLUS))


def real_trials(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials every table and count shows: surplus claims left out."""
    return [trial for trial in trials if not is_surplus(trial)]


def count_trials(trials: Iterable[FrozenTrial]) -> Counts:
    counts = Counts()
    for trial in real_trials(trials):
        name = _COUNTED[trial.state]
        setattr(counts, name, getattr(counts, name) + 1)
    return counts


def claim_is_surplus(number: int, trials: Iterable[FrozenTrial], budget: int) -> bool:
    """The budget rule: True when the finished trials and the claims older than `number` fill the budget.

    A claim is trained only if every older claim could finish and the total would still not exceed
    the budget, so the study never holds more finished trials than asked for, without a lock.
    """
    finished = older_claims = 0
    for trial in trials:
        if trial.state in FINISHED:
            finished += 1
        elif trial.number < number and trial.state in CLAIMED and not is_surplus(trial):
            older_claims += 1
    return finished + older_claims >= budget


def best_trial(trials: Iterable[FrozenTrial], direction: str) -> FrozenTrial | None:
    """The completed trial with the best value for `direction`; the lowest number wins a tie."""
    ranked = ranked_complete(trials, direction)
    return ranked[0] if ranked else None


def ranked_complete(trials: Iterable[FrozenTrial], direction: str) -> list[FrozenTrial]:
    """The completed trials, best first (the order of `best_trial`)."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and not is_surplus(t)]
    sign = -1 if direction == "maximize" else 1
    return sorted(complete, key=lambda t: (sign * t.value, t.number))


def earlier_attempts(system_attrs: Mapping[str, Any]) -> list[int]:
    """The numbers of the attempts a requeued trial continues, the newest first; empty for a first attempt."""
    return list(reversed(system_attrs.get(RETRY_HISTORY, [])))


def attempt_pending(trial: FrozenTrial, trials: Iterable[FrozenTrial]) -> bool:
    """Whether some attempt at this trial's parameters may still run: then its checkpoint may be needed.

    The newest attempt of its chain (this trial, or the newest copy that lists it among its earlier
    attempts) decides: one running or waiting is pending; a failed one too, unless it gave up or
    was killed outright once more than `STALE_RETRIES` allow, for then nothing queues it again.
    """
    later = [t for t in trials if trial.number in t.system_attrs.get(RETRY_HISTORY, ())]
    newest = max(later, key=lambda t: t.number, default=trial)
    if newest.state in CLAIMED:
        return True
    if newest.state != TrialState.FAIL or is_surplus(newest) or newest.system_attrs.get(GAVE_UP):
        return False
    exhausted = len(newest.system_attrs.get(RETRY_HISTORY, ())) >= STALE_RETRIES
    return bool(newest.system_attrs.get(INTERRUPTED)) or not exhausted


def stale_after_s(heartbeat_s: float) -> float:
    return STALE_AFTER_BEATS * heartbeat_s


def last_sign_of_life(trial: FrozenTrial) -> float:
    """When a running trial was last known alive: its newest heartbeat, or its claim.

    The claim counts too because a requeued trial inherits the failed one's system attributes,
    heartbeat included (Optuna's retry callback copies them): popped again, it would look stale
    until its new worker's first beat.
    """
    return max(trial.system_attrs.get(HEARTBEAT, 0.0), trial.datetime_start.timestamp())


def is_stale(trial: FrozenTrial, now: float, heartbeat_s: float) -> bool:
    """A running, real trial whose worker has not shown a sign of life for too long."""
    return (trial.state == TrialState.RUNNING and not is_surplus(trial)
            and last_sign_of_life(trial) < now - stale_after_s(heartbeat_s))
