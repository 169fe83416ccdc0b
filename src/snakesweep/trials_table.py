"""The trials table: one row per trial, for `snakesweep trials`, results/trials.csv and the report.

With several objectives, one `value_<metric>` column per objective in place of `value`, and
`pareto_front`, whether the trial is on the front.
"""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from snakesweep import pareto
from snakesweep import trials as vocabulary
from snakesweep.definition import StudySpec

_STATE_ORDER = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "WAITING": 3, "FAIL": 4}
STATES = tuple(name.lower() for name in _STATE_ORDER)  # what `snakesweep trials --state` takes
TABLE_COLUMNS = [
    "number", "state", "value", "duration_s",
    vocabulary.WORKER, vocabulary.EPOCHS, vocabulary.RESUMED_FROM_EPOCH, vocabulary.PRUNED_AT_EPOCH,
    vocabulary.PRUNE_REASON, vocabulary.FAIL_REASON,
]
WARM_COLUMN = "warm_start"  # where a warm-start trial was measured; a column only when the study has some
FRONT_COLUMN = "pareto_front"  # several objectives: whether the trial is on the Pareto front


def objective_columns(spec: StudySpec) -> list[str]:
    """The value columns of the trials table: `value`, or with several objectives `value_<metric>` each."""
    return [f"value_{metric}" for metric in spec.metrics] if spec.several else ["value"]


def trials_table(study: optuna.Study, spec: StudySpec | None = None) -> pd.DataFrame:
    """One row per trial (surplus claims left out), parameters as `param_<name>` columns; warm-start
    trials are marked in the `warm_start` column with the study and trial they come from.

    With several objectives (`spec.several`), one `value_<metric>` column per objective in place of
    `value`, and `pareto_front`: whether the trial is on the front."""
    several = spec is not None and spec.several
    every = study.get_trials(deepcopy=False)
    values = objective_columns(spec) if several else ["value"]
    on_front = {t.number for t in pareto.pareto_front(every, spec.directions)} if several else set()
    columns = ["number", "state", *values, *([FRONT_COLUMN] if several else []), *TABLE_COLUMNS[3:]]
    rows = [_row(trial, values, on_front if several else None) for trial in vocabulary.table_trials(every)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    params = sorted(c for c in frame.columns if c.startswith("param_"))
    marked = [WARM_COLUMN] if WARM_COLUMN in frame.columns else []
    # Nullable dtypes: a conditional int parameter stays an int where other trials lack it.
    return frame.reindex(columns=columns + marked + params).convert_dtypes()


def _row(trial: FrozenTrial, value_columns: list[str], on_front: set[int] | None) -> dict[str, Any]:
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    complete = trial.state == TrialState.COMPLETE and trial.values is not None
    row = {
        "number": trial.number,
        "state": trial.state.name,
        **{column: value if complete else None
           for column, value in zip(value_columns, trial.values or [None] * len(value_columns))},
        "duration_s": round(duration, 2) if duration is not None else None,
        **{key: trial.user_attrs.get(key) for key in TABLE_COLUMNS[4:]},
    }
    if on_front is not None:
        row[FRONT_COLUMN] = trial.number in on_front
    if vocabulary.is_warm_start(trial):
        origin = trial.system_attrs[vocabulary.WARM_START]
        where = f" in {origin['storage']}" if origin.get("storage") else ""
        row[WARM_COLUMN] = f"{origin['study']} #{origin['trial']}{where}"
    row.update({f"param_{name}": value for name, value in trial.params.items()})
    return row


def sort_trials(frame: pd.DataFrame, sort: str, direction: str) -> pd.DataFrame:
    """value: completed trials best first, then pruned, running, waiting, failed, then warm-start trials
    (measured under another config); with several objectives the front first, each part by the first
    objective (`direction` is its direction); number; duration: longest first."""
    if sort == "value":
        rank = frame["state"].map(_STATE_ORDER).fillna(len(_STATE_ORDER))
        if WARM_COLUMN in frame.columns:
            rank = rank + frame[WARM_COLUMN].notna().astype(int) * (len(_STATE_ORDER) + 1)
        if FRONT_COLUMN in frame.columns:  # off the front: after the front, before the pruned trials
            rank = rank + (frame[FRONT_COLUMN] != True).astype(int) * 0.5  # noqa: E712 (nullable booleans)
        value = "value" if "value" in frame.columns else next(c for c in frame.columns if c.startswith("value_"))
        frame = (frame.assign(_rank=rank)
                 .sort_values(["_rank", value, "number"], ascending=[True, direction == "minimize", True],
                              na_position="last", kind="stable")
                 .drop(columns="_rank"))
    elif sort == "duration":
        frame = frame.sort_values(["duration_s", "number"], ascending=[False, True], na_position="last", kind="stable")
    elif sort == "number":
        frame = frame.sort_values("number", kind="stable")
    else:
        raise ValueError(f"unknown sort key {sort!r}")
    return frame.reset_index(drop=True)
