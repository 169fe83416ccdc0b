"""What the Snakefile needs to know before it builds the DAG: names, paths, budgets, early checks."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from snakesweep import storage as storages
from snakesweep import tracking
from snakesweep import warm_start
from snakesweep.check import check_model_config
from snakesweep.config import validate_config
from snakesweep.errors import UserError, one_line
from snakesweep.final import check_test_data
from snakesweep.paths import Paths
from snakesweep.study import (check_start_points, jsonnet_files, limits, make_pruner, make_sampler, pruning_note,
                              study_spec)


@dataclass(frozen=True)
class Plan:
    study_name: str
    n_trials: int | None
    budget: dict[str, Any]
    """Every limit of the study (trials, epochs, hours, patience): a changed one reruns the workers."""
    inputs: list[str]
    paths: Paths
    select: dict[str, Any] | None = None
    """Several objectives: `select`, which picks the trial to retrain (a change reruns the selection)."""


def plan(config: dict[str, Any]) -> Plan:
    """Validate the config (filling defaults in place, as snakemake.utils.validate does) and plan the run."""
    config.update(validate_config(config, "config"))
    spec = study_spec(config)
    make_sampler(spec, config)  # built, so a wrong attribute in optuna.json is found now, not mid-trial
    make_pruner(spec, config)
    note = pruning_note(spec, config)
    if note:
        print(f"snakesweep: warning: {note}", file=sys.stderr)
    check_start_points(spec, config)
    storages.storage_url(config)  # every variable it names is set
    tracking.target(config, spec.name)  # mlflow installed, and every variable the URI names is set
    warm_start.sources(config, spec)  # and those of study.warm_start, which a grid space refuses
    check_model_config(config, spec)
    check_test_data(config)
    inputs = [config["search_space"], *map(str, jsonnet_files(config["model"]["config"]))]
    if config["study"]["optuna"]:
        inputs.append(config["study"]["optuna"])
    budget = limits(spec, config)
    return Plan(study_name=spec.name, n_trials=budget.n_trials, budget=budget.to_dict(), inputs=inputs,
                paths=Paths.of(config), select=dict(config["select"]) if spec.several else None)


def refuse_sqlite_on_cluster(config: Mapping[str, Any]) -> None:
    """SQLite on a shared file system corrupts under concurrent writers from several nodes."""
    url = config["study"]["storage"] or storages.default_url(config)
    if storages.kind(url) == "sqlite" and not config["study"]["allow_sqlite_on_slurm"]:
        raise UserError(
            "a cluster run with a SQLite storage: SQLite on a shared file system corrupts",
            file="config",
            field="study.storage",
            fix='set study.storage: "${OPTUNA_STORAGE}" and export OPTUNA_STORAGE=postgresql+psycopg2://... '
            "or mysql+pymysql://...; to force SQLite, set study.allow_sqlite_on_slurm: true",
        )


def plan_or_exit(config: dict[str, Any]) -> Plan:
    """plan() for a Snakefile: a user error ends snakemake with one line instead of a traceback."""
    try:
        return plan(config)
    except UserError as error:
        _exit(error)


def check_executor_or_exit(config: Mapping[str, Any], workflow: Any) -> None:
    """For `onstart:`, where the executor is known (it is not while the Snakefile is parsed)."""
    plugin = workflow.executor_plugin
    if plugin is not None and not plugin.common_settings.local_exec and not workflow.dryrun:
        try:
            refuse_sqlite_on_cluster(config)
        except UserError as error:
            _exit(error)


def _exit(error: UserError) -> NoReturn:
    line, code = one_line(error)
    print(f"snakesweep: {line}", file=sys.stderr)
    sys.exit(code)
