"""What the `snakesweep` command prints: the status, the best params, the trials table, the watch loop."""

from __future__ import annotations

import json
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
    lines = [
        f"study    {state.study}",
        f"storage  {state.storage}",
        f"trials   {state.finished}/{state.budget} finished ({counts['complete']} complete, "
        f"{counts['pruned']} pruned), {counts['failed']} failed, {counts['running']} running, "
        f"{counts['waiting']} waiting",
    ]
    if state.warm_start:
        lines.append(f"warm     {state.warm_start} trials of earlier studies: the sampler's prior knowledge, "
                     "counted nowhere, never the best")
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
