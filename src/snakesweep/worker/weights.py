"""`trials.keep_weights: K`: weights stay only where they may still be needed.

After each finished trial a worker deletes the weight files (the launcher says which they are) of
- completed trials outside the K best so far (one that drops out of the top K loses them then),
- pruned trials, and failed ones whose parameters will not be trained again;
and leaves alone running and waiting trials, the K best, and interrupted trials that an attempt
may still continue. Metrics, config, params, logs and provenance always stay. K = -1 keeps all.

An interrupted trial keeps only its newest checkpoint: the worker that fails and requeues it
deletes the rest first, while no other attempt exists yet; the attempt that continues it moves the
checkpoint away and deletes what its earlier attempts still hold.

Several workers may clean at once, each from its own read of the study. That is safe because a
decision to delete never turns back: completed trials only join, so one outside the top K stays
outside, and a chain of attempts that has ended stays ended. A worker remembers the trials whose
weights it has deleted and skips them afterwards (a finished trial's attributes cannot change).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from snakesweep import pareto
from snakesweep import trials as vocabulary
from snakesweep.launchers import Launcher
from snakesweep.optuna_api import StudyStore
from snakesweep.paths import Paths, run_dirs

log = logging.getLogger("snakesweep.worker")


def delete_weights(launcher: Launcher, run_dir: Path, keep: Iterable[Path] = ()) -> int:
    """Delete the weight files of one run but those in `keep`; the bytes freed."""
    kept = {Path(p) for p in keep}
    freed = 0
    for path in launcher.weight_files(run_dir):
        if path in kept:
            continue
        try:
            freed += _size(path)
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
    return freed


def keep_checkpoint_only(launcher: Launcher, trial_dir: Path) -> None:
    """Of an interrupted trial's weights, keep only the newest whole checkpoint of each run."""
    if not trial_dir.is_dir():
        return
    for run in run_dirs(trial_dir):
        found = launcher.find_checkpoint(run).found
        delete_weights(launcher, run, keep=[run / name for name in found.files] if found else [])


class WeightKeeper:
    """Deletes what `trials.keep_weights` does not keep, after each finished trial of its worker."""

    def __init__(self, store: StudyStore, launcher: Launcher, paths: Paths, study: str,
                 direction: str | list[str], keep: int) -> None:
        self.store = store
        self.launcher = launcher
        self.paths = paths
        self.study = study
        self.directions = [direction] if isinstance(direction, str) else direction  # several: front by front
        self.keep = keep
        self.gone: set[int] = set()

    def before_requeue(self, number: int) -> None:
        """Called between failing an interrupted trial and queueing it again, when no other attempt
        can be reading its directory."""
        if self.keep >= 0:
            keep_checkpoint_only(self.launcher, self.paths.trial_dir(self.study, number))

    def clean(self) -> None:
        if self.keep < 0:
            return
        trials = self.store.trials()
        best = {t.number for t in pareto.ranked(trials, self.directions, first=self.keep)}
        for trial in trials:
            if not self._drops(trial, best, trials):
                continue
            directory = self.paths.trial_dir(self.study, trial.number)
            freed = sum(delete_weights(self.launcher, run) for run in run_dirs(directory)) if directory.is_dir() else 0
            self.gone.add(trial.number)
            if freed:
                log.info("trial %d: its weights deleted, %s (trials.keep_weights: %d)",
                         trial.number, f"{freed / 1e6:.1f} MB" if freed >= 100_000 else f"{freed} bytes", self.keep)

    def _drops(self, trial: FrozenTrial, best: set[int], trials: list[FrozenTrial]) -> bool:
        """Whether this trial's weights go now."""
        if trial.state in vocabulary.CLAIMED or vocabulary.is_surplus(trial):
            return False
        if trial.number in self.gone or trial.number in best:
            return False
        if trial.state == TrialState.FAIL:
            return not vocabulary.attempt_pending(trial, trials)
        return True


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
