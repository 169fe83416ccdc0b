"""study.patience: a study that stops once its best value no longer improves, for every worker and every rerun."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from optuna.trial import TrialState

from snakesweep.config import load_config
from snakesweep.selection import select
from snakesweep.study import load_study
from snakesweep.trials import STOPPED, real_trials
from snakesweep.budgets import patience_stop
from tests.conftest import ROOT
from tests.test_budget import frozen, project
from tests.test_worker import finish, worker

def stop_after(values, patience, min_delta=0.0, direction="maximize"):
    trials = [frozen(i, v) if v is not None else frozen(i, state=TrialState.PRUNED) for i, v in enumerate(values)]
    stop = patience_stop(trials, direction, patience, min_delta)
    return None if stop is None else (stop["after_trial"], stop["best_trial"])


@pytest.mark.parametrize(("values", "patience", "min_delta", "direction", "expected"), [
    ([0.5, 0.6, 0.6, 0.59, 0.6], 3, 0.0, "maximize", (4, 1)),  # equal is no improvement
    ([0.5, 0.6, 0.6, 0.7, 0.6, 0.6], 3, 0.0, "maximize", None),  # trial 3 improved: two since
    ([0.5, 0.505, 0.509, 0.51], 3, 0.01, "maximize", (3, 0)),  # none beats 0.5 by more than 0.01
    ([0.5, 0.505, 0.509, 0.511], 3, 0.01, "maximize", None),
    ([3.0, 2.0, 2.5, None, 2.0], 3, 0.0, "minimize", (4, 1)),  # a pruned trial counts as no improvement
    ([None, None, None, 0.5, 0.4], 2, 0.0, "maximize", None),  # counting starts at the first completed trial
])
def test_the_patience_rule(values, patience, min_delta, direction, expected):
    assert stop_after(values, patience, min_delta, direction) == expected


def test_a_trial_still_running_holds_the_decision_back_and_failed_ones_do_not_count():
    trials = [frozen(0, 0.5), frozen(1, state=TrialState.RUNNING), frozen(2, 0.4), frozen(3, 0.4)]
    assert patience_stop(trials, "maximize", 2, 0.0) is None, "trial 1 may still beat trial 0"
    trials[1] = frozen(1, state=TrialState.FAIL)
    stop = patience_stop(trials, "maximize", 2, 0.0)
    assert (stop["after_trial"], stop["best_trial"]) == (3, 0)


def plateau_project(tmp_path, *, patience, n_trials=20):
    """Trial n scores 0.1 (n + 1) up to trial 2, then no better: the best is trial 2's."""
    url = f"sqlite:///{tmp_path}/results/optuna.db"
    (tmp_path / "results").mkdir()
    jsonnet = "{lr: lr, layers: layers, epochs: 1, plateau: 2, storage: '%s'}" % url
    return project(tmp_path, budget={}, launcher={"type": "python", "function": "tests.trainers.lockstep:train"},
                   jsonnet=jsonnet, storage=url, n_trials=n_trials, patience=patience)


def set_patience(config_path, patience):
    data = yaml.safe_load(config_path.read_text())
    data["study"]["patience"] = patience
    config_path.write_text(yaml.safe_dump(data))


def study_of(config_path):
    return load_study(load_config(config_path))


def test_a_study_whose_values_stop_improving_stops_and_a_rerun_does_nothing(tmp_path, run_env):
    config_path = plateau_project(tmp_path, patience=3)
    code, output = finish(worker(config_path, env=run_env), timeout=600)
    assert code == 0, output
    study = study_of(config_path)
    assert len(study.trials) == 6, "trials 3, 4 and 5 did not beat trial 2"
    assert study.user_attrs[STOPPED] == {"reason": "patience", "patience": 3, "min_delta": 0.0,
                                         "best_trial": 2, "after_trial": 5}
    assert "the study stops" in output

    code, output = finish(worker(config_path, 1, env=run_env), timeout=600)
    assert code == 0 and len(study_of(config_path).trials) == 6, "a rerun does nothing"

    config = load_config(config_path)
    results = tmp_path / "results"
    summary = select(config, results / "trials.csv", results / "best_params.json", results / "best_config.json")
    assert json.loads((results / "best_params.json").read_text())["stopped"] == "patience" == summary["stopped"]
    status = subprocess.run([sys.executable, "-m", "snakesweep.cli", "status", "--configfile", str(config_path)],
                            cwd=ROOT, env=run_env, capture_output=True, text=True)
    assert "stopped  by patience: 3 finished trials in a row did not beat trial 2" in status.stdout, status.stdout
    assert "stopped by patience" in status.stdout

    set_patience(config_path, 5)  # a new setting decides again
    code, output = finish(worker(config_path, env=run_env), timeout=600)
    assert code == 0, output
    study = study_of(config_path)
    assert len(study.trials) == 8 and study.user_attrs[STOPPED]["after_trial"] == 7

    set_patience(config_path, None)  # no patience: the study runs to its budget
    data = yaml.safe_load(config_path.read_text())
    data["study"]["n_trials"] = 10
    config_path.write_text(yaml.safe_dump(data))
    assert finish(worker(config_path, env=run_env), timeout=600)[0] == 0
    study = study_of(config_path)
    assert len(study.trials) == 10 and study.user_attrs[STOPPED] is None


def test_concurrent_workers_agree_on_the_stop(tmp_path, run_env):
    config_path = plateau_project(tmp_path, patience=3, n_trials=40)
    processes = [worker(config_path, i, env=run_env) for i in range(3)]
    results = [finish(p, timeout=600) for p in processes]
    assert all(code == 0 for code, _ in results), results
    study = study_of(config_path)
    trials = real_trials(study.trials)
    recorded = study.user_attrs[STOPPED]
    assert patience_stop(trials, "maximize", 3, 0.0) == recorded, "the stop every worker finds, to the end"
    assert len(trials) < 40 and not [t for t in trials if t.state == TrialState.RUNNING]
