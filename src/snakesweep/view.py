"""The read model of a study: its status, its best trial, its trials table, for the CLI and the report.

Everything here only reads. The storage is opened without creating tables, a local storage file
that does not exist is an error rather than a new empty store, and trial directories are only
listed: `snakesweep status` can run from another terminal, or another machine, at any time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from snakesweep import storage as storages
from snakesweep import budgets, pareto
from snakesweep import trials as vocabulary
from snakesweep.config import objective_metrics
from snakesweep.errors import UserError
from snakesweep.paths import REPEAT_PREFIX, Paths, run_dirs
from snakesweep.study import StudySpec, limits, load_study, study_spec
from snakesweep.trialfiles import epoch_file, read_epoch_metrics
from snakesweep.trials_table import (FRONT_COLUMN, STATES, TABLE_COLUMNS, WARM_COLUMN, objective_columns,  # noqa: F401
                                      sort_trials, trials_table)


def open_study(config: Mapping[str, Any]) -> tuple[StudySpec, optuna.Study]:
    """The config's study, opened for reading: no schema, no study and no file is created."""
    spec = study_spec(config)
    storage = storages.open_storage(storages.storage_url(config), read_only=True)
    return spec, load_study(config, spec, storage=storage)


def curve_key(config: Mapping[str, Any]) -> str | None:
    """The per-epoch metric to follow: the pruner's, or the objective's when it is read per epoch.

    With neither, AllenNLP's naming is tried: `best_validation_accuracy` is the best of the
    epochs' `validation_accuracy`.
    """
    objective = config["objective"]
    if objective["intermediate"]:
        return objective["intermediate"]
    metric = objective_metrics(config)[0]  # with several objectives, the first one's curve
    if objective["reduce"] != "final":
        return metric
    return metric[len("best_"):] if metric.startswith("best_") else None


def run_dir(config: Mapping[str, Any], study_name: str, number: int, *, latest: bool = True) -> Path:
    """Where a trial's training writes its epoch files: the trial directory, or with
    `study.repeats` its latest (or first, the one the pruner follows) `repeat-<k>` directory."""
    runs = run_dirs(Paths.of(config).trial_dir(study_name, number))
    return runs[-1] if latest else runs[0]


# -- status --------------------------------------------------------------------------------------
@dataclass
class RunningTrial:
    number: int
    worker: int | None
    started: str | None
    running_s: float | None
    epochs_done: int
    last_value: float | None
    last_epoch_age_s: float | None
    repeat: str | None = None


@dataclass
class Status:
    study: str
    storage: str
    metric: str
    direction: str
    budget: int | None
    counts: dict[str, int]
    finished: int
    best: dict[str, Any] | None
    running: list[RunningTrial] = field(default_factory=list)
    curve_key: str | None = None
    busy_s: float = 0.0
    trials_per_hour: float | None = None
    left_s: float | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)
    """Trials finished, epochs trained, trial hours, running trials included."""
    binding: str | None = None
    """The limit nearest to being spent: n_trials, epochs or hours."""
    stopped: str | None = None
    """Why the study stopped: n_trials, epochs, hours or patience; None while it goes on."""
    patience_stop: dict[str, Any] | None = None
    warm_start: int = 0  # trials of earlier studies given to the sampler, in none of the counts above
    front: int | None = None
    """Several objectives: the trials on the Pareto front; `best` is then the one select.rule chooses."""
    select_rule: str | None = None

    @property
    def done(self) -> bool:
        return self.stopped is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.front is None:  # one objective: the keys it always had
            del data["front"], data["select_rule"]
        data["done"] = self.done
        return data


def status(config: Mapping[str, Any], now: datetime | None = None) -> Status:
    """Counts, best so far, running trials per worker with their epoch, speed and time left."""
    spec, study = open_study(config)
    now = now or datetime.now()
    every = study.get_trials(deepcopy=False)
    trials = vocabulary.real_trials(every)
    counts = vocabulary.count_trials(trials)
    budget = limits(spec, config)
    spent = budgets.usage(trials, now.timestamp())
    recorded = study.user_attrs.get(vocabulary.STOPPED)
    stopped = budget.stop_reason(spent, recorded)
    key = curve_key(config)
    best = front = None
    if spec.several:  # while no front trial is within select.where's bounds, none is chosen yet
        on_front = pareto.pareto_front(trials, spec.directions)
        front = len(on_front)
        try:
            trial = pareto.choose(trials, spec.metrics, spec.directions, pareto.Rule.of(config)) if on_front else None
        except UserError:
            trial = None
    else:
        trial = vocabulary.best_trial(trials, spec.direction)
    if trial is not None:
        best = {"trial": trial.number, "value": trial.values[0] if spec.several else trial.value,
                "params": dict(trial.params)}
        if spec.several:
            best["values"] = pareto.values_of(trial, spec.metrics)
    running = [_running(config, spec, t, key, now) for t in trials if t.state == TrialState.RUNNING]
    running.sort(key=lambda r: (r.worker if r.worker is not None else math.inf, r.number))
    busy = busy_seconds(trials, now)
    rate = counts.finished / (busy / 3600) if counts.finished and busy > 0 else None
    binding = budget.binding(spent)
    return Status(
        study=spec.name,
        storage=storages.mask(storages.storage_url(config)),
        metric=", ".join(spec.metrics),
        direction=", ".join(spec.directions),
        budget=budget.n_trials,
        counts=asdict(counts),
        finished=counts.finished,
        best=best,
        running=running,
        curve_key=key,
        busy_s=busy,
        trials_per_hour=rate,
        left_s=0.0 if stopped else budgets.time_left(budget, binding, spent, busy, config["workers"]["count"]),
        limits=budget.to_dict(),
        used={"trials": spent.finished, "epochs": spent.epochs, "hours": spent.seconds / 3600},
        binding=binding,
        stopped=stopped,
        patience_stop=recorded if stopped == "patience" else None,
        warm_start=sum(map(vocabulary.is_warm_start, every)),
        front=front,
        select_rule=pareto.Rule.of(config).describe() if spec.several else None,
    )


def _running(config: Mapping[str, Any], spec: StudySpec, trial: FrozenTrial, key: str | None,
             now: datetime) -> RunningTrial:
    started = trial.datetime_start
    directory = run_dir(config, spec.name, trial.number)
    epochs = read_epoch_metrics(directory)
    last_value = age = None
    if epochs:
        last = max(epochs)
        value = epochs[last].get(key) if key else None
        last_value = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        try:
            age = max(now.timestamp() - epoch_file(directory, last).stat().st_mtime, 0.0)
        except OSError:
            age = None
        done = len(epochs)
    else:  # no shared file system with the workers: what the pruner was told
        done = len(trial.intermediate_values)
        if trial.intermediate_values:
            last_value = trial.intermediate_values[max(trial.intermediate_values)]
    repeats = config["study"]["repeats"]
    return RunningTrial(
        number=trial.number,
        worker=trial.user_attrs.get(vocabulary.WORKER),
        started=started.isoformat(timespec="seconds") if started else None,
        running_s=(now - started).total_seconds() if started else None,
        epochs_done=done,
        last_value=last_value,
        last_epoch_age_s=age,
        repeat=(f"{int(directory.name[len(REPEAT_PREFIX):]) + 1}/{repeats}"
                if directory.name.startswith(REPEAT_PREFIX) else None),
    )


def busy_seconds(trials: list[FrozenTrial], now: datetime) -> float:
    """Time during which at least one trial ran: pauses between runs of the workflow do not count."""
    spans = sorted(
        (t.datetime_start.timestamp(), (t.datetime_complete or now).timestamp())
        for t in trials if t.datetime_start is not None and t.state != TrialState.WAITING
    )
    total, current_start, current_end = 0.0, None, None
    for start, end in spans:
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


# -- best trial ----------------------------------------------------------------------------------
def render_params(spec: StudySpec, trial: FrozenTrial) -> dict[str, Any]:
    """A trial's params as the trial rendered them: constants and declared defaults included."""
    return spec.space.suggest(optuna.trial.FixedTrial(dict(trial.params)))


def best_of(config: Mapping[str, Any]) -> tuple[StudySpec, FrozenTrial]:
    """The study's best completed trial (with several objectives, the chosen one); a UserError while
    none has completed."""
    spec, study = open_study(config)
    if spec.several:  # the trial select.rule chooses from the front
        selection = pareto.select(study.get_trials(deepcopy=False), spec.metrics, spec.directions,
                                  pareto.Rule.of(config))
        best = selection.chosen if selection else None
    else:
        best = vocabulary.best_trial(study.get_trials(deepcopy=False), spec.direction)
    if best is None:
        raise UserError(
            f"no trial of {spec.name} has completed yet",
            file="config",
            field="study.storage",
            fix="wait for the first trial (snakesweep status shows progress)",
        )
    return spec, best


# -- trials --------------------------------------------------------------------------------------
def sorted_trials(config: Mapping[str, Any], sort: str = "value", states: list[str] | None = None,
                  limit: int | None = None) -> pd.DataFrame:
    """The trials table (results/trials.csv's columns): best first, or by number or duration."""
    spec, study = open_study(config)
    frame = trials_table(study, spec)
    if states:
        frame = frame[frame["state"].isin({s.upper() for s in states})]
    frame = sort_trials(frame, sort, spec.direction)
    return frame.head(limit) if limit is not None else frame
