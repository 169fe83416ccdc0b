"""What the `snakesweep` command prints: the status, the best params, the trials table, the watch loop."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial

from snakesweep.errors import UserError
from snakesweep.study import StudySpec
from snakesweep.view import Status, render_params, status

FORMATS = ("text", "csv", "markdown")
SORT_KEYS = ("value", "number", "duration")
BEST_FORMATS = ("json", "allennlp-optuna")


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
    of_budget = f"/{state.budget}" if state.budget is not None else ""
    lines = [
        f"study    {state.study}",
        f"storage  {state.storage}",
        f"trials   {state.finished}{of_budget} finished ({counts['complete']} complete, "
        f"{counts['pruned']} pruned), {counts['failed']} failed, {counts['running']} running, "
        f"{counts['waiting']} waiting",
    ]
    compute = _compute_budget(state)
    if compute:
        lines.append(f"budget   {compute}")
    if state.warm_start:
        lines.append(f"warm     {state.warm_start} trials of earlier studies: the sampler's prior knowledge, "
                     "counted nowhere, never the best")
    if state.front is not None:  # several objectives
        lines.append(f"front    {state.front} trials on the Pareto front of {state.metric} ({state.direction})")
    if state.best and state.front is not None:
        params = ", ".join(f"{k}={_param(v)}" for k, v in state.best["params"].items())
        values = ", ".join(f"{k} {_value(v)}" for k, v in state.best["values"].items())
        lines.append(f"chosen   trial {state.best['trial']} ({state.select_rule}): {values}; {params}")
    elif state.front:
        lines.append(f"chosen   - (no trial on the front is within the bounds yet: {state.select_rule})")
    elif state.front is not None:
        lines.append("chosen   - (no trial complete yet)")
    elif state.best:
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
    if state.stopped == "patience" and state.patience_stop:
        stop = state.patience_stop
        lines.append(f"stopped  by patience: {stop['patience']} finished trials in a row did not beat trial "
                     f"{stop['best_trial']} by more than {stop['min_delta']:g}")
    if state.done:
        why = "stopped by patience" if state.stopped == "patience" else "the budget is reached"
        lines.append(f"speed    {_rate(state.trials_per_hour)}; {why}")
    elif state.trials_per_hour:
        lines.append(f"speed    {_rate(state.trials_per_hour)} over {duration(state.busy_s)}; "
                     f"about {duration(state.left_s)} left {_what_is_left(state)}")
    else:
        lines.append("speed    - (no trial finished yet)")
    return "\n".join(lines)


def format_status_json(state: Status, indent: int | None = 2) -> str:
    """The status as strict JSON: a NaN or infinite value (a diverging run's metric) becomes null."""
    return json.dumps(_finite(state.to_dict()), indent=indent, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _compute_budget(state: Status) -> str:
    """`412/2000 epochs used, 1588 left (binds); 0.51/10 trial hours`: the binding unit first."""
    parts = []
    for unit, name, digits in (("epochs", "epochs", 12), ("hours", "trial hours", 3)):
        limit = state.limits.get(unit)
        if limit is None:
            continue
        used = state.used[unit]
        text = f"{used:.{digits}g}/{limit:g} {name} used, {max(limit - used, 0):.{digits}g} left"
        if state.binding == unit:
            parts.insert(0, text + " (binds)")
        else:
            parts.append(text)
    return "; ".join(parts)


def _what_is_left(state: Status) -> str:
    if state.binding == "epochs":
        left = state.limits["epochs"] - state.used["epochs"]
        return f"for {left:g} more epoch{'s' if left != 1 else ''}"
    if state.binding == "hours":
        running = state.counts["running"]
        return f"for {state.limits['hours'] - state.used['hours']:.3g} trial hours, {running} trials running"
    left = state.budget - state.finished if state.budget is not None else 0
    return f"for {left} more trial{'s' if left != 1 else ''}"


def _rate(rate: float | None) -> str:
    if rate is None:
        return "-"
    return f"{rate:,.0f} trials/hour" if rate >= 100 else f"{rate:.3g} trials/hour"


def _param(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_best_params(spec: StudySpec, best: FrozenTrial, fmt: str = "json") -> str:
    """JSON as the trial rendered them (for `snakesweep render --params`), or `name=value ...` of the
    sampled params, as `allennlp best-params` printed them."""
    if fmt == "allennlp-optuna":
        return " ".join(f"{name}={value}" for name, value in best.params.items())
    if fmt == "json":
        return json.dumps(render_params(spec, best), indent=2)
    raise ValueError(f"unknown format {fmt!r}")


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


def watch(config: Mapping[str, Any], interval: float, *, as_json: bool = False) -> int:
    """Print the status every `interval` seconds until Ctrl-C; a storage not there yet is waited for."""
    interval = max(interval, 1.0)
    clear = sys.stdout.isatty() and not as_json
    try:
        while True:
            try:
                state = status(config)
                text = format_status_json(state, indent=None) if as_json else format_status(state)
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
