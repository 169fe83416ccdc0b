"""Budgets in compute: epochs and trial hours, exact over concurrent workers and reruns."""

from __future__ import annotations

import json

import pytest
import yaml
from optuna.trial import TrialState

from snakesweep.config import load_config
from snakesweep.study import create_study, load_study
from snakesweep.trialfiles import EPOCH_PATTERN
from snakesweep.trials import real_trials, trial_seconds
from tests.conftest import write_project
from tests.test_worker import NO_PRUNING, finish, worker

LOCKSTEP = {"type": "python", "function": "tests.trainers.lockstep:train"}
SLEEPY = {"type": "python", "function": "tests.trainers.sleepy:train"}
SPACE_VARS = "local lr = std.parseJson(std.extVar('lr')); local layers = std.parseJson(std.extVar('layers')); "


def project(tmp_path, *, budget, launcher, jsonnet, storage=None, optuna_json=NO_PRUNING, objective=None, **study):
    # Heartbeats every 10 s: a busy machine must not make a trial look abandoned.
    config = {"study": {"n_trials": None, "budget": budget, "storage": storage, "heartbeat_s": 10, **study},
              "launcher": launcher, "workers": {"poll_s": 0.05}, "objective": objective or {}}
    path = write_project(tmp_path, config=config, jsonnet=SPACE_VARS + jsonnet)
    (tmp_path / "optuna.json").write_text(json.dumps(optuna_json))
    create_study(load_config(path))
    return path


def lockstep_project(tmp_path, storage_kind, *, epochs, budget):
    """Trials of `epochs` epochs each, by a trainer that never runs ahead of its worker."""
    url = (f"sqlite:///{tmp_path}/results/optuna.db" if storage_kind == "sqlite"
           else f"journal:{tmp_path}/results/journal.log")
    (tmp_path / "results").mkdir()
    jsonnet = "{lr: lr, layers: layers, epochs: %d, storage: '%s'}" % (epochs, url)
    return project(tmp_path, budget={"epochs": budget}, launcher=LOCKSTEP, jsonnet=jsonnet, storage=url)


def run_workers(config_path, env, count):
    processes = [worker(config_path, i, env=env) for i in range(count)]
    results = [finish(p, timeout=600) for p in processes]
    assert all(code == 0 for code, _ in results), results
    return "".join(output for _, output in results)


def edit_study(config_path, **changes):
    data = yaml.safe_load(config_path.read_text())
    data["study"].update(changes)
    config_path.write_text(yaml.safe_dump(data))


def real(config_path):
    return real_trials(load_study(load_config(config_path)).get_trials())


def epoch_files(config_path, number):
    root = config_path.parent / "results" / "studies"
    return [p for p in root.glob(f"*/trials/{number}/**/metrics_epoch_*.json") if EPOCH_PATTERN.match(p.name)]


def check_epochs(config_path, budget, per_trial):
    """Within one trial's worth of the budget and never over it, on the record and on disk."""
    trials = real(config_path)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    recorded = {t.number: t.user_attrs.get("epochs", 0) for t in trials}
    on_disk = {t.number: len(epoch_files(config_path, t.number)) for t in trials}
    assert recorded == on_disk, "every epoch trained is on the record"
    assert budget - per_trial < sum(recorded.values()) <= budget, recorded
    return trials


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_four_workers_train_no_more_epochs_than_the_budget_and_a_raised_budget_continues(tmp_path, run_env, storage):
    config_path = lockstep_project(tmp_path, storage, epochs=4, budget=22)
    run_workers(config_path, run_env, 4)
    trials = check_epochs(config_path, 22, per_trial=4)
    cut = [t for t in trials if t.state == TrialState.PRUNED]
    assert cut, "22 is no multiple of 4: some trial was stopped by the budget"
    assert all(t.user_attrs["prune_reason"] == "budget" for t in cut)
    assert all(len(t.intermediate_values) == t.user_attrs["epochs"] for t in cut), "its values stay for the sampler"
    assert len({t.user_attrs["worker"] for t in trials}) >= 2, "the trials were shared out"

    run_workers(config_path, run_env, 4)
    assert len(real(config_path)) == len(trials), "the same budget trains nothing more"

    edit_study(config_path, budget={"epochs": 35})
    rerun = run_workers(config_path, run_env, 3)
    more = check_epochs(config_path, 35, per_trial=4)
    assert len(more) > len(trials) and "Traceback" not in rerun
    assert {t.number: t.state for t in more if t.number in {c.number for c in cut}} == {
        c.number: TrialState.PRUNED for c in cut}, "trials stopped by the old budget stay as they were"


def spent_before(trials, moment):
    """Trial time spent by `moment` (a datetime), as the claim rule counts it."""
    return sum(max(0.0, min(trial_seconds(t, 0), (moment - t.datetime_start).total_seconds()))
               for t in trials if t.datetime_start < moment)


def check_hours(config_path, seconds):
    """Every trial was claimed while time was left, and the study spent all of it.

    How far past the budget the last trials ran is their workers' reaction and stop time: a figure
    of bench/budget.py, not something a test on a busy machine can bound.
    """
    trials = real(config_path)
    assert all(spent_before(trials, t.datetime_start) < seconds for t in trials)
    assert sum(trial_seconds(t, 0) for t in trials) >= seconds
    return trials


def test_four_workers_stop_at_the_hours_budget_and_a_raised_budget_continues(tmp_path, run_env):
    # Trials that would run for minutes: every one of them is running when the budget runs out.
    hours = 8 / 3600
    config_path = project(tmp_path, budget={"hours": hours}, launcher=SLEEPY,
                          jsonnet="{lr: lr, layers: layers, epochs: 5000, sleep_s: 0.05}", objective={"intermediate": None})
    run_workers(config_path, run_env, 4)
    trials = check_hours(config_path, 8)
    assert all(t.state == TrialState.PRUNED and t.user_attrs["prune_reason"] == "budget" for t in trials)

    raised = sum(trial_seconds(t, 0) for t in trials) + 8  # 8 s more than the first run spent
    edit_study(config_path, budget={"hours": raised / 3600})
    run_workers(config_path, run_env, 2)
    more = check_hours(config_path, raised)
    assert len(more) > len(trials) and all(t.user_attrs["prune_reason"] == "budget" for t in more)
