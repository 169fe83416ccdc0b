"""The examples under examples/, run the way their READMEs say: from the repo root with
`snakemake --configfile examples/<name>/config.yaml`, merged over config/config.yaml.

Runs write to a temporary `results` (`--config results=...`) and may shrink the budget with one more
config file merged last, so they never touch the examples' own results/<name>/.
"""

from __future__ import annotations

import copy
import itertools
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml
from snakemake.utils import update_config

from snakesweep.config import validate_config
from snakesweep.render import render
from snakesweep.space_parsing import load_space
from snakesweep.optuna_json import load_optuna_json
from snakesweep.study import study_spec

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXAMPLES = ("pytorch-digits", "allennlp-optuna", "grid-sweep", "accuracy-vs-size")


def example_config(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / name / "config.yaml").read_text())


def run_example(name: str, tmp_path: Path, env: dict[str, str], **shrink: Any) -> tuple[subprocess.CompletedProcess[str], Path]:
    """snakemake from the repo root on examples/<name>/config.yaml; `shrink` is merged over it."""
    configfiles = [f"examples/{name}/config.yaml"]
    if shrink:
        extra = tmp_path / "shrink.yaml"
        extra.write_text(yaml.safe_dump(shrink))
        configfiles.append(str(extra))
    results = tmp_path / "results"
    result = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "2", "--configfile", *configfiles, "--config", f"results={results}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=850,  # a cap under pytest's 900 s for a loaded machine
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result, results


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


# -- every example: complete, self-contained configs ------------------------------------------------
@pytest.mark.parametrize("name", EXAMPLES)
def test_the_config_means_the_same_alone_and_merged_over_the_default(name):
    """Snakemake merges the example over config/config.yaml; `snakesweep --configfile` reads it alone.

    Both readings must give the same complete config, or `snakesweep` commands would name
    another study than the one the workflow ran.
    """
    example = example_config(name)
    merged = copy.deepcopy(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    update_config(merged, example)
    assert validate_config(merged) == validate_config(example)
    assert example["results"] == f"results/{name}"
    assert (ROOT / "examples" / name / "README.md").is_file()


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_example_renders_a_point_of_its_space(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = validate_config(example_config(name))
    spec = study_spec(config)
    for point in config["study"]["enqueue"]:
        spec.space.check_point(point, "enqueue")
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    point = spec.space.suggest(trial)
    model = config["model"]
    rendered = render(model["config"], point, style=model["style"], strict=True)
    assert rendered
    assert Path(config["retrain"]["test_data"]).is_file()


def test_allennlp_optuna_files_are_in_allennlp_optunas_format():
    directory = ROOT / "examples" / "allennlp-optuna"
    hparams = read_json(directory / "hparams.json")
    assert isinstance(hparams, list)
    for entry in hparams:
        assert set(entry) == {"type", "attributes"} and entry["type"] in ("int", "float", "categorical")
        assert "name" in entry["attributes"]
    names = [entry["attributes"]["name"] for entry in hparams]
    assert [p.name for p in load_space(directory / "hparams.json").params] == names
    optuna_json = read_json(directory / "optuna.json")
    assert set(optuna_json) == {"sampler", "pruner"}
    assert all(set(spec) == {"type", "attributes"} for spec in optuna_json.values())
    assert load_optuna_json(directory / "optuna.json")[1]["type"] == "HyperbandPruner"
    jsonnet = (directory / "classifier.jsonnet").read_text()
    for name in names:
        assert f"std.extVar('{name}')" in jsonnet


def test_the_digits_test_split_is_the_recorded_one():
    """train.py never sees the test part; evaluate.py refuses a split other than test_split.json's."""
    directory = ROOT / "examples" / "pytorch-digits"
    sys.path.insert(0, str(directory))
    try:
        import digits
    finally:
        sys.path.remove(str(directory))
    spec = read_json(directory / "test_split.json")
    parts = digits.split_indices()
    assert {part: len(indices) for part, indices in parts.items()} == {"train": 1079, "validation": 359, "test": 359}
    assert len(set(itertools.chain.from_iterable(p.tolist() for p in parts.values()))) == 1797
    assert {key: spec[key] for key in digits.SPLIT} == digits.SPLIT
    assert spec["examples"] == 359 and spec["indices_sha256"] == digits.indices_digest(parts["test"])


# -- real runs --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_allennlp_optuna_passes_snakesweep_check(run_env):
    result = subprocess.run(
        [str(BIN / "snakesweep"), "check", "--configfile", "examples/allennlp-optuna/config.yaml"],
        cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines and all(line.startswith("ok ") for line in lines), result.stdout
    assert "TPESampler, HyperbandPruner" in result.stdout


@pytest.mark.slow
def test_pytorch_digits_end_to_end(tmp_path, run_env):
    _, results = run_example("pytorch-digits", tmp_path, run_env,
                             study={"n_trials": 5}, retrain={"seeds": [1, 2]})

    best = read_json(results / "best_params.json")
    assert best["metric"] == "best_validation_accuracy" and 0.5 < best["value"] <= 1
    assert best["n_trials"] == 5 and best["counts"]["complete"] + best["counts"]["pruned"] == 5
    assert best["counts"]["failed"] == 0
    params = best["params"]
    assert set(params) - {"momentum"} == {"hidden_size", "num_layers", "dropout", "optimizer", "lr", "batch_size"}
    assert ("momentum" in params) == (params["optimizer"] == "sgd")

    trials = pd.read_csv(results / "trials.csv")
    assert len(trials) == 5 and set(trials["state"]) <= {"COMPLETE", "PRUNED"}

    trial_dir = ROOT / best["trial_dir"]  # absolute here: results is
    config = read_json(trial_dir / "config.json")
    assert config["random_seed"] == int((trial_dir / "seed").read_text())
    assert (trial_dir / "best.th").is_file()
    assert len(list(trial_dir.glob("metrics_epoch_*.json"))) == config["trainer"]["num_epochs"]
    assert read_json(trial_dir / "metrics.json")["best_validation_accuracy"] == best["value"]
    assert "1079 train and 359 validation images" in (trial_dir / "train.log").read_text()

    test = read_json(results / "test_metrics.json")
    assert set(test["seeds"]) == {"1", "2"}
    assert 0.5 < test["mean"]["accuracy"] <= 1 and "accuracy" in test["std"]
    assert all(seed["examples"] == 359 for seed in test["seeds"].values())


@pytest.mark.slow
def test_grid_sweep_runs_every_point_once_with_three_repeats(tmp_path, run_env):
    _, results = run_example("grid-sweep", tmp_path, run_env, retrain={"seeds": [1, 2]})

    grid = yaml.safe_load((ROOT / "examples" / "grid-sweep" / "grid.yaml").read_text())
    points = set(itertools.product(grid["lr"], grid["hidden_size"]))
    best = read_json(results / "best_params.json")
    assert best["n_trials"] == len(points) == 6
    assert best["counts"] == {"complete": 6, "pruned": 0, "failed": 0}

    trials = pd.read_csv(results / "trials.csv")
    assert len(trials) == 6 and set(trials["state"]) == {"COMPLETE"}
    ran = [(row.param_lr, row.param_hidden_size) for row in trials.itertuples()]
    assert sorted(ran) == sorted(points), "every grid point exactly once"

    study_dir = results / "studies" / best["study"] / "trials"
    seeds = set()
    for row in trials.itertuples():
        trial_dir = study_dir / str(row.number)
        repeats = sorted(p.name for p in trial_dir.iterdir() if p.name.startswith("repeat-"))
        assert repeats == ["repeat-0", "repeat-1", "repeat-2"]
        values = []
        for repeat in repeats:
            run = trial_dir / repeat
            seed = int((run / "seed").read_text())
            config = read_json(run / "config.json")
            assert config["random_seed"] == seed
            assert config["model"]["dropout"] == 0.1  # the space's constant
            assert (config["optimizer"]["lr"], config["model"]["hidden_size"]) == (row.param_lr, row.param_hidden_size)
            seeds.add(seed)
            values.append(read_json(run / "metrics.json")["best_validation_accuracy"])
        assert row.value == pytest.approx(statistics.fmean(values), abs=1e-12)
    assert len(seeds) == 18, "each of the 6 x 3 runs has its own seed"

    assert best["value"] == pytest.approx(trials["value"].max(), abs=1e-12)
    assert best["params"]["dropout"] == 0.1
    test = read_json(results / "test_metrics.json")
    assert set(test["seeds"]) == {"1", "2"} and 0.5 < test["mean"]["accuracy"] <= 1


@pytest.mark.slow
def test_the_digits_trainer_resumes_from_its_checkpoint_to_the_same_result(tmp_path, run_env):
    """Stopped after 2 of 4 epochs, then run again on the same directory (where the worker puts an
    interrupted trial's checkpoint): it trains epochs 2 and 3 only, and ends where an uninterrupted
    run ends."""
    directory = ROOT / "examples" / "pytorch-digits"
    config = {"model": {"hidden_size": 32, "num_layers": 1, "dropout": 0.1}, "optimizer": {"type": "adam", "lr": 0.01},
              "data_loader": {"batch_size": 64}, "trainer": {"num_epochs": 4}, "random_seed": 5}

    def train(out: Path, epochs: int) -> str:
        out.mkdir(exist_ok=True)
        config_path = tmp_path / f"config-{epochs}.json"
        config_path.write_text(json.dumps({**config, "trainer": {"num_epochs": epochs}}))
        result = subprocess.run([sys.executable, str(directory / "train.py"), "--config", str(config_path),
                                 "--out", str(out)], env=run_env, capture_output=True, text=True, cwd=directory)
        assert result.returncode == 0, result.stderr
        return result.stdout

    train(tmp_path / "whole", 4)
    train(tmp_path / "stopped", 2)
    output = train(tmp_path / "stopped", 4)
    assert "resuming after epoch 1" in output and "epoch 0:" not in output and "epoch 2:" in output
    for epoch in range(4):
        assert read_json(tmp_path / "stopped" / f"metrics_epoch_{epoch}.json") == read_json(
            tmp_path / "whole" / f"metrics_epoch_{epoch}.json")
    whole, resumed = read_json(tmp_path / "whole" / "metrics.json"), read_json(tmp_path / "stopped" / "metrics.json")
    assert resumed["best_validation_accuracy"] == whole["best_validation_accuracy"]
    assert (tmp_path / "stopped" / "best.th").is_file()
    assert [p.name for p in (tmp_path / "stopped" / "checkpoints").iterdir()] == ["epoch_3"]


@pytest.mark.slow
def test_accuracy_vs_size_retrains_the_knee_of_the_front(tmp_path, run_env):
    """The default classifier for accuracy against its parameter count, which the allennlp launcher writes."""
    result, results = run_example("accuracy-vs-size", tmp_path, run_env, study={"n_trials": 4},
                                  model={"overrides": {"trainer.num_epochs": 1}})
    assert "warning" not in (result.stdout + result.stderr).lower()  # no pruner configured: nothing to say

    best = read_json(results / "best_params.json")
    front = {entry["trial"]: entry for entry in best["front"]}
    assert best["select"]["rule"] == "knee" and best["trial"] in front
    assert best["params"] == front[best["trial"]]["params"] and best["values"] == front[best["trial"]]["values"]
    trial_dir = ROOT / best["trial_dir"]
    metrics = read_json(trial_dir / "metrics.json")
    assert metrics["parameters"] == best["values"]["parameters"] > 1000
    assert "parameters" not in read_json(trial_dir / "metrics_epoch_0.json")  # known once training has ended

    retrained = results / "final" / "seed-1"
    config = read_json(retrained / "config.json")
    assert config["model"]["text_field_embedder"]["token_embedders"]["tokens"]["embedding_dim"] == \
        best["params"]["embedding_dim"]
    assert config["trainer"]["optimizer"]["lr"] == best["params"]["lr"]
    assert read_json(retrained / "metrics.json")["parameters"] == metrics["parameters"]  # the same model, retrained
    assert 0 < read_json(results / "test_metrics.json")["mean"]["accuracy"] <= 1

    assert (results / "report" / "pareto_front.png").is_file()
    assert f"trial {best['trial']}" in (results / "report" / "html" / "pareto_front.html").read_text()
