"""Workers as real processes: exact totals, pruning that stops trainers, crashes, kills and signals."""

from __future__ import annotations

import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from snakesweep.config import load_config
from snakesweep.study import create_study, load_study
from snakesweep.storage import retry_callback
from snakesweep.trials import HEARTBEAT as ATTR_HEARTBEAT
from snakesweep.trials import SURPLUS as ATTR_SURPLUS
from snakesweep.worker import Worker
from tests.conftest import ROOT, wait_until, write_project

CURVE = "local lr = std.parseJson(std.extVar('lr')); local layers = std.parseJson(std.extVar('layers')); {lr: lr, layers: layers, epochs: %d, sleep_s: %s}"
PYTHON_CURVE = {"type": "python", "function": "tests.trainers.curve:train"}
NO_PRUNING = {"sampler": {"type": "RandomSampler", "attributes": {}}, "pruner": {"type": "NopPruner", "attributes": {}}}


def make_config(tmp_path, *, epochs=3, sleep_s=0.0, storage=None, n_trials=4, launcher=PYTHON_CURVE, optuna_json=None,
                jsonnet=None, **sections):
    config = {"study": {"n_trials": n_trials, "storage": storage, "heartbeat_s": 2, **sections.pop("study", {})},
              "launcher": launcher, "workers": {"poll_s": 0.1}, **sections}
    path = write_project(tmp_path, config=config, jsonnet=jsonnet or CURVE % (epochs, sleep_s))
    if optuna_json is not None:
        (tmp_path / "optuna.json").write_text(json.dumps(optuna_json))
    create_study(load_config(path))
    return path


def worker(config_path, index=0, env=None, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "snakesweep.cli", "worker", "--configfile", str(config_path), "--worker", str(index)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def finish(process, timeout=300):  # a cap for a loaded machine
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def trials(config_path):
    return load_study(load_config(config_path)).get_trials()


def counted(config_path):
    real = [t for t in trials(config_path) if not t.system_attrs.get(ATTR_SURPLUS)]
    return {state: sum(t.state == state for t in real) for state in TrialState}


def holds_open(pid, path):
    """Whether process `pid` has `path` open (a worker's storage connection to a SQLite file)."""
    try:
        return any(os.path.realpath(fd) == os.path.realpath(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def test_a_worker_fills_the_budget_and_reruns_add_only_the_difference(tmp_path, run_env):
    config_path = make_config(tmp_path, n_trials=3)
    code, output = finish(worker(config_path, env=run_env))
    assert code == 0, output
    assert counted(config_path)[TrialState.COMPLETE] + counted(config_path)[TrialState.PRUNED] == 3
    assert "finished 3/3" in output

    code, output = finish(worker(config_path, env=run_env))
    assert code == 0 and len(trials(config_path)) == 3, "the same budget runs no trial"

    text = config_path.read_text().replace("n_trials: 3", "n_trials: 5")
    config_path.write_text(text)
    code, output = finish(worker(config_path, env=run_env))
    assert code == 0, output
    finished = [line for line in output.splitlines() if " params " in line and " trial " in line]
    assert len(trials(config_path)) == 5 and len(finished) == 2, output


def test_a_trial_directory_holds_what_it_takes_to_rerun_it(tmp_path, run_env):
    config_path = make_config(tmp_path, n_trials=1)
    env = {**run_env, "CUDA_VISIBLE_DEVICES": "7"}
    assert finish(worker(config_path, env=env))[0] == 0
    (trial,) = trials(config_path)
    directory = next((tmp_path / "results" / "studies").iterdir()) / "trials" / "0"
    assert {"config.json", "params.json", "seed", "train.log", "provenance.json", "metrics.json",
            "metrics_epoch_0.json", "metrics_epoch_2.json"} <= {p.name for p in directory.iterdir()}
    assert json.loads((directory / "params.json").read_text()) == trial.params
    config = json.loads((directory / "config.json").read_text())
    assert config["lr"] == trial.params["lr"] and config["random_seed"] == int((directory / "seed").read_text())
    provenance = json.loads((directory / "provenance.json").read_text())
    assert provenance["git_commit"] and provenance["cuda_visible_devices"] == "7"
    assert provenance["versions"]["optuna"] == optuna.__version__
    assert trial.value == json.loads((directory / "metrics.json").read_text())["best_validation_accuracy"]


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_four_concurrent_workers_reach_exactly_the_total(tmp_path, run_env, storage):
    url = None if storage == "sqlite" else f"journal:{tmp_path}/results/journal.log"
    config_path = make_config(tmp_path, n_trials=10, sleep_s=0.1, storage=url)
    processes = [worker(config_path, i, env=run_env) for i in range(4)]
    results = [finish(p) for p in processes]
    assert all(code == 0 for code, _ in results), results
    counts = counted(config_path)
    assert counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] == 10
    assert counts[TrialState.RUNNING] == counts[TrialState.WAITING] == 0
    finished = [t for t in trials(config_path) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len({t.user_attrs["worker"] for t in finished}) >= 3, "the trials were shared out"


def test_pruning_stops_the_running_trainer(tmp_path, run_env):
    # Every value is below the threshold: the first report prunes. After its first epoch the
    # trainer waits for a gate nobody opens: without a stop the worker would wait for ever.
    prune_all = {"sampler": {"type": "RandomSampler", "attributes": {}},
                 "pruner": {"type": "ThresholdPruner", "attributes": {"lower": 5.0}}}
    jsonnet = CURVE.replace("}", f", gate: '{tmp_path / 'never'}'}}") % (20, 0)
    config_path = make_config(tmp_path, n_trials=1, jsonnet=jsonnet, optuna_json=prune_all)
    code, output = finish(worker(config_path, env=run_env))
    assert code == 0, output
    (trial,) = trials(config_path)
    assert trial.state == TrialState.PRUNED and trial.user_attrs["pruned_at_epoch"] == 0
    directory = next((tmp_path / "results" / "studies").iterdir()) / "trials" / "0"
    assert not alive(int((directory / "pid").read_text()))
    assert sorted(p.name for p in directory.glob("metrics_epoch_*.json")) == ["metrics_epoch_0.json"]


def test_pruning_can_be_switched_off(tmp_path, run_env):
    prune_all = {"sampler": {"type": "RandomSampler", "attributes": {}},
                 "pruner": {"type": "ThresholdPruner", "attributes": {"lower": 5.0}}}
    config_path = make_config(tmp_path, n_trials=2, optuna_json=prune_all, objective={"intermediate": None})
    assert finish(worker(config_path, env=run_env))[0] == 0
    assert counted(config_path)[TrialState.COMPLETE] == 2


def test_a_crashing_trainer_fails_its_trial_with_its_log_and_the_worker_stops_after_max_failures(tmp_path, run_env):
    jsonnet = CURVE % (3, 0) + " + {crash: true}"
    config_path = make_config(tmp_path, n_trials=5, jsonnet=jsonnet, workers={"max_failures": 2, "poll_s": 0.1})
    code, output = finish(worker(config_path, env=run_env))
    assert code == 1
    last = output.strip().splitlines()[-1]
    assert "2 trials in a row failed" in last and "workers.max_failures" in last and "train.log" in last
    failed = trials(config_path)
    assert [t.state for t in failed] == [TrialState.FAIL, TrialState.FAIL]
    assert "the trainer crashed on purpose" in failed[0].user_attrs["log_tail"]
    assert "exited with status 1" in failed[0].user_attrs["fail_reason"]


def test_a_wrong_metric_name_stops_the_worker_naming_the_keys_there_are(tmp_path, run_env):
    config_path = make_config(tmp_path, n_trials=3, objective={"intermediate": "val_acc"})
    code, output = finish(worker(config_path, env=run_env))
    assert code == 1
    last = output.strip().splitlines()[-1]
    assert "no key 'val_acc'" in last and "validation_accuracy" in last and "epoch" in last
    assert len(trials(config_path)) == 1


def test_a_nan_metric_fails_the_trial_with_the_reason(tmp_path, run_env):
    config_path = make_config(tmp_path, n_trials=1, launcher={"type": "command", "command": [
        sys.executable, "-c",
        "import sys; from snakesweep.trialfiles import write_final_metrics as w; w(sys.argv[1], dict(best_validation_accuracy=float('nan')))",
        "{serialization_dir}"]}, objective={"intermediate": None}, workers={"max_failures": 1, "poll_s": 0.1})
    code, output = finish(worker(config_path, env=run_env))
    assert code == 1, output
    (trial,) = trials(config_path)
    assert trial.state == TrialState.FAIL and "NaN" in trial.user_attrs["fail_reason"]


DIVERGES = ("local lr = std.parseJson(std.extVar('lr')); local layers = std.parseJson(std.extVar('layers'));"
            "{lr: lr, layers: layers, sleep_s: 0.02, epochs: if lr > 0.05 then 1000 else 2,"
            " diverge_at: if lr > 0.05 then 1 else null, diverge_to: '%s'}")


@pytest.mark.parametrize(("value", "objective"), [
    ("nan", {}),  # the key reported to the pruner
    ("inf", {}),
    ("nan", {"intermediate": None, "reduce": "last", "metric": "validation_accuracy"}),  # the reduced key
])
def test_a_diverging_run_fails_its_trial_at_that_epoch_and_the_worker_goes_on(tmp_path, run_env, value, objective):
    points = [{"lr": 0.09, "layers": 2}, {"lr": 0.001, "layers": 2}]  # the first diverges at epoch 1
    config_path = make_config(tmp_path, n_trials=1, jsonnet=DIVERGES % value, optuna_json=NO_PRUNING,
                              study={"enqueue": points}, objective=objective)
    code, output = finish(worker(config_path, env=run_env))
    assert code == 0 and "Traceback" not in output, output
    diverged, good = trials(config_path)
    assert (diverged.state, good.state) == (TrialState.FAIL, TrialState.COMPLETE)
    reason = diverged.user_attrs["fail_reason"]
    assert "metrics_epoch_1.json: validation_accuracy is " + {"nan": "NaN", "inf": "inf"}[value] in reason
    assert diverged.user_attrs["epochs"] == 2
    assert f"trial 0 FAIL ({reason})" in output and "finished 1/1" in output
    directory = next((tmp_path / "results" / "studies").iterdir()) / "trials" / "0"
    assert not alive(int((directory / "pid").read_text())), "the diverged trainer was stopped"
    assert not (directory / "metrics.json").exists(), "at the epoch that diverged, not after its 1000 epochs"


def test_a_reduced_metric_that_does_not_exist_stops_the_worker_at_the_first_epoch(tmp_path, run_env):
    config_path = make_config(tmp_path, n_trials=3, epochs=1000, sleep_s=0.02, optuna_json=NO_PRUNING,
                              objective={"metric": "val_acc", "reduce": "last", "intermediate": None})
    code, output = finish(worker(config_path, env=run_env))
    assert code == 1 and "Traceback" not in output, output
    last = output.strip().splitlines()[-1]
    assert "metrics_epoch_0.json: objective: has no key 'val_acc'" in last and "validation_accuracy" in last
    (trial,) = trials(config_path)
    assert trial.state == TrialState.FAIL
    directory = next((tmp_path / "results" / "studies").iterdir()) / "trials" / "0"
    assert not alive(int((directory / "pid").read_text()))
    assert not (directory / "metrics.json").exists(), "found at the first epoch, not after the 1000"


ALLENNLP_JSONNET = """
local lr = std.parseJson(std.extVar('lr'));
local base = import '%s';
base + {
  train_data_path: '%s/tests/data/allennlp/train.jsonl',
  validation_data_path: '%s/tests/data/allennlp/validation.jsonl',
  trainer+: {num_epochs: 100, optimizer+: {lr: lr}},
}
""" % (ROOT / "tests/data/allennlp/tiny_classifier.json", ROOT, ROOT)


@pytest.mark.slow
def test_an_allennlp_final_metric_that_does_not_exist_stops_the_worker_at_the_first_epoch(tmp_path, run_env):
    """AllenNLP's epoch files hold the keys its metrics.json will: a wrong name shows after one epoch."""
    space = {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}
    path = write_project(tmp_path, space=space, jsonnet=ALLENNLP_JSONNET, config={
        "study": {"n_trials": 2}, "launcher": {"type": "allennlp"}, "workers": {"poll_s": 0.1},
        "objective": {"metric": "best_validation_acc", "intermediate": None}})
    create_study(load_config(path))
    code, output = finish(worker(path, env=run_env), timeout=300)
    assert code == 1 and "Traceback" not in output, output
    last = output.strip().splitlines()[-1]
    assert "metrics_epoch_0.json: objective: has no key 'best_validation_acc'" in last
    assert "best_validation_accuracy" in last
    directory = next((tmp_path / "results" / "studies").iterdir()) / "trials" / "0"
    assert not (directory / "metrics.json").exists(), "found at the first epoch, not after the 100"
    assert [t.state for t in trials(path)] == [TrialState.FAIL]


def test_shell_metacharacters_in_a_value_stay_literal(tmp_path, run_env):
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    evil = f'"; touch {marker}; echo "'
    space = {"lr": {"type": "float", "low": 0.001, "high": 0.1}, "layers": [2], "tag": {"type": "categorical", "choices": [evil]}}
    jsonnet = "local p(n) = std.parseJson(std.extVar(n)); {lr: p('lr'), layers: p('layers'), tag: std.extVar('tag')}"
    path = write_project(tmp_path, space=space, jsonnet=jsonnet, config={
        "study": {"n_trials": 1},
        "launcher": {"type": "command", "command": [sys.executable, "tests/trainers/curve.py", "{config}", "{serialization_dir}"]},
    })
    create_study(load_config(path))
    code, output = finish(worker(path, env=run_env))
    assert code == 0, output
    directory = next((tmp_path / "results" / "studies").iterdir()) / "trials" / "0"
    assert json.loads((directory / "tag.json").read_text()) == evil
    assert not marker.exists()


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_a_killed_worker_trial_is_retried_and_the_total_stays_exact(tmp_path, run_env, storage):
    url = None if storage == "sqlite" else f"journal:{tmp_path}/results/journal.log"
    config_path = make_config(tmp_path, n_trials=3, epochs=4, sleep_s=0.5, storage=url, optuna_json=NO_PRUNING)
    victim = worker(config_path, 0, env=run_env)
    wait_until(lambda: any(t.state == TrialState.RUNNING for t in trials(config_path)), "a trial running")
    wait_until(lambda: list((tmp_path / "results" / "studies").glob("*/trials/0/pid")), "trial 0's trainer started")
    victim.kill()
    victim.wait()
    (killed,) = [t for t in trials(config_path) if t.state == TrialState.RUNNING]
    trainer_pid = int(next((tmp_path / "results" / "studies").glob("*/trials/0/pid")).read_text())
    os.kill(trainer_pid, signal.SIGKILL)  # a lost node takes the trainer with it

    code, output = finish(worker(config_path, 0, env=run_env))
    assert code == 0, output
    final = trials(config_path)
    assert [t.state for t in final if t.number == killed.number] == [TrialState.FAIL]
    retried = [t for t in final if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].params == killed.params and retried[0].state == TrialState.COMPLETE
    counts = counted(config_path)
    assert counts[TrialState.COMPLETE] == 3 and counts[TrialState.RUNNING] == 0


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_a_heartbeat_lets_another_worker_retry_a_killed_workers_trial(tmp_path, run_env, storage):
    url = None if storage == "sqlite" else f"journal:{tmp_path}/results/journal.log"
    config_path = make_config(tmp_path, n_trials=2, epochs=4, sleep_s=0.5, storage=url, optuna_json=NO_PRUNING)
    victim = worker(config_path, 0, env=run_env)
    wait_until(lambda: list((tmp_path / "results" / "studies").glob("*/trials/0/pid")), "trial 0's trainer started")
    victim.kill()
    victim.wait()
    os.kill(int(next((tmp_path / "results" / "studies").glob("*/trials/0/pid")).read_text()), signal.SIGKILL)
    code, output = finish(worker(config_path, 1, env=run_env))  # a different worker index
    assert code == 0, output
    retried = [t for t in trials(config_path) if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert counted(config_path)[TrialState.COMPLETE] == 2


@pytest.mark.parametrize("held_up", ["writes", "everything"])
def test_a_storage_held_up_for_longer_than_the_stale_rule_costs_no_trial(tmp_path, run_env, held_up):
    """A loaded machine or storage holds up storage calls. Here another process holds the SQLite
    file's lock for three heartbeats (1.5 x the stale rule): the write lock, which readers pass in
    WAL mode, or with a rollback journal a lock that stops reads too. Meanwhile trial 0 trains and a
    second worker, for whom the one-trial budget leaves nothing to do, looks for stale trials.
    Nobody is taken for dead: no failed trial, no trial trained twice."""
    gate = tmp_path / "gate"
    jsonnet = CURVE.replace("}", f", gate: '{gate}'}}") % (2, 0)
    config_path = make_config(tmp_path, n_trials=1, jsonnet=jsonnet, optuna_json=NO_PRUNING)
    database = tmp_path / "results" / "optuna.db"
    if held_up == "everything":
        gc.collect()  # closes this process's connections from creating the study: the mode needs the file alone
        with sqlite3.connect(database, isolation_level=None) as connection:
            assert connection.execute("PRAGMA journal_mode=DELETE").fetchone() == ("delete",)
    owner = worker(config_path, 0, env=run_env)
    wait_until(lambda: list(tmp_path.glob("results/studies/*/trials/0/metrics_epoch_0.json")), "trial 0 held at its gate")
    watcher = worker(config_path, 1, env=run_env)
    wait_until(lambda: holds_open(watcher.pid, database), "the second worker reading the storage")

    def beat() -> object:
        (trial,) = [t for t in trials(config_path) if t.number == 0]
        return trial.system_attrs.get(ATTR_HEARTBEAT) if trial.state == TrialState.RUNNING else "not running"

    lock = sqlite3.connect(database, timeout=60, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # in WAL mode the same as IMMEDIATE: writers wait, readers pass
    time.sleep(3 * 2)  # the stall itself: three heartbeats of study.heartbeat_s = 2
    lock.execute("ROLLBACK")
    lock.close()
    # The watcher has looked again after the stall by the time the owner beat twice more.
    beats = {beat()}
    wait_until(lambda: beats.add(beat()) or len(beats) >= 3 or "not running" in beats, "two beats after the stall",
               poll=0.2, details=lambda: str(beats))
    gate.touch()
    for process in (owner, watcher):
        code, output = finish(process)
        assert code == 0 and "Traceback" not in output and "heartbeat" not in output, output
    counts = counted(config_path)
    assert counts[TrialState.COMPLETE] == 1 and counts[TrialState.FAIL] == 0 and counts[TrialState.WAITING] == 0


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_a_requeued_trial_claimed_again_is_not_taken_for_stale(tmp_path, storage):
    """Optuna's retry callback copies the failed trial's system attributes, our heartbeat among
    them: claimed again, the copy counts as alive from its claim, not from the old beat."""
    url = None if storage == "sqlite" else f"journal:{tmp_path}/results/journal.log"
    config = load_config(make_config(tmp_path, storage=url, optuna_json=NO_PRUNING))
    study = load_study(config)
    old = study.ask()
    study._storage.set_trial_system_attr(old._trial_id, ATTR_HEARTBEAT, time.time() - 3600)
    study.tell(old, state=TrialState.FAIL)
    retry_callback()(study, study._storage.get_trial(old._trial_id))
    again = study.ask()
    inherited = study._storage.get_trial(again._trial_id).system_attrs
    assert inherited["failed_trial"] == old.number
    assert inherited[ATTR_HEARTBEAT] < time.time() - 3000, "the old beat came along"

    Worker(config, index=1).liveness.trials_after_stale_check()
    assert study._storage.get_trial(again._trial_id).state == TrialState.RUNNING


def test_a_worker_whose_trial_another_worker_failed_as_stale_drops_it_and_goes_on(tmp_path, run_env):
    """What another worker does to a trial whose heartbeats it finds late (fail it, queue its
    parameters again) done by hand mid-training: the worker stops that trainer, logs it, trains
    the requeued copy, and the total stays exact."""
    config_path = make_config(tmp_path, n_trials=2, epochs=4, sleep_s=0.5, optuna_json=NO_PRUNING)
    process = worker(config_path, 0, env=run_env)
    pid_file = wait_until(lambda: next((tmp_path / "results" / "studies").glob("*/trials/0/pid"), None),
                          "trial 0's trainer started")
    study = load_study(load_config(config_path))
    (running,) = study.get_trials(states=(TrialState.RUNNING,))
    study._storage.set_trial_state_values(running._trial_id, TrialState.FAIL)
    retry_callback()(study, study._storage.get_trial(running._trial_id))

    code, output = finish(process)
    assert code == 0, output
    assert "trial 0 was failed by another worker" in output and "Traceback" not in output, output
    assert not alive(int(pid_file.read_text()))
    retried = [t for t in trials(config_path) if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].params == running.params and retried[0].state == TrialState.COMPLETE
    assert counted(config_path)[TrialState.COMPLETE] == 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_worker_stops_its_trainer_and_requeues_the_trial(tmp_path, run_env, signum):
    config_path = make_config(tmp_path, n_trials=2, epochs=40, sleep_s=0.25, optuna_json=NO_PRUNING)
    process = worker(config_path, env=run_env)
    pid_files = tmp_path / "results" / "studies"
    wait_until(lambda: list(pid_files.glob("*/trials/0/metrics_epoch_0.json")), "trial 0's first epoch")
    trainer_pid = int(next(pid_files.glob("*/trials/0/pid")).read_text())
    process.send_signal(signum)
    code, output = finish(process)
    assert code == 128 + signum, output
    assert not alive(trainer_pid)
    states = [(t.number, t.state) for t in trials(config_path)]
    assert states == [(0, TrialState.FAIL), (1, TrialState.WAITING)]
    assert "queued again" in output.strip().splitlines()[-1]


def test_threads_reach_the_trial_and_the_worker_caps_them(tmp_path, run_env):
    jsonnet = "local lr = std.parseJson(std.extVar('lr')); local layers = std.parseJson(std.extVar('layers')); {lr: lr, epochs: 1, tag: layers}"
    config_path = make_config(tmp_path, n_trials=1, jsonnet=jsonnet,
                              launcher={"type": "python", "function": "tests.trainers.tiny_torch:train"})
    process = subprocess.Popen(
        [sys.executable, "-m", "snakesweep.cli", "worker", "--configfile", str(config_path), "--threads", "1"],
        cwd=ROOT, env={**run_env, "OMP_NUM_THREADS": "8"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    code, output = finish(process)
    assert code == 0, output
    received = json.loads(next((tmp_path / "results").glob("studies/*/trials/0/received.json")).read_text())
    assert received["threads"] == 1 and received["env"]["OMP_NUM_THREADS"] == "1"


def test_a_worker_past_its_time_limit_starts_no_new_trial_and_a_rerun_continues(tmp_path, run_env):
    config_path = make_config(tmp_path, n_trials=3, epochs=2, sleep_s=0.5, optuna_json=NO_PRUNING,
                              workers={"time_limit_min": 0.01, "poll_s": 0.1})
    code, output = finish(worker(config_path, env=run_env))
    assert code == 1
    assert "time limit" in output.strip().splitlines()[-1] and "1/3" in output.strip().splitlines()[-1]
    text = config_path.read_text().replace("time_limit_min: 0.01", "time_limit_min: null")
    config_path.write_text(text)
    assert finish(worker(config_path, env=run_env))[0] == 0
    assert counted(config_path)[TrialState.COMPLETE] == 3


@pytest.mark.parametrize(("devices", "expected"), [("1", 0), ("", -1), ("-1", -1)])
def test_allennlp_trials_get_the_visible_gpu_or_the_cpu(tmp_path, monkeypatch, devices, expected):
    from snakesweep.worker import Worker

    config_path = make_config(tmp_path, launcher={"type": "allennlp"})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", devices)
    config = Worker(load_config(config_path)).trial_run().render({"lr": 0.01, "layers": 2}, seed=5)
    assert config["trainer"]["cuda_device"] == expected and config["random_seed"] == 5


def test_the_configs_own_cuda_device_wins(tmp_path, monkeypatch):
    from snakesweep.worker import Worker

    config_path = make_config(tmp_path, launcher={"type": "allennlp"}, model={"overrides": {"trainer.cuda_device": 3}})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert Worker(load_config(config_path)).trial_run().render({"lr": 0.01, "layers": 2}, seed=5)["trainer"]["cuda_device"] == 3


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_queued_start_points_are_each_trained_once_by_concurrent_workers(tmp_path, run_env, storage):
    url = None if storage == "sqlite" else f"journal:{tmp_path}/results/journal.log"
    points = [{"lr": lr, "layers": 2} for lr in (0.001, 0.002, 0.003, 0.004, 0.005, 0.006)]
    config_path = make_config(tmp_path, n_trials=6, storage=url, optuna_json=NO_PRUNING, study={"enqueue": points})
    results = [finish(p) for p in [worker(config_path, i, env=run_env) for i in range(4)]]
    assert all(code == 0 for code, _ in results), results
    done = [t for t in trials(config_path) if t.state == TrialState.COMPLETE]
    assert sorted(t.params["lr"] for t in done) == [p["lr"] for p in points]


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_concurrent_workers_train_every_grid_point_once(tmp_path, run_env, storage):
    url = None if storage == "sqlite" else f"journal:{tmp_path}/results/journal.log"
    space = {"lr": [0.001, 0.01, 0.1], "layers": [1, 2, 3]}
    path = write_project(tmp_path, space=space, jsonnet=CURVE % (2, 0.05), config={
        "study": {"n_trials": None, "storage": url}, "launcher": PYTHON_CURVE, "workers": {"poll_s": 0.1}})
    create_study(load_config(path))
    results = [finish(p) for p in [worker(path, i, env=run_env) for i in range(3)]]
    assert all(code == 0 for code, _ in results), results
    done = [t for t in trials(path) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert sorted((t.params["lr"], t.params["layers"]) for t in done) == sorted(
        (lr, layers) for lr in space["lr"] for layers in space["layers"])


def test_local_gpu_ids_are_handed_to_workers_round_robin(tmp_path, run_env):
    config_path = make_config(tmp_path, n_trials=1, workers={"gpu_ids": [5, 5, 6], "poll_s": 0.1})
    env = {key: value for key, value in run_env.items() if not key.startswith("SLURM_")}
    assert finish(worker(config_path, 2, env=env))[0] == 0
    config_path.write_text(config_path.read_text().replace("n_trials: 1", "n_trials: 2"))
    assert finish(worker(config_path, 1, env=env))[0] == 0
    devices = {}
    for trial in trials(config_path):
        provenance = next((tmp_path / "results").glob(f"studies/*/trials/{trial.number}/provenance.json"))
        devices[trial.user_attrs["worker"]] = json.loads(provenance.read_text())["cuda_visible_devices"]
    assert devices == {2: "6", 1: "5"}
