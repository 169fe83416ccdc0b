"""The `snakesweep` command as users run it: real processes, exit codes, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, write_project

SNAKESWEEP = [sys.executable, "-m", "snakesweep.cli"]


def run(*args, cwd=ROOT):
    return subprocess.run([*SNAKESWEEP, *args], capture_output=True, text=True, cwd=cwd)


def test_render_prints_json_with_overrides():
    result = run(
        "render", "config/model.jsonnet",
        "--params", json.dumps({"embedding_dim": 32, "encoder": "cnn", "num_filters": 16, "dropout": 0.1,
                                "lr": 0.001, "batch_size": 16}),
        "--override", "trainer.num_epochs=20", "-o", "random_seed=13",
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["trainer"]["num_epochs"] == 20 and config["random_seed"] == 13
    assert config["model"]["seq2vec_encoder"] == {
        "type": "cnn", "embedding_dim": 32, "num_filters": 16, "ngram_filter_sizes": [2, 3]}


def test_render_errors_are_one_line_and_exit_1(tmp_path):
    broken = tmp_path / "broken.jsonnet"
    broken.write_text("{ a: 1,,\n}")
    for args in (["render", str(broken)], ["render", "config/model.jsonnet", "--params", "[1]"],
                 ["render", "config/model.jsonnet", "--params", "{}"]):
        result = run(*args)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("snakesweep: error: "), result.stderr
        assert "Traceback" not in result.stderr


def test_check_passes_on_the_default_config():
    result = run("check", "--configfile", "config/config.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok    storage" in result.stdout


def test_check_names_every_problem(tmp_path):
    config = write_project(tmp_path, config={"study": {"storage": "mysql+pymysql://me:${NO_SUCH_VAR}@x/y"}})
    (tmp_path / "space.json").write_text(json.dumps({"lr": {"type": "float", "low": 1, "high": 0}}))
    result = run("check", "--configfile", str(config))
    assert result.returncode == 1
    assert "FAIL  study" in result.stdout and "lr" in result.stdout
    assert "FAIL  storage" in result.stdout and "NO_SUCH_VAR" in result.stdout


def test_check_finds_a_missing_data_file(tmp_path):
    config = Path(tmp_path / "config.yaml")
    text = (ROOT / "config" / "config.yaml").read_text()
    (tmp_path / "model.jsonnet").write_text(
        (ROOT / "config" / "model.jsonnet").read_text().replace("train.jsonl", "trian.jsonl"))
    config.write_text(text.replace("config: config/model.jsonnet", f"config: {tmp_path}/model.jsonnet"))
    result = run("check", "--configfile", str(config))
    assert result.returncode == 1
    assert "train_data_path: data file not found" in result.stdout


def test_create_study_twice_is_one_study(project):
    first = run("create-study", "--configfile", str(project))
    second = run("create-study", "--configfile", str(project))
    assert first.returncode == second.returncode == 0, first.stderr
    assert first.stdout == second.stdout and first.stdout.startswith("t-")


def test_check_finds_what_would_fail_only_later(tmp_path):
    """A sampler attribute of the wrong type, a start point outside the space, no test data: each
    one line, before anything is created."""
    config = write_project(tmp_path, config={"study": {"enqueue": [{"lr": 5.0, "layers": 2}]},
                                             "retrain": {"test_data": str(tmp_path / "missing.jsonl")}})
    (tmp_path / "optuna.json").write_text(json.dumps({"sampler": {"type": "TPESampler",
                                                                  "attributes": {"n_startup_trials": "5"}}}))
    result = run("check", "--configfile", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("FAIL  sampler and pruner: ") and "sampler.attributes.n_startup_trials" in line
               for line in lines), result.stdout
    assert any(line.startswith("FAIL  start points: ") and "study.enqueue: lr" in line for line in lines)
    assert any(line.startswith("FAIL  test data: ") and "retrain.test_data" in line for line in lines)
    assert "Traceback" not in result.stderr and not (tmp_path / "results").exists()
