"""A small real project for Snakemake runs: the curve trainer instead of a model, so runs take seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"

SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "layers": {"type": "int", "low": 1, "high": 3},
}
JSONNET = """
local lr = std.parseJson(std.extVar('lr'));
local layers = std.parseJson(std.extVar('layers'));
{ lr: lr, layers: layers, epochs: 3 }
"""


def make(directory: Path, **config: Any) -> Path:
    """config/ with config.yaml, space.json, model.jsonnet and optuna.json under `directory`."""
    (directory / "config").mkdir(parents=True, exist_ok=True)
    (directory / "config" / "space.json").write_text(json.dumps(SPACE))
    (directory / "config" / "model.jsonnet").write_text(JSONNET)
    (directory / "config" / "optuna.json").write_text(json.dumps({
        "sampler": {"type": "TPESampler", "attributes": {"n_startup_trials": 3}},
        "pruner": {"type": "MedianPruner", "attributes": {"n_startup_trials": 2}},
    }))
    (directory / "test.jsonl").write_text("{}\n{}\n")
    data: dict[str, Any] = {
        "study": {"name": "wf", "optuna": "config/optuna.json", "n_trials": 4},
        "search_space": "config/space.json",
        "model": {"config": "config/model.jsonnet"},
        "launcher": {"type": "python", "function": "tests.trainers.curve:train"},
        "workers": {"count": 2, "poll_s": 0.1},
        "retrain": {
            "seeds": [1, 2],
            "test_data": "test.jsonl",
            "evaluate_command": [sys.executable, str(ROOT / "tests/trainers/curve.py"), "--evaluate",
                                 "{model_dir}", "{test_data}", "{output}"],
        },
    }
    update(data, config)
    write_config(directory, data)
    return directory


def update(data: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            update(data[key], value)
        else:
            data[key] = value
    return data


def read_config(directory: Path) -> dict[str, Any]:
    return yaml.safe_load((directory / "config" / "config.yaml").read_text())


def write_config(directory: Path, data: dict[str, Any]) -> None:
    (directory / "config" / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def edit_config(directory: Path, **changes: Any) -> None:
    write_config(directory, update(read_config(directory), changes))


def snakemake(directory: Path, *args: str, env: dict[str, str] | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(SNAKEFILE), "--cores", "2", *args],
        cwd=directory, env=env, capture_output=True, text=True, timeout=timeout,
    )


def planned_rules(directory: Path, env: dict[str, str] | None = None) -> dict[str, int]:
    """What `snakemake -n` would run: {rule: job count}; empty when nothing is to be done."""
    return job_counts(snakemake(directory, "-n", "--quiet", "rules", env=env))


def job_counts(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """The job count table of a `snakemake -n --quiet rules` run: {rule: job count}."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    if "Nothing to be done" in output:
        return {}
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["job", "count"])
    counts: dict[str, int] = {}
    for line in lines[start + 2:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts
