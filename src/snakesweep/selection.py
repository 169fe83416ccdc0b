"""After the sweep: the trials table, the best parameters and the best config."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from snakesweep import pareto
from snakesweep import storage as storages
from snakesweep.errors import UserError
from snakesweep.paths import Paths
from snakesweep.render import render
from snakesweep.study import StudySpec, limits, load_study, study_spec
from snakesweep.trialfiles import stage_json
from snakesweep.tracking import Listener
from snakesweep.trials import STOPPED, best_trial, count_trials, real_trials
from snakesweep.budgets import usage
from snakesweep.view import render_params, trials_table


def best_summary(config: Mapping[str, Any], spec: StudySpec, study: optuna.Study) -> dict[str, Any]:
    """What results/best_params.json says: the answer first, then what explains it."""
    trials = study.get_trials(deepcopy=False)
    counts = count_trials(trials)
    spent = usage(trials, time.time())
    budget = limits(spec, config)
    paths = Paths.of(config)
    chosen = None
    if spec.several:
        chosen = pareto.select(trials, spec.metrics, spec.directions, pareto.Rule.of(config))
        best = chosen.chosen if chosen else None
    else:
        best = best_trial(trials, spec.direction)
    if best is None:
        raise UserError(
            f"no trial of {spec.name} completed ({counts.pruned} pruned, {counts.failed} failed)",
            file=str(paths.trials_dir(spec.name)),
            fix="read the failed trials' train.log; fix the trainer or config and run again",
        )
    params = render_params(spec, best)
    answer: dict[str, Any] = {"params": params}
    if chosen is None:
        answer.update(value=best.value, metric=config["objective"]["metric"], direction=spec.direction)
    else:  # the chosen trial's params stay at the top: retraining and every reader use them as before
        answer.update(values=pareto.values_of(best, spec.metrics), metrics=list(spec.metrics),
                      directions=list(spec.directions), select=dict(config["select"]),
                      front=[{"trial": t.number, "params": render_params(spec, t),
                              "values": pareto.values_of(t, spec.metrics)} for t in chosen.front])
    return {
        **answer,
        "trial": best.number,
        "trial_dir": str(paths.trial_dir(spec.name, best.number)),
        "study": spec.name,
        "storage": storages.mask(storages.storage_url(config)),
        "n_trials": budget.n_trials,
        "counts": {"complete": counts.complete, "pruned": counts.pruned, "failed": counts.failed},
        "stopped": budget.stop_reason(spent, study.user_attrs.get(STOPPED)),
        "budget": budget.to_dict(),
        "used": {"trials": spent.finished, "epochs": spent.epochs, "hours": spent.seconds / 3600},
    }


def best_config(config: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    model = config["model"]
    return render(model["config"], params, style=model["style"], overrides=model["overrides"], strict=model["strict"])


def select(config: Mapping[str, Any], trials_csv: str | Path, best_params: str | Path, best_config_path: str | Path,
           listener: Listener | None = None) -> dict[str, Any]:
    """Write the three outputs together, or none of them; tell `listener` the summary and each trial's state."""
    spec = study_spec(config)
    study = load_study(config, spec)
    summary = best_summary(config, spec, study)
    rendered = best_config(config, summary["params"])
    outputs = [Path(trials_csv), Path(best_params), Path(best_config_path)]
    for path in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
    csv_tmp = outputs[0].with_name(outputs[0].name + ".tmp")
    trials_table(study, spec).to_csv(csv_tmp, index=False)
    temps = [csv_tmp, stage_json(outputs[1], summary), stage_json(outputs[2], rendered)]
    for tmp, path in zip(temps, outputs):
        tmp.replace(path)
    if listener is not None:
        listener.selected(summary, {t.number: t.state.name for t in real_trials(study.get_trials(deepcopy=False))})
    return summary
