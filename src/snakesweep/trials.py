"""The trial vocabulary every stage shares: attribute names, counting, the budget rule, the best trial.

The worker writes these attributes; selection, retraining, inspection and the report read them.
None of those imports the worker: they all import this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

# User attributes: shown in the trials table.
WORKER = "worker"
EPOCHS = "epochs"
PRUNED_AT_EPOCH = "pruned_at_epoch"
FAIL_REASON = "fail_reason"
LOG_TAIL = "log_tail"

# System attributes: bookkeeping of ours, and of Optuna's retry callback and grid sampler.
SURPLUS = "snakesweep:surplus"
HEARTBEAT = "snakesweep:heartbeat"
WARM_START = "snakesweep:warm_start"  # {"study", "trial", "storage"}: where a warm-start trial was measured
FAILED_TRIAL = "failed_trial"
GRID_ID = "grid_id"

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


def is_warm_start(trial: FrozenTrial) -> bool:
    """A finished trial of an earlier study, added as the sampler's prior knowledge (see warm_start.py).

    Its value was measured under another config: it counts toward no budget and is never the best.
    """
    return WARM_START in trial.system_attrs


def real_trials(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials this study ran, which every count shows: surplus claims and warm-start trials left out."""
    return [trial for trial in trials if not (is_surplus(trial) or is_warm_start(trial))]


def table_trials(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials a table lists: surplus claims left out, warm-start trials kept (and marked by the table)."""
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
        if trial.state in FINISHED and not is_warm_start(trial):
            finished += 1
        elif trial.number < number and trial.state in CLAIMED and not is_surplus(trial):
            older_claims += 1
    return finished + older_claims >= budget


def best_trial(trials: Iterable[FrozenTrial], direction: str) -> FrozenTrial | None:
    """The completed trial with the best value for `direction`; the lowest number wins a tie."""
    complete = [t for t in real_trials(trials) if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    sign = -1 if direction == "maximize" else 1
    return min(complete, key=lambda t: (sign * t.value, t.number))


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
