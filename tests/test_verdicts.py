"""Pruning on time: forked trainers wait for the worker's verdict at each epoch's end, so no epoch is
trained past a decision; a command trainer's epoch files are read as they appear (inotify)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from snakesweep.config import load_config
from snakesweep.launchers import make_launcher
from snakesweep.study import create_study
from snakesweep.trialfiles import EPOCH_PATTERN, write_epoch_metrics
from tests.conftest import ROOT, wait_until, write_project
from tests.test_worker import ALLENNLP_JSONNET, CURVE, NO_PRUNING, finish, make_config, trials, worker

# Epochs are Optuna's steps from 0: every trial whose epoch 2 scores below 0.6 is pruned there.
PRUNE_AT_2 = {"sampler": {"type": "RandomSampler", "attributes": {}},
              "pruner": {"type": "ThresholdPruner", "attributes": {"lower": 0.6, "n_warmup_steps": 2}}}
# tests/trainers/curve.py scores 1.0, 0.75 and 0.375 at these points (times (e + 1) / (e + 2) at epoch e).
POINTS = [{"lr": 0.001, "layers": 2}, {"lr": 0.01, "layers": 2}, {"lr": 0.0001, "layers": 1}]


def epochs_on_disk(config_path: Path, number: int) -> list[int]:
    directory = next((config_path.parent / "results" / "studies").iterdir()) / "trials" / str(number)
    return sorted(int(m[1]) for p in directory.iterdir() if (m := EPOCH_PATTERN.match(p.name)))


def check_nothing_trained_past_the_verdict(config_path: Path) -> list:
    pruned = [t for t in trials(config_path) if t.state == TrialState.PRUNED]
    for trial in pruned:
        last_reported = max(trial.intermediate_values)
        assert trial.user_attrs["pruned_at_epoch"] == last_reported
        assert epochs_on_disk(config_path, trial.number) == list(range(last_reported + 1)), trial.number
        assert trial.user_attrs["epochs"] == last_reported + 1
    return pruned


def test_python_trials_train_no_epoch_past_the_pruners_decision(tmp_path, run_env):
    # Epochs of about 10 ms against a poll of 1 s: reading the files at the poll, a pruned trainer
    # would have trained dozens of epochs more before the worker stopped it.
    config_path = make_config(tmp_path, n_trials=3, epochs=40, sleep_s=0.01, optuna_json=PRUNE_AT_2,
                              study={"enqueue": POINTS}, workers={"poll_s": 1.0})
    code, output = finish(worker(config_path, env=run_env))
    assert code == 0, output
    pruned = check_nothing_trained_past_the_verdict(config_path)
    assert sorted(t.number for t in pruned) == [0, 2] and all(t.user_attrs["pruned_at_epoch"] == 2 for t in pruned)
    (complete,) = [t for t in trials(config_path) if t.state == TrialState.COMPLETE]
    assert epochs_on_disk(config_path, complete.number) == list(range(40))


@pytest.mark.slow
def test_allennlp_trials_train_no_epoch_past_the_pruners_decision(tmp_path, run_env):
    prune_all = {"sampler": {"type": "RandomSampler", "attributes": {}},
                 "pruner": {"type": "ThresholdPruner", "attributes": {"lower": 5.0, "n_warmup_steps": 2}}}
    space = {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}
    path = write_project(tmp_path, space=space, jsonnet=ALLENNLP_JSONNET, config={
        "study": {"n_trials": 2}, "launcher": {"type": "allennlp"}, "workers": {"poll_s": 1.0}})
    (tmp_path / "optuna.json").write_text(json.dumps(prune_all))
    create_study(load_config(path))
    code, output = finish(worker(path, env=run_env))
    assert code == 0, output
    pruned = check_nothing_trained_past_the_verdict(path)
    assert len(pruned) == 2 and all(t.user_attrs["pruned_at_epoch"] == 2 for t in pruned)


def test_a_python_trainer_writing_its_own_epoch_files_is_watched_as_before(tmp_path, run_env):
    """No `trialfiles` call, so no handshake: nothing waits for it, the files are read as they appear."""
    jsonnet = CURVE.replace("}", ", plain_json: true}") % (5, 0.02)
    config_path = make_config(tmp_path, n_trials=2, jsonnet=jsonnet, optuna_json=NO_PRUNING)
    code, output = finish(worker(config_path, env=run_env))
    assert code == 0, output
    done = trials(config_path)
    assert [t.state for t in done] == [TrialState.COMPLETE] * 2
    assert all(sorted(t.intermediate_values) == list(range(5)) for t in done)


def test_a_forked_trainer_waits_for_each_verdict_and_goes_on_once_the_worker_end_closes(tmp_path):
    launcher = make_launcher({"type": "python", "function": "tests.trainers.curve:train"})
    launcher.prepare()
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 4}))
    process = launcher.start(tmp_path / "config.json", tmp_path, trial_number=0, log_path=tmp_path / "train.log",
                             threads=1, env={}, wait_for_verdicts=True)
    verdicts = process.verdicts
    try:
        def announced() -> int:
            verdicts.collect()
            return verdicts.waiting

        wait_until(announced, "epoch 0 announced", timeout=60)
        time.sleep(0.3)
        assert sorted(p.name for p in tmp_path.glob("metrics_epoch_*")) == ["metrics_epoch_0.json"]
        assert process.poll() is None, "it waits for the verdict"
        verdicts.go_on()
        wait_until(announced, "epoch 1 announced", timeout=60)
        assert len(list(tmp_path.glob("metrics_epoch_*"))) == 2
        verdicts.close()  # a worker gone: end of file means go on
        assert process.wait(60) == 0, (tmp_path / "train.log").read_text()
        assert len(list(tmp_path.glob("metrics_epoch_*.json"))) == 4 and (tmp_path / "metrics.json").exists()
    finally:
        process.stop(0)


def test_a_command_trainers_epoch_is_read_as_it_appears_not_at_the_next_poll(tmp_path, run_env):
    # The trainer writes epoch 0, then waits for a gate nobody opens; a poll of 60 s would leave the
    # worker asleep for a minute before it read the epoch and pruned the trial.
    prune_all = {"sampler": {"type": "RandomSampler", "attributes": {}},
                 "pruner": {"type": "ThresholdPruner", "attributes": {"lower": 5.0}}}
    jsonnet = CURVE.replace("}", f", gate: '{tmp_path / 'never'}'}}") % (20, 0)
    launcher = {"type": "command", "command": [sys.executable, str(ROOT / "tests/trainers/curve.py"), "{config}",
                                               "{serialization_dir}"]}
    config_path = make_config(tmp_path, n_trials=1, jsonnet=jsonnet, optuna_json=prune_all, launcher=launcher,
                              workers={"poll_s": 60})
    started = time.monotonic()
    code, output = finish(worker(config_path, env=run_env))
    assert code == 0, output
    assert time.monotonic() - started < 45, "the epoch was read when it appeared"
    (trial,) = trials(config_path)
    assert trial.state == TrialState.PRUNED and trial.user_attrs["pruned_at_epoch"] == 0


def test_a_directory_watch_tells_epoch_files_from_other_files(tmp_path):
    from snakesweep.worker.epoch_news import DirectoryWatch

    watch = DirectoryWatch.open(tmp_path)
    if watch is None:
        pytest.skip("no inotify here")
    try:
        (tmp_path / "train.log").write_text("a line\n")
        assert not watch.epoch_files_written()
        write_epoch_metrics(tmp_path, 0, {"validation_accuracy": 0.5})  # a rename into place
        assert watch.epoch_files_written()
        (tmp_path / "metrics_epoch_1.json").write_text("{}")  # written in place, then closed
        assert watch.epoch_files_written() and not watch.epoch_files_written()
    finally:
        watch.close()
