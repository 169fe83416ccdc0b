"""MLflow tracking, read back through MLflow's own client: real sweeps, a real `mlflow server`, an outage."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from snakesweep.config import load_config, validate_config
from snakesweep.errors import UserError
from snakesweep.study import create_study
from snakesweep.tracking import Target, target
from snakesweep.tracking.journal import has_pending, journals, progress_path
from tests.conftest import BIN, ROOT, wait_until, write_project
from tests.workflow_project import make, snakemake

CURVE = ("local lr = std.parseJson(std.extVar('lr')); local layers = std.parseJson(std.extVar('layers')); "
         "{lr: lr, layers: layers, epochs: 3}")
# Trial 0 is the best point of the curve; trial 1 a poor one, pruned at epoch 1 (after one warm-up epoch).
START_POINTS = [{"lr": 0.01, "layers": 2}, {"lr": 0.0001, "layers": 1}]
PRUNE_POOR = {"sampler": {"type": "RandomSampler", "attributes": {}},
              "pruner": {"type": "ThresholdPruner", "attributes": {"lower": 0.3, "n_warmup_steps": 1}}}


def tracked_project(directory: Path, **tracking: object) -> Path:
    make(directory, study={"n_trials": 4, "enqueue": START_POINTS}, tracking={"mlflow": dict(tracking)})
    (directory / "config" / "optuna.json").write_text(json.dumps(PRUNE_POOR))
    return directory


def runs_by_name(client: MlflowClient, experiment: str) -> dict[str, object]:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    names = [run.info.run_name for run in runs]
    assert len(names) == len(set(names)), names
    return {run.info.run_name: run for run in runs}


def check_study_runs(client: MlflowClient, results: Path, seeds: list[int]) -> dict[str, object]:
    """One parent, a nested run per trial and per seed, with the numbers the sweep's files hold."""
    best = json.loads((results / "best_params.json").read_text())
    runs = runs_by_name(client, "wf")
    study = best["study"]
    assert set(runs) == {study, "trial 0", "trial 1", "trial 2", "trial 3", *(f"retrain seed {s}" for s in seeds)}
    parent = runs[study]
    assert "mlflow.parentRunId" not in parent.data.tags and parent.info.status == "FINISHED"
    for name, run in runs.items():
        if name != study:
            assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id, name
    assert parent.data.metrics["best_best_validation_accuracy"] == best["value"]
    assert parent.data.metrics["trials_complete"] + parent.data.metrics["trials_pruned"] == 4
    assert parent.data.params["direction"] == "maximize" and parent.data.tags["snakesweep.best_trial"] == "0"
    tested = json.loads((results / "test_metrics.json").read_text())
    assert parent.data.metrics["test_accuracy"] == pytest.approx(tested["mean"]["accuracy"])

    trials = results / "studies" / study / "trials"
    good, poor = runs["trial 0"], runs["trial 1"]
    assert good.data.params == {"lr": "0.01", "layers": "2"} and good.info.status == "FINISHED"
    assert good.data.tags["snakesweep.state"] == "complete"
    assert good.data.metrics["best_validation_accuracy"] == json.loads((trials / "0" / "metrics.json").read_text())[
        "best_validation_accuracy"]
    assert [m.step for m in client.get_metric_history(good.info.run_id, "validation_accuracy")] == [0, 1, 2]
    assert poor.info.status == "KILLED" and poor.data.tags["snakesweep.state"] == "pruned"
    history = client.get_metric_history(poor.info.run_id, "validation_accuracy")
    epochs = [json.loads((trials / "1" / f"metrics_epoch_{e}.json").read_text()) for e in (0, 1)]
    assert [(m.step, m.value) for m in history] == [(0, epochs[0]["validation_accuracy"]),
                                                    (1, epochs[1]["validation_accuracy"])]
    assert "best_validation_accuracy" not in poor.data.metrics and poor.data.metrics["duration_s"] > 0
    assert poor.data.tags["snakesweep.trial_dir"] == str((trials / "1").resolve())
    assert poor.data.tags["snakesweep.resume_epoch"] == "2"
    for seed in seeds:
        run = runs[f"retrain seed {seed}"]
        assert run.data.metrics["test_accuracy"] == tested["seeds"][str(seed)]["accuracy"]
        assert run.data.params["seed"] == str(seed) and run.data.params["lr"] == "0.01"
    return runs


@pytest.mark.slow
def test_a_sweep_is_tracked_in_a_local_mlflow_store_under_results(tmp_path, run_env):
    tracked_project(tmp_path)
    result = snakemake(tmp_path, env=run_env)
    assert result.returncode == 0, result.stderr[-3000:]
    results = tmp_path / "results"
    check_study_runs(MlflowClient(f"sqlite:///{results / 'mlflow.db'}"), results, seeds=[1, 2])
    (tracking,) = (results / "studies").glob("*/tracking")
    assert [p.stem for p in journals(tracking)] == ["create_study", "worker-0", "worker-1", "select", "evaluate-1",
                                                   "evaluate-2", "test_metrics"]
    assert not any(has_pending(p) for p in journals(tracking)), "everything was logged"
    assert "did not answer" not in result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_mlflow_server(directory: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{directory / 'server.db'}"],
        cwd=directory, stdout=open(directory / "server.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(server: subprocess.Popen[bytes], directory: Path, port: int) -> None:
    def healthy() -> bool:
        assert server.poll() is None, (directory / "server.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False

    wait_until(healthy, "the MLflow server answers", timeout=600, poll=1.0)


def stop(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)  # the server, its uvicorn and its job runner
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.mark.slow
def test_an_mlflow_server_that_is_down_neither_stops_the_sweep_nor_loses_its_runs(tmp_path, run_env):
    """The URI comes from the environment: during the sweep it names a port where nothing listens;
    afterwards the server that was starting meanwhile, with the password, and everything is caught up."""
    secret = f"pw-{uuid.uuid4().hex}"
    down, up = free_port(), free_port()
    server = start_mlflow_server(tmp_path, up)
    try:
        env = {**run_env, "MLFLOW_TEST_URI": f"http://sweeper:{secret}@127.0.0.1:{down}"}
        tracked_project(tmp_path, tracking_uri="${MLFLOW_TEST_URI}")
        result = snakemake(tmp_path, env=env)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-3000:]
        assert (tmp_path / "results" / "test_metrics.json").exists()
        logs = sorted((tmp_path / "results").rglob("*.log"))
        warned = {log.name: log.read_text().count("did not answer") for log in logs}
        # One line a step at most (a worker done before its shipper met the outage leaves it to select).
        assert warned["select.log"] == warned["test_metrics.log"] == 1, warned
        assert all(count <= 1 for count in warned.values()), warned
        assert f"http://***:***@127.0.0.1:{down} did not answer (Connection refused)" in (
            tmp_path / "results" / "logs" / "select.log").read_text()
        assert secret not in output
        for path in tmp_path.rglob("*"):
            if path.is_file() and "server" not in path.name:
                assert secret.encode() not in path.read_bytes(), path
        (tracking,) = (tmp_path / "results" / "studies").glob("*/tracking")
        assert all(has_pending(p) for p in journals(tracking))

        wait_healthy(server, tmp_path, up)
        # A generous timeout: the first answers of a server just started on a busy machine are slow.
        env.update(MLFLOW_TEST_URI=f"http://sweeper:{secret}@127.0.0.1:{up}", MLFLOW_HTTP_REQUEST_TIMEOUT="300")
        caught_up = subprocess.run([str(BIN / "snakesweep"), "track"], cwd=tmp_path, env=env,
                                   capture_output=True, text=True, timeout=600)
        assert caught_up.returncode == 0, caught_up.stderr[-3000:]
        assert "up to date" in caught_up.stdout and secret not in caught_up.stdout + caught_up.stderr
        check_study_runs(MlflowClient(f"http://127.0.0.1:{up}"), tmp_path / "results", seeds=[1, 2])
    finally:
        stop(server)
    assert secret not in (tmp_path / "server.log").read_text()


def small_study(tmp_path: Path, tracked: bool = True, jsonnet: str = CURVE) -> Path:
    config = {"study": {"n_trials": 2, "enqueue": START_POINTS}, "workers": {"poll_s": 0.1},
              "launcher": {"type": "python", "function": "tests.trainers.curve:train"},
              "tracking": {"mlflow": {}} if tracked else {}}
    path = write_project(tmp_path, config=config, jsonnet=jsonnet)
    (tmp_path / "optuna.json").write_text(json.dumps(PRUNE_POOR))
    create_study(load_config(path))
    return path


WORKER_WITHOUT_MLFLOW = """
import sys
from snakesweep.cli import main
code = main(["worker", "--configfile", sys.argv[1]])
assert "mlflow" not in sys.modules, "the worker imported mlflow"
sys.exit(code)
"""


def start_worker(path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WORKER_WITHOUT_MLFLOW, str(path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_an_untracked_worker_never_imports_mlflow(tmp_path, run_env):
    worker = start_worker(small_study(tmp_path, tracked=False), run_env)
    output, _ = worker.communicate(timeout=600)
    assert worker.returncode == 0, output[-3000:]
    assert not (tmp_path / "results" / "mlflow.db").exists()


@pytest.mark.slow
def test_a_tracked_worker_logs_its_trials_live_without_importing_mlflow(tmp_path, run_env):
    # The poor start point sleeps in its first epoch until the worker is stopped.
    path = small_study(tmp_path, jsonnet=CURVE.replace("epochs: 3", "epochs: 3, sleep_s: if lr < 0.001 then 900 else 0"))
    worker = start_worker(path, run_env)
    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")

    def live() -> bool:
        try:
            runs = runs_by_name(client, "t")
        except Exception:  # the store is being created
            return False
        return runs.get("trial 0") is not None and runs["trial 0"].info.status == "FINISHED" and "trial 1" in runs

    wait_until(live, "trial 0 logged as finished while trial 1 trains", timeout=600, poll=0.5,
               details=lambda: str(worker.poll()))
    assert worker.poll() is None, "the worker is still training trial 1"
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=600)
    assert worker.returncode == 128 + signal.SIGTERM and "imported mlflow" not in output, output[-3000:]
    track = subprocess.run([str(BIN / "snakesweep"), "track", "--configfile", str(path)], cwd=ROOT, env=run_env,
                           capture_output=True, text=True, timeout=600)
    assert track.returncode == 0, track.stderr[-3000:]
    stopped = runs_by_name(client, "t")["trial 1"]
    assert stopped.info.status == "FAILED" and stopped.data.tags["snakesweep.state"] == "failed"
    assert "interrupted by SIGTERM" in stopped.data.tags["snakesweep.reason"]


@pytest.mark.slow
def test_a_journal_shipped_twice_and_a_duplicate_parent_leave_one_run_each(tmp_path, run_env):
    """A shipper killed before it saved its progress ships again; workers that raced made two parents."""
    path = small_study(tmp_path)
    for command in ("worker", "track"):  # a worker leaves what its shipper has not sent to a later step
        assert subprocess.run([sys.executable, "-m", "snakesweep.cli", command, "--configfile", str(path)],
                              cwd=ROOT, env=run_env, capture_output=True, timeout=600).returncode == 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    runs = runs_by_name(client, "t")
    parent = next(run for name, run in runs.items() if name.startswith("t-"))
    study = parent.data.tags["snakesweep.study"]
    twin = client.create_run(parent.info.experiment_id, run_name=study, tags=dict(parent.data.tags)).info.run_id
    stray = client.create_run(parent.info.experiment_id, run_name="trial 9",
                              tags={"mlflow.parentRunId": twin, "snakesweep.study": study}).info.run_id

    (journal,) = (tmp_path / "results" / "studies" / study / "tracking").glob("worker-0.jsonl")
    progress_path(journal).unlink()
    with journal.open("a") as handle:  # what the select step reports
        handle.write(json.dumps({"event": "selected", "at": 1, "metrics": {"best_x": 1.0}, "tags": {}, "states": {}}))
        handle.write("\n")
    shipped = subprocess.run([sys.executable, "-m", "snakesweep.tracking.shipper", str(journal)], cwd=ROOT,
                             env=run_env, capture_output=True, text=True, timeout=600)
    assert shipped.returncode == 0 and "refused" not in shipped.stderr, shipped.stderr[-3000:]
    again = runs_by_name(client, "t")
    assert set(again) == set(runs) | {"trial 9"}, "the same runs, logged once"
    history = client.get_metric_history(again["trial 0"].info.run_id, "validation_accuracy")
    assert [m.step for m in history] == [0, 1, 2], "no epoch logged twice"
    assert client.get_run(stray).data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert client.get_run(twin).info.lifecycle_stage == "deleted"


def test_tracking_is_off_unless_configured_and_its_uri_names_its_secrets():
    config = validate_config({"study": {"name": "s"}, "results": "/r"})
    assert target(config, "s-1") is None
    config = validate_config({"study": {"name": "s"}, "results": "/r", "tracking": {"mlflow": {}}})
    assert target(config, "s-1") == Target("sqlite:////r/mlflow.db", "s", "s-1")
    config["tracking"]["mlflow"]["tracking_uri"] = "https://me:${UNSET_MLFLOW_PASSWORD}@mlflow.example.org"
    with pytest.raises(UserError, match="tracking.mlflow.tracking_uri: .*UNSET_MLFLOW_PASSWORD"):
        target(config, "s-1")
    secret = Target("https://me:${PW}@mlflow.example.org", "s", "s-1")
    environ = {"PW": "hunter2", "MLFLOW_TRACKING_TOKEN": "tok-123"}
    text = "refused https://me:hunter2@mlflow.example.org with tok-123 and hunter2"
    assert secret.mask(text, environ) == "refused https://***:***@mlflow.example.org with *** and ***"


def test_check_shows_where_the_runs_go_with_the_password_masked(tmp_path, run_env):
    uri = "https://me:${MLFLOW_TEST_PASSWORD}@mlflow.example.org"
    path = write_project(tmp_path, config={"tracking": {"mlflow": {"tracking_uri": uri}}})

    def check(env):
        result = subprocess.run([str(BIN / "snakesweep"), "check", "--configfile", str(path)], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        return result.stdout + result.stderr

    output = check({**run_env, "MLFLOW_TEST_PASSWORD": "hunter2-secret"})
    assert "ok    tracking: MLflow at https://***:***@mlflow.example.org, experiment t" in output
    assert "hunter2-secret" not in output
    assert "FAIL  tracking: config: tracking.mlflow.tracking_uri: " in check(run_env)
