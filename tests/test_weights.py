"""`trials.keep_weights`: weights stay for the K best completed trials and for interrupted trials that
may still be continued; everything else of a trial stays always."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from snakesweep.config import load_config
from snakesweep.launchers import make_launcher
from snakesweep.optuna_api import StudyStore
from snakesweep.paths import Paths
from snakesweep.study import create_study, load_study, study_spec
from snakesweep.trialfiles import saving_checkpoint, write_final_metrics
from snakesweep.trials import GAVE_UP, INTERRUPTED
from snakesweep.worker.weights import WeightKeeper
from tests.conftest import write_project
from tests.test_worker import NO_PRUNING, finish, make_config, trials, worker
from tests.workflow_project import make, snakemake


def weighted(directory: Path) -> bool:
    return any(p.suffix == ".pt" for p in directory.rglob("*"))


def trial_dirs(root: Path) -> dict[int, Path]:
    return {int(p.name): p for p in root.glob("results/studies/*/trials/*") if p.name.isdigit()}


def test_the_clean_up_keeps_the_best_the_running_and_the_continued_and_drops_the_rest(tmp_path):
    config = load_config(write_project(tmp_path, config={"study": {"n_trials": 20}}))
    create_study(config)
    store = StudyStore(load_study(config), heartbeat_s=60)
    paths, name = Paths.of(config), study_spec(config).name
    keeper = WeightKeeper(store, make_launcher(config["launcher"]), paths, name, "maximize", keep=1)

    def trial_with_weights() -> optuna.Trial:
        trial = store.ask()
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        directory = paths.trial_dir(name, trial.number)
        directory.mkdir(parents=True)
        with saving_checkpoint(directory, 2) as checkpoint:
            (checkpoint / "weights.pt").write_bytes(b"w" * 1000)
        (directory / "model.pt").write_bytes(b"w" * 1000)
        write_final_metrics(directory, {"best_validation_accuracy": 0.5})
        return trial

    best = trial_with_weights()
    store.tell(best, 0.9)
    running = trial_with_weights()
    worse = trial_with_weights()
    store.tell(worse, 0.5)
    gave_up = trial_with_weights()
    store.set_system_attr(gave_up, GAVE_UP, True)
    store.tell(gave_up, state=TrialState.FAIL)
    pruned = trial_with_weights()
    store.tell(pruned, state=TrialState.PRUNED)
    interrupted = trial_with_weights()
    store.set_system_attr(interrupted, INTERRUPTED, "SIGTERM")
    store.tell(interrupted, state=TrialState.FAIL)
    store.requeue(interrupted, always=True)

    def holding() -> set[int]:
        return {n for n, d in trial_dirs(tmp_path).items() if weighted(d)}

    keeper.clean()
    assert holding() == {best.number, running.number, interrupted.number}
    assert all((d / "metrics.json").exists() for d in trial_dirs(tmp_path).values()), "metrics always stay"

    copy = store.ask()  # the requeued parameters, continued and finished: the new best
    assert copy.params == interrupted.params
    copy_dir = paths.trial_dir(name, copy.number)
    copy_dir.mkdir()
    (copy_dir / "model.pt").write_bytes(b"w")
    store.tell(copy, 0.95)
    keeper.clean()
    assert holding() == {copy.number, running.number}, "the old best dropped out; the continued trial's chain ended"


@pytest.mark.parametrize("keep", [2, -1])
def test_keep_weights_keeps_the_k_best_or_everything(tmp_path, run_env, keep):
    config_path = make_config(tmp_path, n_trials=4, optuna_json=NO_PRUNING, trials={"keep_weights": keep},
                              jsonnet="{lr: std.parseJson(std.extVar('lr')), layers: std.parseJson(std.extVar('layers')), "
                                      "epochs: 2, weights_mb: 0.1}")
    code, output = finish(worker(config_path, env=run_env))
    assert code == 0, output
    done = sorted(trials(config_path), key=lambda t: -t.value)
    expected = {t.number for t in (done if keep == -1 else done[:keep])}
    assert {n for n, d in trial_dirs(tmp_path).items() if weighted(d)} == expected


@pytest.mark.slow
def test_a_sweep_of_twenty_trials_ends_with_weights_in_one_trial_and_never_holds_more_than_it_needs(tmp_path, run_env):
    """2 workers, keep_weights 1 (the default), trials with 2 MB of weights in each checkpoint and in the
    final model: one trial holds at most 4 MB (the checkpoint and the model, or two checkpoints while
    one is saved). Sampled all along, the trials never hold more than (workers + K + 1) trials' worth."""
    megabytes, workers, keep = 2, 2, 1
    make(tmp_path, study={"n_trials": 20}, workers={"count": workers, "poll_s": 0.05},
         model={"overrides": {"weights_mb": megabytes, "sleep_s": 0.05}})
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            total = 0
            for root, _, files in os.walk(tmp_path / "results" / "studies"):
                for name in files:
                    if name.endswith(".pt"):
                        try:
                            total += os.stat(os.path.join(root, name)).st_size
                        except FileNotFoundError:
                            pass
            samples.append(total)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        result = snakemake(tmp_path, "results/best_params.json", env=run_env)
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0, result.stderr[-3000:]
    best = json.loads((tmp_path / "results" / "best_params.json").read_text())
    assert best["counts"]["complete"] + best["counts"]["pruned"] == 20
    assert {n for n, d in trial_dirs(tmp_path).items() if weighted(d)} == {best["trial"]}
    trial_worth = 2 * megabytes * 1_000_000 + 4096
    assert len(samples) > 100 and max(samples) >= trial_worth / 2, "the sampler saw the weights"
    assert max(samples) <= (workers + keep + 1) * trial_worth, max(samples) / 1e6
