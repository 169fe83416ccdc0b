"""Where every file of a sweep lives: the one source of paths for the rules, the CLI and the library.

Each study has a directory of its own, `<results>/studies/<study>/`, so two studies never
collide and a new study's paths make Snakemake rerun what depends on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPEAT_PREFIX = "repeat-"


def run_dir(trial_dir: Path, repeat: int, repeats: int) -> Path:
    """Where one training run of a trial writes: the trial's directory, or with `study.repeats`
    its `repeat-<k>` directory."""
    return trial_dir if repeats == 1 else trial_dir / f"{REPEAT_PREFIX}{repeat}"


def run_dirs(trial_dir: Path) -> list[Path]:
    """Every training run's directory in a trial's directory, in the order of the repeats."""
    repeats = [p for p in trial_dir.glob(f"{REPEAT_PREFIX}*") if p.name[len(REPEAT_PREFIX):].isdigit()]
    return sorted(repeats, key=lambda p: int(p.name[len(REPEAT_PREFIX):])) or [trial_dir]


@dataclass(frozen=True)
class Paths:
    """Paths under `results`; `int | str` arguments take a number, or a wildcard like "{seed}" for a rule."""

    results: Path

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Paths:
        return cls(Path(config["results"]))

    # -- the answer -------------------------------------------------------------------------
    @property
    def best_params(self) -> Path:
        return self.results / "best_params.json"

    @property
    def best_config(self) -> Path:
        return self.results / "best_config.json"

    @property
    def trials_csv(self) -> Path:
        return self.results / "trials.csv"

    @property
    def test_metrics(self) -> Path:
        return self.results / "test_metrics.json"

    @property
    def report_dir(self) -> Path:
        return self.results / "report"

    def log(self, name: str) -> Path:
        return self.results / "logs" / f"{name}.log"

    @property
    def mlflow_db(self) -> Path:
        """The default MLflow tracking store (`tracking.mlflow.tracking_uri: null`)."""
        return self.results / "mlflow.db"

    # -- the study --------------------------------------------------------------------------
    @property
    def studies_dir(self) -> Path:
        return self.results / "studies"

    def study_dir(self, study: str) -> Path:
        return self.studies_dir / study

    def study_marker(self, study: str) -> Path:
        return self.study_dir(study) / "study.json"

    def study_log(self, study: str, name: str) -> Path:
        return self.study_dir(study) / "logs" / f"{name}.log"

    def trials_dir(self, study: str) -> Path:
        return self.study_dir(study) / "trials"

    def trial_dir(self, study: str, number: int | str) -> Path:
        return self.trials_dir(study) / str(number)

    def worker_summary(self, study: str, worker: int | str) -> Path:
        return self.study_dir(study) / "workers" / f"{worker}.json"

    def tracking_dir(self, study: str) -> Path:
        """The journals of what each step reported to MLflow, and how far each was shipped."""
        return self.study_dir(study) / "tracking"

    def journal(self, study: str, writer: str) -> Path:
        return self.tracking_dir(study) / f"{writer}.jsonl"

    # -- the final model --------------------------------------------------------------------
    def retrain_dir(self, seed: int | str) -> Path:
        return self.results / "final" / f"seed-{seed}"

    def retrain_metrics(self, seed: int | str) -> Path:
        return self.retrain_dir(seed) / "metrics.json"

    def seed_test_metrics(self, seed: int | str) -> Path:
        return self.retrain_dir(seed) / "test_metrics.json"
