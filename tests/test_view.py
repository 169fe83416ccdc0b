"""`snakesweep status`, `best-params` and `trials` on real studies, one of them while a worker runs."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState

from snakesweep.config import load_config
from snakesweep.view import busy_seconds, sort_trials
from snakesweep.study import create_study, load_study
from snakesweep.trials import is_surplus
from tests.conftest import ROOT, wait_until, write_project

CURVE = ("local lr = std.parseJson(std.extVar('lr')); local layers = std.parseJson(std.extVar('layers'));"
         " {lr: lr, layers: layers, epochs: %d, sleep_s: %s%s}")
NO_PRUNING = {"sampler": {"type": "RandomSampler", "attributes": {}}, "pruner": {"type": "NopPruner", "attributes": {}}}
# The repository importable (tests.*); an exported PYTHONPATH (a checkout's src/) still comes before the installed package.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def project(directory: Path, n_trials: int, *, epochs: int = 3, sleep_s: float = 0.0, storage: str | None = None,
            optuna_json: dict | None = None, apart: bool = False, gate: tuple[Path, int] | None = None) -> Path:
    """A project and its study; `apart`: created by another process, so the test's holds no connection
    open; `gate`: (file, epochs): every trial waits after that many epochs until the file exists."""
    held = f", gate: '{gate[0]}', gate_after: {gate[1]}" if gate else ""
    path = write_project(directory, config={
        "study": {"n_trials": n_trials, "heartbeat_s": 2, "storage": storage},
        "launcher": {"type": "python", "function": "tests.trainers.curve:train"},
        "workers": {"poll_s": 0.05},
    }, jsonnet=CURVE % (epochs, sleep_s, held))
    if optuna_json is not None:
        (directory / "optuna.json").write_text(json.dumps(optuna_json))
    if apart:
        created = snakesweep("create-study", "--configfile", str(path))
        assert created.returncode == 0, created.stderr
    else:
        create_study(load_config(path))
    return path


def start_worker(config_path: Path, index: int = 0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "snakesweep.cli", "worker", "--configfile", str(config_path), "--worker", str(index)],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_worker(config_path: Path) -> None:
    output, _ = (process := start_worker(config_path)).communicate(timeout=300)
    assert process.returncode == 0, output


def snakesweep(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "snakesweep.cli", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


def real_trials(config_path: Path):
    return [t for t in load_study(load_config(config_path)).get_trials() if not is_surplus(t)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A study of 6 trials, 3 epochs each, some pruned (MedianPruner after 2 trials)."""
    path = project(tmp_path_factory.mktemp("finished"), 6)
    run_worker(path)
    return path


# -- status --------------------------------------------------------------------------------------
def test_status_while_a_worker_runs(tmp_path):
    """Trial 0 is held after its third epoch until `status` has run, however long that takes."""
    gate = tmp_path / "gate"
    config_path = project(tmp_path, 3, epochs=5, optuna_json=NO_PRUNING, gate=(gate, 3))
    worker = start_worker(config_path)
    try:
        epoch_2 = wait_until(lambda: next(tmp_path.glob("results/studies/*/trials/0/metrics_epoch_2.json"), None)
                             or worker.poll() is not None, "trial 0's third epoch", timeout=300)
        assert worker.poll() is None, worker.communicate()[0]
        result = snakesweep("status", "--configfile", str(config_path))
        as_json = snakesweep("status", "--configfile", str(config_path), "--json")
        held_for = time.time() - epoch_2.stat().st_mtime
    finally:
        gate.touch()
        worker.send_signal(signal.SIGINT)
        worker.communicate(timeout=120)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "0/3 finished" in lines["trials"] and "1 running" in lines["trials"]
    assert lines["running"].startswith("running  worker 0: trial 0, 3 epochs done, validation_accuracy 0.")
    assert "no trial finished yet" in lines["speed"] and "no trial complete yet" in lines["best"]
    state = json.loads(as_json.stdout)
    (running,) = state["running"]
    assert running["worker"] == 0 and running["number"] == 0 and running["epochs_done"] == 3
    assert 0 <= running["last_epoch_age_s"] <= held_for + 1
    assert state["counts"]["running"] == 1 and not state["done"]


def test_status_of_a_finished_study(finished):
    trials = real_trials(finished)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    best = max(complete, key=lambda t: t.value)
    result = snakesweep("status", "--configfile", str(finished))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"6/6 finished ({len(complete)} complete, {len(pruned)} pruned), 0 failed, 0 running" in out
    assert f"best     best_validation_accuracy {best.value:.6g} (maximize) in trial {best.number}: " in out
    assert f"layers={best.params['layers']}" in out and "running  none" in out
    assert "the budget is reached" in out and "trials/hour" in out


def test_status_estimates_the_time_left_from_the_rate_so_far(finished):
    config = load_config(finished)
    text = finished.read_text().replace("n_trials: 6", "n_trials: 9")
    bigger = finished.with_name("bigger.yaml")
    bigger.write_text(text)
    # The same study (n_trials is not part of its fingerprint), three trials to go.
    state = json.loads(snakesweep("status", "--configfile", str(bigger), "--json").stdout)
    assert state["study"] == load_study(config).study_name and state["budget"] == 9
    assert state["trials_per_hour"] == pytest.approx(6 / (state["busy_s"] / 3600))
    assert state["left_s"] == pytest.approx(3 / state["trials_per_hour"] * 3600)
    assert "left for 3 more trials" in snakesweep("status", "--configfile", str(bigger)).stdout


def test_busy_time_leaves_out_pauses_between_runs():
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    t0 = datetime(2025, 1, 1, 12, 0, 0)
    spans = [(0, 10), (5, 20), (100, 130)]  # two overlapping trials, a pause, one more
    trials = [SimpleNamespace(datetime_start=t0 + timedelta(seconds=a), datetime_complete=t0 + timedelta(seconds=b),
                              state=TrialState.COMPLETE) for a, b in spans]
    assert busy_seconds(trials, t0 + timedelta(seconds=500)) == 50


def test_status_on_a_journal_storage(tmp_path):
    config_path = project(tmp_path, 2, storage=f"journal:{tmp_path}/results/journal.log")
    run_worker(config_path)
    result = snakesweep("status", "--configfile", str(config_path))
    assert result.returncode == 0, result.stderr
    assert "2/2 finished" in result.stdout and f"journal:{tmp_path}/results/journal.log" in result.stdout
    study_name = result.stdout.split()[1]
    listed = subprocess.run([str(Path(sys.executable).parent / "optuna"), "trials", "--study-name", study_name,
                             "--storage", str(tmp_path / "results" / "journal.log"), "-f", "json"],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 2, listed.stderr


def test_status_creates_nothing_where_no_sweep_started(tmp_path):
    path = write_project(tmp_path)
    for command in ("status", "best-params", "trials"):
        result = snakesweep(command, "--configfile", str(path))
        assert result.returncode == 1
        (line,) = result.stderr.strip().splitlines()
        assert "no sweep has started" in line and "optuna.db does not exist" in line
    assert not (tmp_path / "results").exists()


def test_a_storage_password_never_shows(tmp_path):
    pytest.importorskip("pymysql")
    path = write_project(tmp_path, config={"study": {"storage": "mysql+pymysql://me:${SNAKESWEEP_TEST_PW}@127.0.0.1:1/x"}})
    result = subprocess.run([sys.executable, "-m", "snakesweep.cli", "status", "--configfile", str(path)],
                            cwd=ROOT, env={**ENV, "SNAKESWEEP_TEST_PW": "hunter2-secret"}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert "hunter2-secret" not in result.stdout + result.stderr and "***:***@127.0.0.1" in result.stderr
    (line,) = result.stderr.splitlines()  # what is wrong, not Optuna's "exception during the commit"
    assert "study.storage" in line and "Can't connect to MySQL server on '127.0.0.1'" in line
    assert "commit" not in line and "exceeding max length" not in line


def test_status_watch_refreshes_until_interrupted(finished):
    process = subprocess.Popen([sys.executable, "-m", "snakesweep.cli", "status", "--configfile", str(finished),
                                "--watch", "1"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    seen = io.StringIO()
    deadline = time.monotonic() + 300  # a cap for a loaded machine, not an expectation
    while seen.getvalue().count("Ctrl-C stops") < 2:
        assert time.monotonic() < deadline and process.poll() is None
        seen.write(process.stdout.readline())
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0 and "Traceback" not in err
    assert seen.getvalue().count("6/6 finished") >= 2


# -- best params ---------------------------------------------------------------------------------
def test_best_params_as_json_render_and_as_allennlp_optuna_printed_them(finished):
    trials = real_trials(finished)
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    result = snakesweep("best-params", "--configfile", str(finished))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == best.params
    legacy = snakesweep("best-params", "--configfile", str(finished), "--format", "allennlp-optuna")
    assert legacy.stdout.strip() == " ".join(f"{k}={v}" for k, v in best.params.items())
    rendered = snakesweep("render", str(finished.parent / "model.jsonnet"), "--params", result.stdout)
    assert rendered.returncode == 0 and json.loads(rendered.stdout)["lr"] == best.params["lr"]


def test_best_params_before_any_trial_completed(tmp_path):
    result = snakesweep("best-params", "--configfile", str(project(tmp_path, 2)))
    assert result.returncode == 1 and "no trial of t-" in result.stderr and "completed yet" in result.stderr


# -- trials --------------------------------------------------------------------------------------
def test_trials_sorted_best_first_as_text_csv_and_markdown(finished):
    trials = real_trials(finished)
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -t.value)
    pruned = sorted(t.number for t in trials if t.state == TrialState.PRUNED)
    result = snakesweep("trials", "--configfile", str(finished), "--format", "csv")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(io.StringIO(result.stdout))
    assert list(table["number"]) == [t.number for t in complete] + pruned
    assert list(table["value"][:len(complete)]) == [t.value for t in complete]
    assert {"state", "duration_s", "worker", "epochs", "pruned_at_epoch", "param_lr", "param_layers"} <= set(table)

    text = snakesweep("trials", "--configfile", str(finished)).stdout.splitlines()
    assert text[0].split()[:3] == ["number", "state", "value"] and len(text) == 1 + len(trials)
    assert text[1].split()[:2] == [str(complete[0].number), "COMPLETE"]

    markdown = snakesweep("trials", "--configfile", str(finished), "--format", "markdown", "--limit", "2").stdout
    lines = markdown.strip().splitlines()
    assert lines[0].startswith("|") and set(lines[1]) <= {"|", "-", ":"} and len(lines) == 4
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells[:2] == [str(complete[0].number), "COMPLETE"]

    only = pd.read_csv(io.StringIO(snakesweep("trials", "--configfile", str(finished), "--format", "csv",
                                              "--state", "pruned", "--sort", "number").stdout))
    assert list(only["number"]) == pruned and set(only["state"]) <= {"PRUNED"}


def test_sorting_a_minimized_metric_puts_the_lowest_first():
    frame = pd.DataFrame({"number": [0, 1, 2, 3], "state": ["COMPLETE", "PRUNED", "COMPLETE", "FAIL"],
                          "value": [0.5, None, 0.2, None], "duration_s": [1.0, 2.0, 3.0, 4.0]})
    assert list(sort_trials(frame, "value", "minimize")["number"]) == [2, 0, 1, 3]
    assert list(sort_trials(frame, "value", "maximize")["number"]) == [0, 2, 1, 3]
    assert list(sort_trials(frame, "duration", "maximize")["number"]) == [3, 2, 1, 0]


# -- other tools on the same storage -------------------------------------------------------------
def test_the_optuna_cli_reads_the_storage(finished):
    config = load_config(finished)
    study = load_study(config)
    url = f"sqlite:///{finished.parent / 'results' / 'optuna.db'}"
    optuna_cli = str(Path(sys.executable).parent / "optuna")
    result = subprocess.run([optuna_cli, "trials", "--study-name", study.study_name, "--storage", url, "-f", "json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert len(listed) == len(study.get_trials())
    best = subprocess.run([optuna_cli, "best-trial", "--study-name", study.study_name, "--storage", url, "-f", "json"],
                          capture_output=True, text=True, timeout=120)
    assert json.loads(best.stdout)["number"] == study.best_trial.number
