"""An interrupted trial continues where it stopped: real workflow runs and worker processes, one per launcher.

Each trial trains EPOCHS epochs. A test interrupts it during epoch K (SIGTERM to its worker, as
`scancel` and Slurm's notice do, or SIGKILL, as a lost node does), runs again, and checks what the
issue asks: the finished trial resumed at K (K - 1 where the epoch in progress was lost), its
intermediate values cover every epoch once, and the epochs trained over both runs add up to
EPOCHS plus at most one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import FrozenTrial, TrialState

from snakesweep.config import load_config
from snakesweep.launchers import make_launcher
from snakesweep.study import load_study
from snakesweep.trials import RESUMED_FROM_EPOCH
from tests.conftest import wait_until
from tests.workflow_project import ROOT, make, read_config, snakemake, write_config

pytestmark = pytest.mark.slow

EPOCHS, K = 6, 2
NO_PRUNING = {"sampler": {"type": "RandomSampler", "attributes": {}}, "pruner": {"type": "NopPruner", "attributes": {}}}
CURVE = [sys.executable, str(ROOT / "tests" / "trainers" / "curve.py"), "{config}", "{serialization_dir}"]
TINY = json.loads((ROOT / "tests" / "data" / "allennlp" / "tiny_classifier.json").read_text())
TRAINED = re.compile(r"^(?:epoch (\d+) starts|training epoch (\d+))$", re.M)
"""How the test trainers announce each epoch they train (curve.py; allennlp_plugin's slow callback)."""


def allennlp_jsonnet() -> str:
    config = {**TINY, "train_data_path": str(ROOT / TINY["train_data_path"]),
              "validation_data_path": str(ROOT / TINY["validation_data_path"])}
    config["trainer"] = {**config["trainer"], "num_epochs": EPOCHS,
                         "callbacks": [{"type": "snakesweep-test-slow", "sleep_s": 0.15}]}
    return (f"local lr = std.parseJson(std.extVar('lr'));\nlocal layers = std.parseJson(std.extVar('layers'));\n"
            f"{json.dumps(config)} + {{trainer+: {{optimizer+: {{lr: lr}}}}, model+: {{dropout: 0.05 * layers}}}}\n")


def project(directory: Path, launcher: str, **config: Any) -> Path:
    """A one-worker, one-trial workflow project (tests/workflow_project) whose trial is slow enough to stop."""
    sections: dict[str, Any] = {
        "study": {"n_trials": 1},
        "workers": {"count": 1, "poll_s": 0.1},
        "model": {"overrides": {} if launcher == "allennlp" else {"epochs": EPOCHS, "sleep_s": 0.6}},
    }
    for key, value in config.items():
        sections[key] = {**sections.get(key, {}), **value}
    make(directory, **sections)
    data = read_config(directory)
    if launcher == "allennlp":
        data["launcher"] = {"type": "allennlp", "include_package": ["tests.trainers.allennlp_plugin"]}
    elif launcher == "command":
        data["launcher"] = {"type": "command", "command": CURVE}
    write_config(directory, data)
    (directory / "config" / "optuna.json").write_text(json.dumps(NO_PRUNING))
    if launcher == "allennlp":
        (directory / "config" / "model.jsonnet").write_text(allennlp_jsonnet())
    return directory


def trial_dir(directory: Path, number: int) -> Path:
    return next(directory.glob(f"results/studies/*/trials/{number}"))


def study_trials(directory: Path) -> list[FrozenTrial]:
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        return load_study(load_config("config/config.yaml")).get_trials()
    finally:
        os.chdir(cwd)


def worker_pid(directory: Path) -> int:
    """The worker process of the project's workflow run (a forked trainer shares its command line)."""
    found = {}
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            cwd = os.readlink(f"/proc/{entry}/cwd")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (OSError, ValueError):
            continue
        if b"worker.py" in cmdline and Path(cwd) == directory:
            found[int(entry)] = int(stat[stat.rfind(")") + 2:].split()[1])
    (worker,) = [pid for pid, parent in found.items() if parent not in found]
    return worker


def interrupt(directory: Path, env: dict[str, str], signum: int, epoch_done: int = K - 1) -> str:
    """Run the workflow, signal its worker once trial 0 has finished `epoch_done`; the run's output."""
    run = subprocess.Popen(
        [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(ROOT / "workflow" / "Snakefile"),
         "--cores", "2", "results/best_params.json"],
        cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: list(directory.glob(f"results/studies/*/trials/0/metrics_epoch_{epoch_done}.json"))
                   or run.poll() is not None, f"trial 0 past epoch {epoch_done}", timeout=300)
        assert run.poll() is None, run.stdout.read()
        os.kill(worker_pid(directory), signum)
        output, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0, output
    return output


def trained_epochs(directory: Path, number: int) -> list[int]:
    log = (trial_dir(directory, number) / "train.log").read_text()
    return [int(a or b) for a, b in TRAINED.findall(log)]


def check_resumed(directory: Path, interrupted: FrozenTrial) -> FrozenTrial:
    """The issue's three checks on the trial that finished in place of `interrupted`; it is returned."""
    (done,) = [t for t in study_trials(directory) if t.state == TrialState.COMPLETE]
    assert done.system_attrs["failed_trial"] == interrupted.number and done.params == interrupted.params
    resumed = done.user_attrs[RESUMED_FROM_EPOCH]
    assert resumed in (K - 1, K), done.user_attrs
    assert sorted(done.intermediate_values) == list(range(EPOCHS)), "every epoch reported once"
    first, second = trained_epochs(directory, interrupted.number), trained_epochs(directory, done.number)
    assert second == list(range(resumed, EPOCHS)), "the epochs already done were not trained again"
    assert first[: resumed] == list(range(resumed)) and len(first) + len(second) <= EPOCHS + 1, (first, second)
    provenance = json.loads((trial_dir(directory, done.number) / "provenance.json").read_text())
    assert provenance["resumed_from_epoch"] == resumed and provenance["resumed_from_trial"] == interrupted.number
    return done


@pytest.mark.parametrize("launcher", ["allennlp", "command", "python"])
def test_a_trial_interrupted_by_sigterm_resumes_when_the_workflow_runs_again(tmp_path, run_env, launcher):
    project(tmp_path, launcher)
    output = interrupt(tmp_path, run_env, signal.SIGTERM)
    (interrupted,) = study_trials(tmp_path)[:1]
    assert interrupted.state == TrialState.FAIL, output
    assert interrupted.user_attrs["fail_reason"] == "worker interrupted by SIGTERM"
    weights = make_launcher(load_config(tmp_path / "config" / "config.yaml")["launcher"])
    left = weights.weight_files(trial_dir(tmp_path, 0))
    kept = weights.find_checkpoint(trial_dir(tmp_path, 0)).found
    assert kept is not None and sorted(p.name for p in left) == sorted(Path(f).name for f in kept.files), \
        "the interrupted trial keeps its newest checkpoint and no other weights"

    result = snakemake(tmp_path, "results/best_params.json", env=run_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    done = check_resumed(tmp_path, interrupted)
    assert not weights.weight_files(trial_dir(tmp_path, 0)), "what the copy did not take is gone"

    table = subprocess.run([sys.executable, "-m", "snakesweep.cli", "trials", "--format", "csv", "--configfile",
                            "config/config.yaml"], cwd=tmp_path, env=run_env, capture_output=True, text=True)
    header, *rows = table.stdout.splitlines()
    column = header.split(",").index(RESUMED_FROM_EPOCH)
    assert {row.split(",")[0]: row.split(",")[column] for row in rows}[str(done.number)] == str(
        done.user_attrs[RESUMED_FROM_EPOCH])


def test_a_killed_worker_trial_resumes_through_the_stale_trial_path(tmp_path, run_env):
    project(tmp_path, "python")
    interrupt(tmp_path, run_env, signal.SIGKILL)
    (interrupted,) = study_trials(tmp_path)
    assert interrupted.state == TrialState.RUNNING, "nobody told the storage"
    trainer = int((trial_dir(tmp_path, 0) / "pid").read_text())
    wait_until(lambda: not Path(f"/proc/{trainer}").exists() or "State:\tZ" in Path(f"/proc/{trainer}/status").read_text(),
               "the trainer gone with its worker")

    result = snakemake(tmp_path, "results/best_params.json", env=run_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (interrupted,) = [t for t in study_trials(tmp_path) if t.number == 0]
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs["fail_reason"] == "its worker was killed"
    check_resumed(tmp_path, interrupted)


def worker_log(directory: Path) -> str:
    return next(directory.glob("results/studies/*/logs/worker-0.log")).read_text()


@pytest.mark.parametrize("spoil", ["damaged", "other params"])
def test_a_damaged_or_foreign_checkpoint_is_never_loaded_and_the_trial_starts_over(tmp_path, run_env, spoil):
    project(tmp_path, "python")
    interrupt(tmp_path, run_env, signal.SIGTERM)
    (checkpoint,) = trial_dir(tmp_path, 0).glob("checkpoints/epoch_*")
    if spoil == "damaged":  # a file whose size is not the one the manifest recorded
        (checkpoint / "state.json").write_text("{")
    else:  # as if the directory held another trial's run
        params = json.loads((trial_dir(tmp_path, 0) / "params.json").read_text())
        (trial_dir(tmp_path, 0) / "params.json").write_text(json.dumps({**params, "lr": params["lr"] / 2}))

    result = snakemake(tmp_path, "results/best_params.json", env=run_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (done,) = [t for t in study_trials(tmp_path) if t.state == TrialState.COMPLETE]
    warning = ("a checkpoint of trial 0 is damaged and is not loaded: checkpoints/epoch_" if spoil == "damaged"
               else "the checkpoint of trial 0 was trained with another params.json and is not loaded")
    log = worker_log(tmp_path)
    assert warning in log and f"trial {done.number}" in log and "starts over at epoch 0" in log, log
    assert RESUMED_FROM_EPOCH not in done.user_attrs
    assert trained_epochs(tmp_path, done.number) == list(range(EPOCHS))
    assert sorted(done.intermediate_values) == list(range(EPOCHS))


def test_a_trainer_that_writes_no_checkpoint_starts_over_as_before(tmp_path, run_env):
    project(tmp_path, "python", objective={"metric": "validation_accuracy"})
    data = read_config(tmp_path)
    data["launcher"] = {"type": "python", "function": "tests.trainers.sleepy:train"}
    write_config(tmp_path, data)
    interrupt(tmp_path, run_env, signal.SIGTERM)
    result = snakemake(tmp_path, "results/best_params.json", env=run_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (done,) = [t for t in study_trials(tmp_path) if t.state == TrialState.COMPLETE]
    assert done.system_attrs["failed_trial"] == 0 and RESUMED_FROM_EPOCH not in done.user_attrs
    assert re.findall(r"^epoch (\d+)$", (trial_dir(tmp_path, done.number) / "train.log").read_text(), re.M) == [
        str(e) for e in range(EPOCHS)]
