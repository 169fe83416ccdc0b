"""Budgets in compute: epochs and trial hours, exact over concurrent workers and reruns."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from snakesweep.config import load_config
from snakesweep.selection import select
from snakesweep.errors import UserError
from snakesweep.study import create_study, limits, load_study, study_spec
from snakesweep.trialfiles import EPOCH_PATTERN
from snakesweep.trials import EPOCHS_HELD, real_trials
from snakesweep.budgets import Limits, claim_refusal, epochs_over, trial_seconds
from tests.conftest import ROOT, write_project
from tests.test_worker import NO_PRUNING, finish, worker

LOCKSTEP = {"type": "python", "function": "tests.trainers.lockstep:train"}
SLEEPY = {"type": "python", "function": "tests.trainers.sleepy:train"}
SPACE_VARS = "local lr = std.parseJson(std.extVar('lr')); local layers = std.parseJson(std.extVar('layers')); "


T0 = datetime(2025, 1, 1)


def frozen(number, value=None, *, state=TrialState.COMPLETE, epochs=None, held=None):
    """A trial as the storage returns it: trial n starts at second n and runs for one."""
    start = T0 + timedelta(seconds=number)
    return FrozenTrial(number=number, trial_id=number, state=state, value=value if state == TrialState.COMPLETE else None,
                       values=None, datetime_start=start,
                       datetime_complete=None if state in (TrialState.RUNNING, TrialState.WAITING) else start + timedelta(seconds=1),
                       params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
                       user_attrs={} if epochs is None else {"epochs": epochs},
                       system_attrs={} if held is None else {EPOCHS_HELD: held}, intermediate_values={})


def test_the_epoch_rule_counts_what_running_trials_hold_and_lets_older_claims_go_first():
    # Trial 0 trained 6 epochs; trial 1 trained 2 and holds its third; trials 2 and 3 are new claims.
    trials = [frozen(0, 0.5, epochs=6), frozen(1, state=TrialState.RUNNING, epochs=2, held=3),
              frozen(2, state=TrialState.RUNNING), frozen(3, state=TrialState.RUNNING)]
    assert epochs_over(trials, 10) and not epochs_over(trials, 11)
    budget = Limits(epochs=10)
    assert claim_refusal(2, trials, budget, "maximize", 0) is None, "6 + 3 + its own 1: claim 3 counts claim 2"
    assert claim_refusal(3, trials, budget, "maximize", 0) == "epochs"
    trials[0] = frozen(0, 0.5, epochs=5)
    assert claim_refusal(3, trials, budget, "maximize", 0) is None
    waiting = frozen(4, state=TrialState.WAITING, epochs=7)  # requeued: the failed trial's epochs came along
    assert epochs_over(trials + [waiting], 10) and not epochs_over(trials + [waiting], 11), "it holds its first epoch"


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


def snakesweep_status(config_path, env):
    result = subprocess.run([sys.executable, "-m", "snakesweep.cli", "status", "--configfile", str(config_path)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


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
    status = snakesweep_status(config_path, run_env)
    spent = sum(t.user_attrs["epochs"] for t in trials)
    assert f"budget   {spent}/22 epochs used, {22 - spent} left (binds)" in status, status
    assert "the budget is reached" in status
    cut = [t for t in trials if t.state == TrialState.PRUNED]
    assert cut, "22 is no multiple of 4: some trial was stopped by the budget"
    assert all(t.user_attrs["prune_reason"] == "budget" for t in cut)
    assert all(len(t.intermediate_values) == t.user_attrs["epochs"] for t in cut), "its values stay for the sampler"
    assert len({t.user_attrs["worker"] for t in trials}) >= 2, "the trials were shared out"

    run_workers(config_path, run_env, 4)
    assert len(real(config_path)) == len(trials), "the same budget trains nothing more"

    edit_study(config_path, budget={"epochs": 35})
    status = snakesweep_status(config_path, run_env)
    assert f"budget   {spent}/35 epochs used, {35 - spent} left (binds)" in status
    assert f"left for {35 - spent} more epochs" in status, status
    rerun = run_workers(config_path, run_env, 3)
    more = check_epochs(config_path, 35, per_trial=4)
    results = tmp_path / "results"
    best = select(load_config(config_path), results / "trials.csv", results / "best_params.json",
                  results / "best_config.json")
    assert best["stopped"] == "epochs" and best["used"]["epochs"] == sum(t.user_attrs["epochs"] for t in more)
    assert best["n_trials"] is None and best["budget"]["epochs"] == 35
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
    status = snakesweep_status(config_path, run_env)
    assert "trial hours used, 0 left (binds)" in status and "the budget is reached" in status, status

    raised = sum(trial_seconds(t, 0) for t in trials) + 8  # 8 s more than the first run spent
    edit_study(config_path, budget={"hours": raised / 3600})
    run_workers(config_path, run_env, 2)
    more = check_hours(config_path, raised)
    assert len(more) > len(trials) and all(t.user_attrs["prune_reason"] == "budget" for t in more)


def test_without_a_grid_some_budget_is_required_and_a_budget_makes_n_trials_optional(tmp_path):
    config = load_config(write_project(tmp_path, config={"study": {"n_trials": None}}))
    with pytest.raises(UserError) as error:
        limits(study_spec(config), config)
    assert "study.n_trials" in str(error.value) and "study.budget.epochs" in str(error.value)
    path = write_project(tmp_path, config={"study": {"n_trials": None, "budget": {"hours": 0.5}}})
    config = load_config(path)
    assert limits(study_spec(config), config) == Limits(hours=0.5)
