"""Where things live under results/: one directory per study, so two studies never collide."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def study_dir(config: Mapping[str, Any], study_name: str) -> Path:
    return Path(config["results"]) / "studies" / study_name


def trial_dir(config: Mapping[str, Any], study_name: str, number: int) -> Path:
    return study_dir(config, study_name) / "trials" / str(number)


def worker_summary(config: Mapping[str, Any], study_name: str, worker: int) -> Path:
    return study_dir(config, study_name) / "workers" / f"{worker}.json"


def study_marker(config: Mapping[str, Any], study_name: str) -> Path:
    return study_dir(config, study_name) / "study.json"
