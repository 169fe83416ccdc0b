"""The trial vocabulary every stage shares: attribute names, counting, the best trial, the stale rule.

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
PRUNE_REASON = "prune_reason"
"""Who stopped a pruned trial: "pruner", or "budget" when the study's budget ran out."""
TRAIN_S = "train_s"
"""Seconds from the trial's claim to the end of its training, whatever the outcome."""
LOG_TAIL = "log_tail"
RESUMED_FROM_EPOCH = "resumed_from_epoch"
"""The epoch a requeued trial continued at, from its predecessor's checkpoint; absent when it started at 0."""
PER_ATTEMPT = (EPOCHS, PRUNED_AT_EPOCH, FAIL_REASON, LOG_TAIL, RESUMED_FROM_EPOCH)
"""What one attempt at a trial recorded: not handed on to the copy a requeue makes."""

# System attributes: bookkeeping of ours, and of Optuna's retry callback and grid sampler.
SURPLUS = "snakesweep:surplus"
HEARTBEAT = "snakesweep:heartbeat"
WARM_START = "snakesweep:warm_start"  # {"study", "trial", "storage"}: where a warm-start trial was measured
FAILED_TRIAL = "failed_trial"
RETRY_HISTORY = "retry_history"
GRID_ID = "grid_id"
GAVE_UP = "snakesweep:gave_up"
"""Failed for good (a crash, a missing metric): its parameters are not queued again."""
INTERRUPTED = "snakesweep:interrupted"
"""Stopped by a signal to its worker: queued again however often that happens."""
STALE_RETRIES = 3
"""How often a trial whose worker was killed outright is queued again (an interrupted one: always)."""
EPOCHS_HELD = "snakesweep:epochs_held"
"""A running trial's epochs trained plus the one it may train next, written before it is counted;
back to the epochs trained once its trainer has ended."""

# Study attribute: why the study stopped before its budget, with the setting that decided it.
STOPPED = "snakesweep:stopped"

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
CLAIMED = (TrialState.RUNNING, TrialState.WAITING)
STALE_AFTER_BEATS = 2
"""A running trial silent for this many heartbeat intervals has lost its worker."""
HELD_UP_AFTER_BEATS = 0.25
"""A read that waited this many heartbeat intervals behind the storage's writers found writes held up."""


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


def best_trial(trials: Iterable[FrozenTrial], direction: str) -> FrozenTrial | None:
    """The completed trial with the best value for `direction`; the lowest number wins a tie."""
    ranked = ranked_complete(trials, direction)
    return ranked[0] if ranked else None


def ranked_complete(trials: Iterable[FrozenTrial], direction: str) -> list[FrozenTrial]:
    """The completed trials, best first (the order of `best_trial`)."""
    complete = [t for t in real_trials(trials) if t.state == TrialState.COMPLETE]
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


def sign_of_life(trial: FrozenTrial) -> object:
    """What changes while a trial's worker is alive: its newest heartbeat (None before the first)."""
    return trial.system_attrs.get(HEARTBEAT)


class Silence:
    """The stale rule: a running trial is stale once one watcher has seen no new heartbeat of it for
    `stale_after_s` of the time between its own reads of the storage, timed on its own clock, and a
    last read, queued behind the storage's writers, still shows the same beat.

    A busy machine or storage costs no trial that way: the time the watcher spends inside a read (a
    stalled server, a starved process) is time the owner's beat may be waiting too and does not
    count, and a last read that had to wait for the writers starts the count again, for the beat
    may be waiting among them. Clocks of other hosts, the timestamps beats carry, and a heartbeat
    a requeued trial inherits from the failed one never enter the verdict.
    """

    def __init__(self, heartbeat_s: float) -> None:
        self.after_s = stale_after_s(heartbeat_s)
        self.held_up_s = HELD_UP_AFTER_BEATS * heartbeat_s
        self._silent: dict[int, tuple[object, float]] = {}  # trial number -> (sign of life, silent s)
        self._last_read_end: float | None = None

    def stale(self, trials: Iterable[FrozenTrial], read_started: float, read_ended: float) -> list[FrozenTrial]:
        """The stale trials among `trials`, which one read returned between these monotonic times."""
        gap = read_started - self._last_read_end if self._last_read_end is not None else 0.0
        self._last_read_end = read_ended
        silent: dict[int, tuple[object, float]] = {}
        stale = []
        for trial in trials:
            if trial.state != TrialState.RUNNING or is_surplus(trial):
                continue
            sign = sign_of_life(trial)
            previous = self._silent.get(trial.number)
            seconds = previous[1] + gap if previous is not None and previous[0] == sign else 0.0
            silent[trial.number] = (sign, seconds)
            if seconds >= self.after_s:
                stale.append(trial)
        self._silent = silent
        return stale

    def confirmed(self, fresh: FrozenTrial, waited_s: float) -> bool:
        """Whether a fresh read of a trial found stale, which queued behind the storage's writers for
        `waited_s`, shows it still running with the same beat. A long wait means writes were held
        up, the owner's beat perhaps among them: the count starts again instead."""
        previous = self._silent.get(fresh.number)
        if previous is None or waited_s > self.held_up_s:
            self._silent.pop(fresh.number, None)
            return False
        return fresh.state == TrialState.RUNNING and previous[0] == sign_of_life(fresh)
