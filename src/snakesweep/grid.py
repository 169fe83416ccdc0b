"""Optuna's GridSampler, fitted to a sweep whose budget is its grid and whose workers are many."""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.samplers import GridSampler
from optuna.trial import FrozenTrial, TrialState

_DONE = (TrialState.COMPLETE, TrialState.PRUNED)


class SweepGridSampler(GridSampler):
    """Every grid point trained once, by any number of workers.

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
        for trial in study._storage.get_all_trials(study._study_id, deepcopy=False):
            grid_id = trial.system_attrs.get("grid_id")
            if grid_id is None:
                continue
            if trial.state in _DONE:
                done.add(grid_id)
            elif trial.state == TrialState.RUNNING:
                running.add(grid_id)
        everything = set(range(len(self._all_grids)))
        return sorted(everything - done - running) or sorted(everything - done)
