"""Looking at a sweep, while it runs or after: its status, its best params, its trials.

Everything here only reads. The storage is opened without creating tables, a local storage file
that does not exist is an error rather than a new empty store, and trial directories are only
listed: `snakesweep status` can run from another terminal, or another machine, at any time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from snakesweep import layout
from snakesweep import storage as storages
from snakesweep.errors import UserError
from snakesweep.select import render_params
from snakesweep.study import StudySpec, load_study, n_trials, study_spec
from snakesweep.trialfiles import epoch_file, read_epoch_metrics
from snakesweep.worker import count_trials, is_surplus

FORMATS = ("text", "csv", "markdown")
SORT_KEYS = ("value", "number", "duration")
BEST_FORMATS = ("json", "allennlp-optuna")
_STATE_ORDER = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "WAITING": 3, "FAIL": 4}


def open_study(config: Mapping[str, Any]) -> tuple[StudySpec, optuna.Study]:
    """The config's study, opened for reading: no schema, no study and no file is created."""
    spec = study_spec(config)
    url = storages.storage_url(config)
    local = storages.local_file(url)
    if local is not None and not local.is_file():
        raise UserError(
            f"no sweep has started: the storage {storages.mask(url)} does not exist yet",
            file="config",
            field="study.storage",
            fix="start the sweep with snakemake (or snakesweep create-study), or pass the right --configfile",
        )
    storage = storages.open_storage(url)
    return spec, load_study(config, spec, storage=storage)


def curve_key(config: Mapping[str, Any]) -> str | None:
    """The per-epoch metric to follow: the pruner's, or the objective's when it is read per epoch.

    With neither, AllenNLP's naming is tried: `best_validation_accuracy` is the best of the
    epochs' `validation_accuracy`.
    """
    objective = config["objective"]
    if objective["intermediate"]:
        return objective["intermediate"]
    if objective["reduce"] != "final":
        return objective["metric"]
    metric = objective["metric"]
    return metric[len("best_"):] if metric.startswith("best_") else None


def run_dir(config: Mapping[str, Any], study_name: str, number: int, *, latest: bool = True) -> Path:
    """Where a trial's training writes its epoch files: the trial directory, or with
    `study.repeats` its latest (or first, the one the pruner follows) `repeat-<k>` directory."""
    directory = layout.trial_dir(config, study_name, number)
    repeats = [p for p in directory.glob("repeat-*") if p.name[len("repeat-"):].isdigit()]
    if not repeats:
        return directory
    pick = max if latest else min
    return pick(repeats, key=lambda p: int(p.name[len("repeat-"):]))


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
    budget: int
    counts: dict[str, int]
    finished: int
    best: dict[str, Any] | None
    running: list[RunningTrial] = field(default_factory=list)
    curve_key: str | None = None
    busy_s: float = 0.0
    trials_per_hour: float | None = None
    left_s: float | None = None

    @property
    def done(self) -> bool:
        return self.finished >= self.budget

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["done"] = self.done
        return data


def status(config: Mapping[str, Any], now: datetime | None = None) -> Status:
    """Counts, best so far, running trials per worker with their epoch, speed and time left."""
    spec, study = open_study(config)
    now = now or datetime.now()
    trials = [t for t in study.get_trials(deepcopy=False) if not is_surplus(t)]
    counts = count_trials(trials)
    budget = n_trials(spec, config)
    key = curve_key(config)
    best = None
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        pick = max if spec.direction == "maximize" else min
        trial = pick(complete, key=lambda t: t.value)
        best = {"trial": trial.number, "value": trial.value, "params": dict(trial.params)}
    running = [_running(config, spec, t, key, now) for t in trials if t.state == TrialState.RUNNING]
    running.sort(key=lambda r: (r.worker if r.worker is not None else math.inf, r.number))
    busy = busy_seconds(trials, now)
    rate = counts.finished / (busy / 3600) if counts.finished and busy > 0 else None
    remaining = max(budget - counts.finished, 0)
    left = remaining / rate * 3600 if rate else None
    return Status(
        study=spec.name,
        storage=storages.mask(storages.storage_url(config)),
        metric=config["objective"]["metric"],
        direction=spec.direction,
        budget=budget,
        counts=asdict(counts),
        finished=counts.finished,
        best=best,
        running=running,
        curve_key=key,
        busy_s=busy,
        trials_per_hour=rate,
        left_s=left if remaining else 0.0,
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
        worker=trial.user_attrs.get("worker"),
        started=started.isoformat(timespec="seconds") if started else None,
        running_s=(now - started).total_seconds() if started else None,
        epochs_done=done,
        last_value=last_value,
        last_epoch_age_s=age,
        repeat=f"{int(directory.name[len('repeat-'):]) + 1}/{repeats}" if directory.name.startswith("repeat-") else None,
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


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def format_status(state: Status) -> str:
    counts = state.counts
    lines = [
        f"study    {state.study}",
        f"storage  {state.storage}",
        f"trials   {state.finished}/{state.budget} finished ({counts['complete']} complete, "
        f"{counts['pruned']} pruned), {counts['failed']} failed, {counts['running']} running, "
        f"{counts['waiting']} waiting",
    ]
    if state.best:
        params = ", ".join(f"{k}={_param(v)}" for k, v in state.best["params"].items())
        lines.append(f"best     {state.metric} {_value(state.best['value'])} ({state.direction}) "
                     f"in trial {state.best['trial']}: {params}")
    else:
        lines.append(f"best     - (no trial complete yet; {state.metric}, {state.direction})")
    if state.running:
        for i, trial in enumerate(state.running):
            who = f"worker {trial.worker}" if trial.worker is not None else "worker ?"
            parts = [f"{who}: trial {trial.number}", f"{trial.epochs_done} epochs done"]
            if trial.repeat:
                parts.append(f"repeat {trial.repeat}")
            if trial.last_value is not None:
                parts.append(f"{state.curve_key or 'last value'} {_value(trial.last_value)}")
            if trial.last_epoch_age_s is not None:
                parts.append(f"last epoch {duration(trial.last_epoch_age_s)} ago")
            parts.append(f"running {duration(trial.running_s)}")
            lines.append(("running  " if i == 0 else "         ") + ", ".join(parts))
    else:
        lines.append("running  none")
    if state.done:
        lines.append(f"speed    {_rate(state.trials_per_hour)}; the budget is reached")
    elif state.trials_per_hour:
        left = state.budget - state.finished
        lines.append(f"speed    {_rate(state.trials_per_hour)} over {duration(state.busy_s)}; "
                     f"about {duration(state.left_s)} left for {left} more trial{'s' if left != 1 else ''}")
    else:
        lines.append("speed    - (no trial finished yet)")
    return "\n".join(lines)


def _rate(rate: float | None) -> str:
    if rate is None:
        return "-"
    return f"{rate:,.0f} trials/hour" if rate >= 100 else f"{rate:.3g} trials/hour"


def _param(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# -- best params ---------------------------------------------------------------------------------
def best_params(config: Mapping[str, Any], fmt: str = "json") -> str:
    """The best trial's params: JSON as rendered (for `snakesweep render --params`), or
    `name=value ...` of the sampled params, as `allennlp best-params` printed them."""
    spec, study = open_study(config)
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if not is_surplus(t)]
    if not complete:
        raise UserError(
            f"no trial of {spec.name} has completed yet",
            file="config",
            field="study.storage",
            fix="wait for the first trial (snakesweep status shows progress)",
        )
    best = study.best_trial
    if fmt == "allennlp-optuna":
        return " ".join(f"{name}={value}" for name, value in best.params.items())
    if fmt == "json":
        return json.dumps(render_params(spec, best), indent=2)
    raise ValueError(f"unknown format {fmt!r}")


# -- trials --------------------------------------------------------------------------------------
def sorted_trials(config: Mapping[str, Any], sort: str = "value", states: list[str] | None = None,
                  limit: int | None = None) -> pd.DataFrame:
    """The trials table (results/trials.csv's columns): best first, or by number or duration."""
    from snakesweep.select import trials_table

    spec, study = open_study(config)
    frame = trials_table(study)
    if states:
        frame = frame[frame["state"].isin({s.upper() for s in states})]
    frame = sort_trials(frame, sort, spec.direction)
    return frame.head(limit) if limit is not None else frame


def sort_trials(frame: pd.DataFrame, sort: str, direction: str) -> pd.DataFrame:
    """value: completed trials best first, then pruned, running, waiting, failed; number; duration: longest first."""
    if sort == "value":
        rank = frame["state"].map(_STATE_ORDER).fillna(len(_STATE_ORDER))
        frame = (frame.assign(_rank=rank)
                 .sort_values(["_rank", "value", "number"], ascending=[True, direction == "minimize", True],
                              na_position="last", kind="stable")
                 .drop(columns="_rank"))
    elif sort == "duration":
        frame = frame.sort_values(["duration_s", "number"], ascending=[False, True], na_position="last", kind="stable")
    elif sort == "number":
        frame = frame.sort_values("number", kind="stable")
    else:
        raise ValueError(f"unknown sort key {sort!r}")
    return frame.reset_index(drop=True)


def format_trials(frame: pd.DataFrame, fmt: str = "text") -> str:
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    shown = frame.astype(object).where(frame.notna(), "")
    if "fail_reason" in shown:  # one line per trial: the full reason is in the CSV and the storage
        shown["fail_reason"] = shown["fail_reason"].map(lambda text: _shorten(str(text), 60))
    if fmt == "markdown":
        return shown.to_markdown(index=False)
    if fmt == "text":
        return "(no trials)" if frame.empty else shown.to_string(index=False)
    raise ValueError(f"unknown format {fmt!r}")


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


# -- watching ------------------------------------------------------------------------------------
def watch(config: Mapping[str, Any], interval: float, *, as_json: bool = False) -> int:
    """Print the status every `interval` seconds until Ctrl-C; a storage not there yet is waited for."""
    import sys
    import time

    interval = max(interval, 1.0)
    clear = sys.stdout.isatty() and not as_json
    try:
        while True:
            try:
                state = status(config)
                text = json.dumps(state.to_dict()) if as_json else format_status(state)
            except UserError as error:
                text = f"snakesweep: {error}"
            stamp = datetime.now().strftime("%H:%M:%S")
            if clear:
                sys.stdout.write("\033[H\033[J")
            footer = "" if as_json else f"\n{stamp}, every {interval:g} s; Ctrl-C stops"
            print(text + footer, flush=True)
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0
