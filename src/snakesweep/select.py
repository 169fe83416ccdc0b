"""After the sweep: the trials table, the best parameters and the best config."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from snakesweep import layout
from snakesweep import storage as storages
from snakesweep.errors import UserError
from snakesweep.render import render
from snakesweep.study import StudySpec, load_study, n_trials, study_spec
from snakesweep.worker import count_trials, is_surplus


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial (surplus claims left out), parameters as `param_<name>` columns."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if is_surplus(trial):
            continue
        rows.append(_row(trial))
    columns = ["number", "state", "value", "duration_s", "worker", "epochs", "pruned_at_epoch", "fail_reason"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    params = sorted(c for c in frame.columns if c.startswith("param_"))
    # Nullable dtypes: a conditional int parameter stays an int where other trials lack it.
    return frame.reindex(columns=columns + params).convert_dtypes()


def _row(trial: FrozenTrial) -> dict[str, Any]:
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    row = {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value if trial.state == TrialState.COMPLETE else None,
        "duration_s": round(duration, 2) if duration is not None else None,
        "worker": trial.user_attrs.get("worker"),
        "epochs": trial.user_attrs.get("epochs"),
        "pruned_at_epoch": trial.user_attrs.get("pruned_at_epoch"),
        "fail_reason": trial.user_attrs.get("fail_reason"),
    }
    row.update({f"param_{name}": value for name, value in trial.params.items()})
    return row


def best_summary(config: Mapping[str, Any], spec: StudySpec, study: optuna.Study) -> dict[str, Any]:
    """What results/best_params.json says: the answer first, then what explains it."""
    trials = study.get_trials(deepcopy=False)
    counts = count_trials(trials)
    if counts.complete == 0:
        raise UserError(
            f"no trial of {spec.name} completed ({counts.pruned} pruned, {counts.failed} failed)",
            file=str(layout.study_dir(config, spec.name) / "trials"),
            fix="read the failed trials' train.log; fix the trainer or config and run again",
        )
    best = study.best_trial
    params = render_params(spec, best)
    return {
        "params": params,
        "value": best.value,
        "metric": config["objective"]["metric"],
        "direction": spec.direction,
        "trial": best.number,
        "trial_dir": str(layout.trial_dir(config, spec.name, best.number)),
        "study": spec.name,
        "storage": storages.mask(storages.storage_url(config)),
        "n_trials": n_trials(spec, config),
        "counts": {"complete": counts.complete, "pruned": counts.pruned, "failed": counts.failed},
    }


def render_params(spec: StudySpec, trial: FrozenTrial) -> dict[str, Any]:
    """The best trial's params as the trial rendered them: constants and declared defaults included."""
    return spec.space.suggest(optuna.trial.FixedTrial(dict(trial.params)))


def best_config(config: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    model = config["model"]
    return render(model["config"], params, style=model["style"], overrides=model["overrides"], strict=model["strict"])


def _write_json(path: Path, data: Any) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return tmp


def select(config: Mapping[str, Any], trials_csv: str | Path, best_params: str | Path, best_config_path: str | Path) -> dict[str, Any]:
    """Write the three outputs together, or none of them."""
    spec = study_spec(config)
    study = load_study(config, spec)
    summary = best_summary(config, spec, study)
    rendered = best_config(config, summary["params"])
    outputs = [Path(trials_csv), Path(best_params), Path(best_config_path)]
    for path in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
    csv_tmp = outputs[0].with_name(outputs[0].name + ".tmp")
    trials_table(study).to_csv(csv_tmp, index=False)
    temps = [csv_tmp, _write_json(outputs[1], summary), _write_json(outputs[2], rendered)]
    for tmp, path in zip(temps, outputs):
        tmp.replace(path)
    return summary
