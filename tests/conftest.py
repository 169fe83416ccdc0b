"""Shared fixtures: small real projects in temporary directories."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any
from pathlib import Path

import pytest
import yaml

pytest_plugins = ["tests.services.fixtures"]  # mariadb, postgres, slurm: real servers, started lazily

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def write_project(directory: Path, config: dict | None = None, space: object = None, jsonnet: str | None = None) -> Path:
    """A minimal project: config.yaml, a space, optuna.json and a Jsonnet model; returns config.yaml."""
    space = space if space is not None else {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "layers": {"type": "int", "low": 1, "high": 3},
    }
    (directory / "space.json").write_text(json.dumps(space))
    (directory / "model.jsonnet").write_text(jsonnet or """
local lr = std.parseJson(std.extVar('lr'));
local layers = std.parseJson(std.extVar('layers'));
{ trainer: { lr: lr, num_epochs: 3 }, model: { layers: layers } }
""")
    (directory / "optuna.json").write_text(json.dumps({
        "sampler": {"type": "RandomSampler", "attributes": {}},
        "pruner": {"type": "MedianPruner", "attributes": {"n_startup_trials": 2}},
    }))
    data = {
        "study": {"name": "t", "optuna": str(directory / "optuna.json"), "n_trials": 4},
        "search_space": str(directory / "space.json"),
        "model": {"config": str(directory / "model.jsonnet")},
        "launcher": {"type": "python", "function": "tests.trainers.tiny_torch:train"},
        "retrain": {"test_data": str(directory / "test.jsonl")},
        "results": str(directory / "results"),
    }
    for key, value in (config or {}).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict) and key != "launcher":
            data[key].update(value)
        else:
            data[key] = value
    (directory / "test.jsonl").write_text("")
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path)


@pytest.fixture
def run_env() -> dict[str, str]:
    """Environment for subprocesses: the venv's tools first, the repo importable."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def wait_until(check: Callable[[], Any], what: str, timeout: float = 300.0, poll: float = 0.05,
               details: Callable[[], str] = lambda: "") -> Any:
    """Poll `check` until it returns something true, and return that; fail after `timeout` seconds
    (a cap for a loaded machine, not an expectation: a passing test never waits that long)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s\n{details()}".rstrip())
        time.sleep(poll)


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, dirs_exist_ok=True)
    return target
