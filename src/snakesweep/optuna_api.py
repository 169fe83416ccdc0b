"""The one adapter over Optuna for the worker: storage calls that ride out outages, and Optuna's private API.

When Optuna changes a private name (`Trial._trial_id`, `Trial._cached_frozen_trial`,
`Study._storage`, `Study._get_trials`, `GridSampler._get_unvisited_grid_ids` and `_all_grids`), this
is the only module to fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Sequence
from typing import Any, TypeVar

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import GridSampler
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from snakesweep import storage as storages
from snakesweep import trials as vocabulary
from snakesweep.logs import quiet_optuna

T = TypeVar("T")
OUTAGE_FLOOR_S = 30.0


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    return trial._trial_id


def storage_of(study: optuna.Study) -> BaseStorage:
    return study._storage


def all_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Every trial of the study from its storage, even when a pruner handed over a filtered study."""
    return study._storage.get_all_trials(study._study_id, deepcopy=False)


def in_memory_study(**kwargs: Any) -> optuna.Study:
    """A study in memory (a probe, a copy for plots), without Optuna's "A new study created in memory"
    line, which would otherwise precede the output of `snakesweep check` and of `snakemake` itself."""
    with quiet_optuna():
        return optuna.create_study(**kwargs)


class StudyStore:
    """A worker's study: every call to the storage retried through an outage of up to `within_s`.

    A longer outage ends in storages.StorageUnreachable: one line, and the next run goes on.
    """

    def __init__(self, study: optuna.Study, heartbeat_s: float, url: str = "") -> None:
        self.study = study
        self.storage = storage_of(study)
        self.within_s = max(OUTAGE_FLOOR_S, vocabulary.stale_after_s(heartbeat_s))
        self.url = url  # the storage's, to mask what its driver says

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return storages.through_outages(function, *args, within_s=self.within_s, url=self.url, **kwargs)

    # -- reading ----------------------------------------------------------------------------
    def read(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A call that only reads: on SQLite it never waits in line with the writers (heartbeats)."""
        with storages.no_write_lock():
            return self.call(function, *args, **kwargs)

    def trials(self, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        return self.read(self.study.get_trials, deepcopy=False, states=states)

    def system_attrs(self, trial: optuna.Trial | FrozenTrial) -> dict[str, Any]:
        return self.read(self.storage.get_trial_system_attrs, trial_id(trial))

    def frozen(self, trial: optuna.Trial | FrozenTrial) -> FrozenTrial:
        return self.read(self.storage.get_trial, trial_id(trial))

    def frozen_after_writers(self, trial: FrozenTrial) -> FrozenTrial:
        """The trial read as a write would be (on SQLite: holding the write lock), so the time the
        read takes shows how long writes are held up."""
        return self.call(self.storage.get_trial, trial_id(trial))

    def study_attr(self, key: str) -> Any:
        return self.call(lambda: self.study.user_attrs.get(key))

    # -- writing ----------------------------------------------------------------------------
    def ask(self) -> optuna.Trial:
        return self.call(self.study.ask)

    def tell(self, trial: optuna.Trial, *args: Any, **kwargs: Any) -> None:
        # skip_if_finished: a tell retried after a lost connection may have gone through already.
        self.call(self.study.tell, trial, *args, skip_if_finished=True, **kwargs)

    def set_user_attr(self, trial: optuna.Trial | FrozenTrial, key: str, value: Any) -> None:
        if isinstance(trial, optuna.Trial):  # through the trial, so its cached copy sees the value too
            self.call(trial.set_user_attr, key, value)
        else:
            self.call(self.storage.set_trial_user_attr, trial_id(trial), key, value)

    def set_system_attr(self, trial: optuna.Trial | FrozenTrial, key: str, value: Any) -> None:
        self.call(self.storage.set_trial_system_attr, trial_id(trial), key, value)

    def set_study_attr(self, key: str, value: Any) -> None:
        self.call(self.study.set_user_attr, key, value)

    def report(self, trial: optuna.Trial, value: float, step: int) -> bool:
        """Report an intermediate value; whether the pruner stops the trial there."""
        self.call(trial.report, value, step)
        return self.call(trial.should_prune)

    def suggest(self, trial: optuna.Trial, suggest: Callable[[optuna.Trial], T]) -> T:
        """Sample the trial's parameters, riding out an outage like any other storage call.

        A retry must not sample again a parameter whose write reached the server before the
        connection broke (its row exists; a second insert would be refused): Optuna answers from
        its cached copy of the trial, so that copy is brought up to date first.
        """
        first = True

        def attempt() -> T:
            nonlocal first
            if not first:
                stored = self.storage.get_trial(trial_id(trial))
                trial._cached_frozen_trial.params.update(stored.params)
                trial._cached_frozen_trial.distributions.update(stored.distributions)
            first = False
            return suggest(trial)

        return self.call(attempt)

    def requeue(self, trial: optuna.Trial | FrozenTrial, *, always: bool = False) -> None:
        """Queue the same parameters again: a killed or interrupted trial is redone, not lost.

        A trial whose worker was killed outright is queued again `trials.STALE_RETRIES` times at
        most; an interrupted one (`always`: a signal, not the trial, stopped it) every time.
        """
        callback = storages.retry_callback(None if always else vocabulary.STALE_RETRIES)
        self.call(callback, self.study, self.frozen(trial))

    def fail_stale(self, trial: FrozenTrial, reason: str, before_requeue: Callable[[int], None] | None = None) -> bool:
        """Fail a trial whose worker is gone and requeue it; False when someone else got there first.

        `before_requeue(number)` runs in between, while no other attempt at the trial exists.
        """
        try:
            self.set_user_attr(trial, vocabulary.FAIL_REASON, reason)
            failed = self.call(self.storage.set_trial_state_values, trial_id(trial), TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        if failed:
            if before_requeue is not None:
                before_requeue(trial.number)
            self.requeue(trial)
        return bool(failed)

    def beat(self, trial: optuna.Trial) -> None:
        """One heartbeat: a new value of our attribute, which every storage keeps (trials.Silence)."""
        self.storage.set_trial_system_attr(trial_id(trial), vocabulary.HEARTBEAT, time.time())


class SweepGridSampler(GridSampler):
    """Optuna's GridSampler, fitted to a sweep whose budget is its grid and whose workers are many.

    - Every worker must build it with the same seed: the seed fixes the order of the grid, and
      trial k trains point k of that order, so concurrent workers never pick the same point.
    - A point whose trial failed (a crash, or a claim that lost the race for the budget) is not
      done: a later trial takes it again. Optuna's own counts any finished state as visited.
    - Ending the sweep is the budget's job: Optuna's `after_trial` calls `study.stop()`, which
      only works inside `study.optimize`, and workers ask and tell.
    """

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        return None

    def _get_unvisited_grid_ids(self, study: optuna.Study) -> list[int]:
        done: set[int] = set()
        running: set[int] = set()
        # The storage, not study.get_trials: HyperbandPruner hands samplers a study filtered to a bracket.
        for trial in all_trials(study):
            grid_id = trial.system_attrs.get(vocabulary.GRID_ID)
            if grid_id is None or vocabulary.is_warm_start(trial):  # another study's point is not done here
                continue
            if trial.state in vocabulary.FINISHED:
                done.add(grid_id)
            elif trial.state == TrialState.RUNNING:
                running.add(grid_id)
        everything = set(range(len(self._all_grids)))
        return sorted(everything - done - running) or sorted(everything - done)


class _OwnTrialsStudy(optuna.study.Study):
    """The study as its pruner sees it: warm-start trials left out, the rest (storage, id, cache) shared."""

    def __init__(self, study: optuna.Study) -> None:  # no Study.__init__: the same study, not a new load
        self.__dict__.update(study.__dict__)

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        trials = super()._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return [trial for trial in trials if not vocabulary.is_warm_start(trial)]

    @property
    def best_trial(self) -> FrozenTrial:
        best = vocabulary.best_trial(self.get_trials(deepcopy=False), self.direction.name.lower())
        if best is None:
            raise ValueError("No trials are completed yet.")
        return best


def pruning_own_trials(pruner: BasePruner) -> BasePruner:
    """The configured pruner, shown the study without its warm-start trials.

    Their curves were measured under another config, and the completed ones are the survivors of
    another sweep: compared with them, every new trial could be pruned, and they would end a
    pruner's start-up trials before any trial of this study completed. The pruner stays an
    instance of its class, because Optuna's samplers look for a HyperbandPruner to learn per bracket.
    """

    class OwnTrials(type(pruner)):  # type: ignore[misc, valid-type]
        def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
            return super().prune(_OwnTrialsStudy(study), trial)

    own = OwnTrials.__new__(OwnTrials)
    own.__dict__.update(pruner.__dict__)
    return own
