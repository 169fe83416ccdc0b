"""The workflow through real Snakemake: the default AllenNLP sweep on a tiny budget, staleness, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.conftest import BIN, wait_until
from tests.workflow_project import (ROOT, SNAKEFILE, edit_config, job_counts, make, planned_rules, read_config,
                                     snakemake, update, write_config)

pytestmark = pytest.mark.slow


@pytest.fixture
def env(run_env):
    return run_env


def last_line(result):
    return (result.stdout + result.stderr).strip().splitlines()[-1]


def test_the_default_allennlp_sweep_on_a_tiny_budget(tmp_path, env):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (tmp_path / "data").symlink_to(ROOT / "data")
    config = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    config["study"]["n_trials"] = 3
    config["model"]["overrides"] = {"trainer.num_epochs": 1}
    config["retrain"]["seeds"] = [1, 2]
    write_config(tmp_path, config)

    result = snakemake(tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "snakesweep: done." in result.stdout + result.stderr
    results = tmp_path / "results"
    best = json.loads((results / "best_params.json").read_text())
    assert best["metric"] == "best_validation_accuracy" and 0 < best["value"] <= 1
    assert best["counts"]["complete"] + best["counts"]["pruned"] == 3
    assert best["storage"] == "sqlite:///results/optuna.db"
    assert set(best["params"]) >= {"embedding_dim", "encoder", "dropout", "lr", "batch_size"}
    trials = pd.read_csv(results / "trials.csv")
    assert len(trials) == 3 and set(trials["worker"]) <= {0, 1}
    assert json.loads((results / "best_config.json").read_text())["model"]["type"] == "basic_classifier"
    test = json.loads((results / "test_metrics.json").read_text())
    assert set(test["seeds"]) == {"1", "2"} and 0 < test["mean"]["accuracy"] <= 1 and "accuracy" in test["std"]
    for seed in (1, 2):
        assert (results / "final" / f"seed-{seed}" / "model.tar.gz").exists()
    trial_dir = results / "studies" / best["study"] / "trials" / str(best["trial"])
    assert json.loads((trial_dir / "config.json").read_text())["trainer"]["cuda_device"] == -1
    assert "test_data_path" not in json.loads((trial_dir / "config.json").read_text())


def test_rerunning_only_what_is_stale(tmp_path, env):
    """The README's staleness table, row by row, each after a real run."""
    make(tmp_path)
    assert snakemake(tmp_path, env=env).returncode == 0
    after_study = {"worker", "select", "retrain", "evaluate", "test_metrics", "report", "all"}

    assert planned_rules(tmp_path, env) == {}, "nothing changed: nothing runs"

    edit_config(tmp_path, study={"n_trials": 6})
    assert set(planned_rules(tmp_path, env)) == after_study, "a larger budget: workers and what follows"
    assert snakemake(tmp_path, env=env).returncode == 0
    best = json.loads((tmp_path / "results" / "best_params.json").read_text())
    assert best["counts"]["complete"] + best["counts"]["pruned"] == 6
    assert len(pd.read_csv(tmp_path / "results" / "trials.csv")) == 6, "only the missing trials were added"

    for change in (
        lambda: (tmp_path / "config" / "space.json").write_text(json.dumps(
            {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}, "layers": {"type": "int", "low": 1, "high": 3}})),
        lambda: (tmp_path / "config" / "model.jsonnet").write_text(
            (tmp_path / "config" / "model.jsonnet").read_text().replace("epochs: 3", "epochs: 4")),
        lambda: edit_config(tmp_path, objective={"reduce": "last", "metric": "validation_accuracy"}),
        lambda: (tmp_path / "config" / "optuna.json").write_text(json.dumps(
            {"sampler": {"type": "RandomSampler", "attributes": {}}, "pruner": {"type": "NopPruner", "attributes": {}}})),
    ):
        saved = {p: p.read_text() for p in (tmp_path / "config").iterdir()}
        change()
        assert set(planned_rules(tmp_path, env)) == {"create_study"} | after_study, "a new study"
        for path, text in saved.items():
            path.write_text(text)
    assert planned_rules(tmp_path, env) == {}

    # Budgets and patience are not part of the study: the same study, its workers decide again.
    for change in ({"n_trials": None, "budget": {"epochs": 1000}}, {"budget": {"hours": 2.0}}, {"patience": 5}):
        saved_config = (tmp_path / "config" / "config.yaml").read_text()
        edit_config(tmp_path, study=change)
        assert set(planned_rules(tmp_path, env)) == after_study, change
        (tmp_path / "config" / "config.yaml").write_text(saved_config)

    edit_config(tmp_path, retrain={"seeds": [1, 2, 3]})
    assert planned_rules(tmp_path, env) == {"retrain": 1, "evaluate": 1, "test_metrics": 1, "report": 1, "all": 1}
    config = read_config(tmp_path)
    config["retrain"]["seeds"] = [1, 2]
    config["retrain"]["overrides"] = {"epochs": 5}
    write_config(tmp_path, config)
    assert planned_rules(tmp_path, env) == {"retrain": 2, "evaluate": 2, "test_metrics": 1, "report": 1, "all": 1}
    del config["retrain"]["overrides"]
    write_config(tmp_path, config)
    assert planned_rules(tmp_path, env) == {}

    os.remove(tmp_path / "results" / "best_params.json")
    assert set(planned_rules(tmp_path, env)) == {"select", "retrain", "evaluate", "test_metrics", "report", "all"}


def test_lint_is_clean():
    result = snakemake(ROOT, "--lint")
    assert result.returncode == 0 and "Congratulations" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"model": {"config": "config/missing.jsonnet"}}, "config/missing.jsonnet: model.config: file not found"),
        ({"launcher": {"type": "ray"}}, "launcher.type"),
        ({"search_space": "config/nope.json"}, "nope.json"),
        ({"study": {"storage": "mysql+pymysql://me:${UNSET_PASSWORD_VAR}@db/x"}}, "UNSET_PASSWORD_VAR"),
        ({"tracking": {"mlflow": {"tracking_uri": "https://me:${UNSET_MLFLOW_VAR}@x"}}},
         "tracking.mlflow.tracking_uri: the URL names the environment variable UNSET_MLFLOW_VAR"),
        ({"study": {"warm_start": [{"study": "old", "storage": "${UNSET_WARM_VAR}"}]}},
         "config: study.warm_start: the URL names the environment variable UNSET_WARM_VAR"),
    ],
)
def test_user_errors_end_in_one_line_before_any_job(tmp_path, env, change, words):
    make(tmp_path, **change)
    result = snakemake(tmp_path, env=env)
    assert result.returncode != 0
    assert words in last_line(result) and "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_a_missing_data_file_is_found_before_any_worker(tmp_path, env):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    result = snakemake(tmp_path, env=env)  # no data/ directory here
    assert result.returncode != 0
    assert "train_data_path: data file not found" in last_line(result)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"optuna": {"sampler": {"type": "TPESampler", "attributes": {"n_startup_trials": "3"}}}},
         "config/optuna.json: sampler.attributes.n_startup_trials: TPESampler takes int, not '3'"),
        ({"optuna": {"pruner": {"type": "HyperbandPruner", "attributes": {"min_resource": "auto"}}}},
         "config/optuna.json: pruner.attributes.min_resource"),
        ({"optuna": {"pruner": {"type": "MedianPrunr", "attributes": {}}}},
         "config/optuna.json: pruner.type: unknown pruner 'MedianPrunr' (use one of: "),
        ({"config": {"study": {"enqueue": [{"lr": 5.0, "layers": 2}]}}}, "study.enqueue: lr: 5.0 is outside"),
        ({"config": {"retrain": {"test_data": "missing.jsonl"}}},
         "config: retrain.test_data: test data not found (create missing.jsonl or fix the path)"),
    ],
)
def test_a_dry_run_finds_what_would_fail_only_mid_sweep(tmp_path, env, change, words):
    make(tmp_path, **change.get("config", {}))
    if "optuna" in change:
        (tmp_path / "config" / "optuna.json").write_text(json.dumps(change["optuna"]))
    result = snakemake(tmp_path, "-n", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert words in last_line(result) and "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_a_target_goes_before_configfile_or_after_a_double_dash(tmp_path, env):
    """The two orders the README and the profiles show plan exactly the target with the given
    config; the other order reads the target as a second config file."""
    documented = ["snakemake --cores all results/best_params.json --configfile my.yaml",
                  "snakemake --cores all --configfile my.yaml -- results/best_params.json"]
    readme = (ROOT / "README.md").read_text()
    assert all(command in readme for command in documented)
    for profile in ("local", "slurm"):
        text = (ROOT / "profiles" / profile / "config.yaml").read_text()
        assert f"--profile profiles/{profile} results/best_params.json --configfile my.yaml" in text
        assert f"--profile profiles/{profile} --configfile my.yaml -- results/best_params.json" in text

    make(tmp_path)
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(update(read_config(tmp_path), {"workers": {"count": 3}})))
    sweep_only = {"create_study": 1, "worker": 3, "select": 1}
    before = snakemake(tmp_path, "results/best_params.json", "--configfile", "my.yaml", "-n", "--quiet", "rules", env=env)
    assert job_counts(before) == sweep_only
    after_dashes = snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile", "my.yaml", "--", "results/best_params.json",
                             env=env)
    assert job_counts(after_dashes) == sweep_only
    wrong = snakemake(tmp_path, "-n", "--configfile", "my.yaml", "results/best_params.json", env=env)
    assert wrong.returncode != 0 and "results/best_params.json" in wrong.stdout + wrong.stderr

def study_status(directory, env):
    """`snakesweep status --json` in the project, as a user would ask it."""
    result = subprocess.run([sys.executable, "-m", "snakesweep.cli", "status", "--json", "--configfile",
                             "config/config.yaml"], cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("whom", ["snakemake", "group"])
def test_an_interrupted_sweep_goes_on_with_a_plain_rerun(tmp_path, env, whom):
    """SIGINT mid-sweep, both workers holding a trial. To the snakemake process alone (`kill -INT
    PID`): it starts no new job and waits for the workers, which fill the study, then exits 1 with
    their outputs marked incomplete. To the whole group (Ctrl-C in the terminal): each worker fails
    and requeues its trial and exits 130. Either way no trial is left running, and a plain
    `snakemake --cores 2` (the workflow profile's rerun-incomplete) ends the sweep, the total exact."""
    gate = tmp_path / "gate"
    make(tmp_path, study={"n_trials": 6}, model={"overrides": {"gate": str(gate)}})
    with (tmp_path / "first-run.log").open("w") as log:
        first = subprocess.Popen([str(BIN / "snakemake"), "--snakefile", str(SNAKEFILE), "--cores", "2"],
                                 cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: len(list(tmp_path.glob("results/studies/*/trials/*/metrics_epoch_0.json"))) >= 2
                   or first.poll() is not None, "both workers training", timeout=300)
        assert first.poll() is None, (tmp_path / "first-run.log").read_text()[-3000:]
        if whom == "snakemake":
            os.kill(first.pid, signal.SIGINT)
        else:
            os.killpg(first.pid, signal.SIGINT)
        gate.touch()
        first.wait(timeout=300)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    output = (tmp_path / "first-run.log").read_text()
    assert first.returncode == 1, output[-3000:]
    state = study_status(tmp_path, env)
    assert state["counts"]["running"] == 0, state
    if whom == "snakemake":
        assert state["finished"] == 6, "the workers went on to the end"
    else:
        assert state["counts"]["failed"] == 2 and state["counts"]["waiting"] == 2, "both trials queued again"
        assert output.count("stopped by SIGINT; the running trial was queued again") == 2, output[-3000:]

    again = snakemake(tmp_path, env=env)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    state = study_status(tmp_path, env)
    assert state["finished"] == 6 and state["counts"]["running"] == state["counts"]["waiting"] == 0
    best = json.loads((tmp_path / "results" / "best_params.json").read_text())
    assert best["counts"]["complete"] + best["counts"]["pruned"] == 6
