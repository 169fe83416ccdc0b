"""The final model: retrain the best config from scratch per seed, score it on the held-out test set."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snakesweep.errors import UserError
from snakesweep.launchers import make_launcher
from snakesweep.launchers.command import interpreter_or
from snakesweep.process_env import limit_threads
from snakesweep.render import apply_overrides
from snakesweep.logs import log_tail
from snakesweep.trialfiles import write_json


def retrain_config(config: Mapping[str, Any], best: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The best config with this seed, the device, and the retrain overrides (more epochs, ...)."""
    launcher = make_launcher(config["launcher"])
    overrides = launcher.run_overrides(seed, config["model"]["seed_keys"], config["model"]["overrides"])
    overrides.update(config["retrain"]["overrides"])
    return apply_overrides(best, overrides)


def retrain(config: Mapping[str, Any], best_config: str | Path, seed: int, out_dir: str | Path,
            threads: int = 1) -> Path:
    """Train from scratch into out_dir (emptied first); the launcher archives the model for evaluation."""
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    limit_threads(threads)
    config_path = out / "config.json"
    write_json(config_path, retrain_config(config, json.loads(Path(best_config).read_text()), seed))
    (out / "seed").write_text(f"{seed}\n")
    launcher = make_launcher(config["launcher"])
    launcher.prepare()
    log_path = out / "train.log"
    code = launcher.start(config_path, out, trial_number=-1, log_path=log_path, threads=threads, env={}).wait()
    if code != 0:
        raise UserError(
            f"retraining with seed {seed} failed (exit status {code}): {log_tail(log_path, 1)}",
            file=str(log_path),
            fix="read the log; the same config trained during the sweep, so check retrain.overrides",
        )
    launcher.archive(out)
    return out


def check_test_data(config: Mapping[str, Any]) -> str:
    """retrain.test_data, which must exist: checked before the sweep and again before evaluating."""
    path = config["retrain"]["test_data"]
    if not Path(path).exists():
        raise UserError("test data not found", file="config", field="retrain.test_data",
                        fix=f"create {path} or fix the path")
    return path


def evaluate(config: Mapping[str, Any], model_dir: str | Path, output: str | Path) -> dict[str, Any]:
    """Score one retrained model on retrain.test_data; the only step that reads the test set."""
    model_dir, output = Path(model_dir), Path(output)
    test_data = check_test_data(config)
    tmp = output.with_name(output.name + ".tmp")
    command = config["retrain"].get("evaluate_command")
    if command:
        _run_evaluate_command(command, model_dir, test_data, tmp)
    else:
        make_launcher(config["launcher"]).evaluate(model_dir, test_data, tmp)
    metrics = json.loads(tmp.read_text())
    tmp.replace(output)
    return metrics


def _run_evaluate_command(command: Sequence[str], model_dir: Path, test_data: str, output: Path) -> None:
    values = {"model_dir": str(model_dir), "test_data": test_data, "output": str(output)}
    try:
        argv = [interpreter_or(command[0].format(**values)), *(part.format(**values) for part in command[1:])]
    except (KeyError, IndexError) as error:
        raise UserError(
            f"unknown placeholder {error}", file="config", field="retrain.evaluate_command",
            fix="use {model_dir}, {test_data}, {output}",
        ) from None
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0 or not output.exists():
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(
            f"the evaluate command failed (exit status {result.returncode}): {last[0]}",
            file="config", field="retrain.evaluate_command", fix="run it by hand to see why",
        )


def aggregate(per_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Each seed's test metrics, and the mean and standard deviation of every numeric one."""
    numeric = sorted(
        key for key in set.intersection(*(set(m) for m in per_seed.values()))
        if all(isinstance(m[key], (int, float)) and not isinstance(m[key], bool) for m in per_seed.values())
    )
    mean = {key: statistics.fmean(m[key] for m in per_seed.values()) for key in numeric}
    std = {key: statistics.stdev([m[key] for m in per_seed.values()]) if len(per_seed) > 1 else 0.0
           for key in numeric}
    return {"seeds": {str(seed): dict(m) for seed, m in per_seed.items()}, "mean": mean, "std": std}


def write_test_metrics(seed_files: Mapping[int, str | Path], output: str | Path) -> dict[str, Any]:
    result = aggregate({seed: json.loads(Path(path).read_text()) for seed, path in seed_files.items()})
    write_json(Path(output), result)
    return result
