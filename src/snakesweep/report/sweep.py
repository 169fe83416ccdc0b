"""What the report shows, gathered once: the study's trials, their learning curves, the test scores."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from snakesweep import pareto
from snakesweep import trials as vocabulary
from snakesweep.optuna_api import in_memory_study
from snakesweep.paths import Paths
from snakesweep.study import StudySpec, n_trials
from snakesweep.trialfiles import EPOCH_PATTERN, read_epoch_metrics
from snakesweep.view import curve_key, open_study, run_dir

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass
class Curve:
    """One trial's per-epoch metric, from its epoch files (or what the pruner was told)."""

    number: int
    state: str
    epochs: list[int]
    values: list[float]
    value: float | None = None
    pruned_at: int | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sweep:
    config: Mapping[str, Any]
    spec: StudySpec
    study: optuna.Study
    trials: list[FrozenTrial]  # the study's own: surplus claims and warm-start trials left out
    curves: list[Curve]
    key: str | None
    warm: list[FrozenTrial] = field(default_factory=list)  # warm-start trials: the sampler's prior knowledge
    test: dict[str, Any] | None = None  # results/test_metrics.json
    retrained: dict[str, dict[str, Any]] = field(default_factory=dict)  # seed -> the retrained run's metrics.json

    @property
    def objective(self) -> int:
        return shown_objective(self.config, self.spec)

    @property
    def metric(self) -> str:
        return self.spec.metrics[self.objective]

    @property
    def minimize(self) -> bool:
        return self.spec.directions[self.objective] == "minimize"

    def value_of(self, trial: FrozenTrial) -> float | None:
        """A trial's value of `metric` (None unless it completed)."""
        return trial.values[self.objective] if trial.state == TrialState.COMPLETE and trial.values else None

    @cached_property
    def selection(self) -> pareto.Selection | None:
        """Several objectives: the Pareto front and the chosen trial, as results/best_params.json has them."""
        if not self.spec.several:
            return None
        return pareto.select(self.trials, self.spec.metrics, self.spec.directions, pareto.Rule.of(self.config))

    @property
    def budget(self) -> int | None:
        return n_trials(self.spec, self.config)

    def of_state(self, *states: TrialState) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state in states]

    @property
    def best(self) -> FrozenTrial | None:
        """The best trial; with several objectives, the one select.rule chose."""
        if self.spec.several:
            return self.selection.chosen if self.selection else None
        return vocabulary.best_trial(self.trials, self.spec.direction)

    @cached_property
    def finished_study(self) -> optuna.Study:
        """An in-memory copy holding only the real, finished trials, for Optuna's plot functions."""
        copy = in_memory_study(directions=list(self.spec.directions), study_name=self.spec.name)
        if self.spec.several:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                copy.set_metric_names(list(self.spec.metrics))
        copy.add_trials([t for t in self.trials if t.state in _FINISHED])
        return copy

    def test_key(self) -> str | None:
        """The test metric that matches the validation metric: best_validation_accuracy -> accuracy."""
        if not self.test:
            return None
        return matching_key(self.metric, self.test.get("mean", {}))

    def epochs_run(self, trial: FrozenTrial) -> int:
        """Epochs the trial trained, over all its repeats."""
        epochs = trial.user_attrs.get(vocabulary.EPOCHS)
        if isinstance(epochs, int):
            return epochs
        directory = Paths.of(self.config).trial_dir(self.spec.name, trial.number)
        if not directory.is_dir():
            return len(trial.intermediate_values)
        return sum(1 for p in directory.rglob("metrics_epoch_*.json") if EPOCH_PATTERN.match(p.name))


def matching_key(metric: str, keys: Mapping[str, Any]) -> str | None:
    candidates = [metric]
    stem = metric
    for prefix in ("best_", "validation_", "val_"):
        if stem.startswith(prefix):
            stem = stem[len(prefix):]
            candidates.append(stem)
    candidates += [f"test_{stem}", stem]
    return next((c for c in candidates if c in keys), None)


def load_sweep(
    config: Mapping[str, Any],
    *,
    test_metrics: str | Path | None = None,
    retrained: Mapping[Any, str | Path] | None = None,
) -> Sweep:
    """Read the study (read-only), the trials' epoch files and, when given, the final test metrics."""
    spec, study = open_study(config)
    every = study.get_trials(deepcopy=False)
    trials = vocabulary.real_trials(every)
    warm = [t for t in every if vocabulary.is_warm_start(t)]
    key = curve_key(config)
    index = shown_objective(config, spec)
    curves = [c for c in (_curve(config, spec, t, key, index) for t in trials) if c.epochs]
    test = _read_json(test_metrics) if test_metrics and Path(test_metrics).is_file() else None
    seeds = {str(seed): _read_json(path) for seed, path in (retrained or {}).items() if Path(path).is_file()}
    return Sweep(config=config, spec=spec, study=study, trials=trials, curves=curves, key=key, warm=warm,
                 test=test, retrained=seeds)


def shown_objective(config: Mapping[str, Any], spec: StudySpec) -> int:
    """The objective the report's single-metric plots show: with several, select.metric or the first."""
    chosen = config["select"]["metric"] if spec.several else None
    return spec.metrics.index(chosen) if chosen else 0


def _curve(config: Mapping[str, Any], spec: StudySpec, trial: FrozenTrial, key: str | None, index: int) -> Curve:
    epochs: list[int] = []
    values: list[float] = []
    if trial.state != TrialState.WAITING:
        if key:
            for epoch, metrics in read_epoch_metrics(run_dir(config, spec.name, trial.number, latest=False)).items():
                value = metrics.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    epochs.append(epoch)
                    values.append(float(value))
        if not epochs and trial.intermediate_values:
            epochs = sorted(trial.intermediate_values)
            values = [trial.intermediate_values[e] for e in epochs]
    pruned_at = trial.user_attrs.get(vocabulary.PRUNED_AT_EPOCH)
    if trial.state == TrialState.PRUNED:
        if pruned_at is None and epochs:
            pruned_at = epochs[-1]
        # A fast trainer may write a few more epochs before it is stopped: the curve ends where
        # the pruner stopped it.
        keep = [i for i, epoch in enumerate(epochs) if pruned_at is None or epoch <= pruned_at]
        epochs, values = [epochs[i] for i in keep], [values[i] for i in keep]
    return Curve(
        number=trial.number,
        state=trial.state.name,
        epochs=epochs,
        values=values,
        value=trial.values[index] if trial.state == TrialState.COMPLETE and trial.values else None,
        pruned_at=pruned_at,
        params=dict(trial.params),
    )


def _read_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
