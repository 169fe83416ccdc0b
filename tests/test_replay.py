"""Sweeps that replay: one worker, a fixed seed and a deterministic trainer give the same trials twice."""

from __future__ import annotations

import json

from optuna.trial import TrialState

from snakesweep.config import load_config
from snakesweep.view import open_study, trials_table
from tests.test_budget import LOCKSTEP, project
from tests.test_worker import finish, worker

TPE_MEDIAN = {"sampler": {"type": "TPESampler", "attributes": {"n_startup_trials": 3}},
              "pruner": {"type": "MedianPruner", "attributes": {"n_startup_trials": 2}}}


def sweep(directory, env):
    """Eight trials of four epochs by one worker; the trials table without its times."""
    (directory / "results").mkdir(parents=True)
    url = f"sqlite:///{directory}/results/optuna.db"
    config_path = project(directory, budget={}, launcher=LOCKSTEP, storage=url, optuna_json=TPE_MEDIAN,
                          jsonnet="{lr: lr, layers: layers, epochs: 4, storage: '%s'}" % url, n_trials=8, seed=7)
    code, output = finish(worker(config_path, env=env), timeout=600)
    assert code == 0, output
    _, study = open_study(load_config(config_path))
    return trials_table(study).drop(columns=["duration_s"]), study


def test_one_worker_with_a_fixed_seed_replays_the_same_trials(tmp_path, run_env):
    first, study = sweep(tmp_path / "first", run_env)
    second, _ = sweep(tmp_path / "second", run_env)
    assert any(t.state == TrialState.PRUNED and t.user_attrs["prune_reason"] == "pruner" for t in study.trials), \
        "the pruner pruned"
    assert json.loads(first.to_json()) == json.loads(second.to_json())
