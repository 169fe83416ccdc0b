"""Studies: sampler and pruner from optuna.json, the fingerprinted name, creation once, start points."""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from filelock import FileLock

from snakesweep import storage as storages
from snakesweep.config import objective_directions, objective_metrics
from snakesweep.errors import UserError
from snakesweep.optuna_api import SweepGridSampler, pruning_own_trials
from snakesweep.optuna_json import build, load_optuna_json
from snakesweep.space_parsing import load_space
from snakesweep.budgets import Limits
from snakesweep.definition import ATTR_DEFINITION, ATTR_FINGERPRINT, ATTR_SPACE, StudySpec  # noqa: F401

_IMPORT = re.compile(r"""\bimport(?:str|bin)?\s+(['"])(?P<path>[^'"]+)\1""")


def worker_seed(seed: int, worker: int) -> int:
    """The sampler seed of one worker: distinct for every (seed, worker) pair, unlike `seed + worker`.

    The base seed is hashed (numpy's SeedSequence, any integer, negative ones too) to a 32-bit
    number, and the worker index added to it modulo 2**32: the workers of one study never share
    a seed, and two studies' workers do only if their hashes fall within the worker count of
    each other (a chance of about 2 * workers in 2**32).
    """
    base = int(np.random.SeedSequence(2 * seed if seed >= 0 else -2 * seed - 1).generate_state(1)[0])
    return (base + worker) % 2**32


def make_sampler(spec: StudySpec, config: Mapping[str, Any], worker: int = 0) -> optuna.samplers.BaseSampler:
    """The study's sampler; each worker seeds it differently, or all would start on the same points.

    The seed is optuna.json's sampler seed, else study.seed, made distinct per worker. A grid space
    (every parameter a list of values) always gets a grid sampler over its full product, seeded alike
    in every worker (see SweepGridSampler).
    """
    if spec.space.is_grid:
        return SweepGridSampler(spec.space.grid(), seed=config["study"]["seed"])
    if spec.sampler["type"] == "GridSampler":  # Optuna's ends the study with study.stop(): workers ask and tell
        raise UserError("GridSampler from optuna.json cannot run a sweep of several workers",
                        file=config["study"]["optuna"], field="sampler.type",
                        fix="write every parameter of the search space as a list of values: a grid space gets "
                            "a grid sampler made for workers")
    attributes = dict(spec.sampler["attributes"])
    base = attributes.pop("seed", None)
    if not isinstance(base, int) or isinstance(base, bool):
        if base is not None:  # a wrong one is left for build() to report
            attributes["seed"] = base
        base = config["study"]["seed"]
    sampler = {"type": spec.sampler["type"], "attributes": attributes}
    return build(sampler, "sampler", config["study"]["optuna"], spec.space.suggest, list(spec.directions),
                 seed=worker_seed(base, worker))


def make_pruner(spec: StudySpec, config: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """The study's pruner; built (and so checked) even when pruning is off, which gets NopPruner.

    Optuna defines pruning for one objective only: with several, the study runs without it (see
    `pruning_note`).
    """
    pruner = build(spec.pruner, "pruner", config["study"]["optuna"], spec.space.suggest, spec.direction)
    return optuna.pruners.NopPruner() if not reports_to_pruner(spec, config) else pruner


def reports_to_pruner(spec: StudySpec, config: Mapping[str, Any]) -> bool:
    """Whether the worker reports epochs to the pruner: not with pruning off, nor with several objectives."""
    return config["objective"]["intermediate"] is not None and not spec.several


def pruning_note(spec: StudySpec, config: Mapping[str, Any]) -> str | None:
    """The warning for a pruner configured in a study of several objectives, which runs without it."""
    if not spec.several or config["objective"]["intermediate"] is None or spec.pruner["type"] == "NopPruner":
        return None
    return (f"{config['study']['optuna']}: pruner.type: {spec.pruner['type']} is not used: Optuna defines no "
            "pruning for several objectives, so every trial trains to its end (set objective.intermediate: "
            "null, or the NopPruner, to silence this)")


def check_start_points(spec: StudySpec, config: Mapping[str, Any]) -> int:
    """Every `study.enqueue` point lies in the space; returns how many there are."""
    points = config["study"]["enqueue"]
    for point in points:
        spec.space.check_point(point, "config: study.enqueue")
    return len(points)


def jsonnet_files(path: str | Path) -> list[Path]:
    """A Jsonnet file and every file it imports, transitively (found textually, without evaluating)."""
    found: list[Path] = []
    pending = [Path(path)]
    while pending:
        current = pending.pop()
        if current in found or not current.is_file():
            continue
        found.append(current)
        text = current.read_text()
        pending.extend(current.parent / m["path"] for m in _IMPORT.finditer(text))
    return found


def jsonnet_digest(path: str | Path) -> str:
    """Digest of a Jsonnet file and its imports, so editing any of them changes the study."""
    digest = hashlib.sha256()
    for current in jsonnet_files(path):
        digest.update(current.name.encode() + b"\0" + current.read_bytes() + b"\0")
    return digest.hexdigest()


def study_spec(config: Mapping[str, Any]) -> StudySpec:
    """Read the space, optuna.json and model config; name the study by their fingerprint."""
    space = load_space(config["search_space"])
    sampler, pruner = load_optuna_json(config["study"]["optuna"])
    model_path = Path(config["model"]["config"])
    if not model_path.is_file():
        raise UserError("file not found", file=model_path, field="model.config", fix="fix the path in the config")
    objective = config["objective"]
    metrics, directions = objective_metrics(config), objective_directions(config)
    several = len(metrics) > 1
    definition = {
        "space": space.fingerprint(),
        "model": jsonnet_digest(model_path),
        "model_overrides": config["model"]["overrides"],
        # One objective keeps the form (and so the fingerprint) it always had.
        "metric": [metrics if several else metrics[0], objective["reduce"], objective["last_k"],
                   objective["intermediate"]],
        "direction": directions if several else directions[0],
        "sampler": sampler,
        "pruner": pruner,
        "repeats": config["study"]["repeats"],
    }
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
    fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:10]
    return StudySpec(
        name=f"{config['study']['name']}-{fingerprint}",
        fingerprint=fingerprint,
        direction=directions[0],
        space=space,
        sampler=sampler,
        pruner=pruner,
        definition=definition,
        metrics=tuple(metrics),
        directions=tuple(directions),
    )


def n_trials(spec: StudySpec, config: Mapping[str, Any]) -> int | None:
    """The study's budget of finished trials: the config's, or the grid's size; None under a compute budget."""
    configured = config["study"]["n_trials"]
    if configured is not None:
        return configured
    if spec.space.grid_size is not None:
        return spec.space.grid_size
    budget = config["study"]["budget"]
    if budget["epochs"] is not None or budget["hours"] is not None:
        return None
    raise UserError(
        "no budget: the space is not a grid, and neither a number of trials nor a compute budget is set",
        file="config",
        field="study.n_trials",
        fix="set study.n_trials, or study.budget.epochs or study.budget.hours",
    )


def limits(spec: StudySpec, config: Mapping[str, Any]) -> Limits:
    """When the study stops. Not part of its fingerprint: raising a limit continues the same study."""
    study = config["study"]
    return Limits(n_trials=n_trials(spec, config), epochs=study["budget"]["epochs"], hours=study["budget"]["hours"],
                  patience=study["patience"], min_delta=float(study["min_delta"]))


def create_study(config: Mapping[str, Any], spec: StudySpec | None = None) -> optuna.Study:
    """Create schema, study and start points once; later calls load the same study. Each call adds
    the warm-start trials the study still lacks (none twice).

    Safe to call from many processes at once: embedded storages serialise on a file lock, servers
    on the study-name uniqueness of the database.
    """
    from snakesweep import warm_start  # here: warm_start imports this module

    spec = spec or study_spec(config)
    url = storages.storage_url(config)
    check_start_points(spec, config)
    sources = warm_start.sources(config, spec)
    local = storages.local_file(url)
    lock: Any = contextlib.nullcontext()
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{local}.create.lock")  # not "<file>.lock": JournalFileBackend uses that one
    with lock:
        study = _create_or_load(config, spec, url)
        warm_start.add(study, spec, sources)
    return study


def _create_or_load(config: Mapping[str, Any], spec: StudySpec, url: str) -> optuna.Study:
    storage = storages.open_storage(url, create_schema=True)
    if storages.kind(url) == "sqlite":
        _use_write_ahead_log(storage)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=spec.name,
            directions=list(spec.directions),
            sampler=make_sampler(spec, config),
            pruner=pruning_own_trials(make_pruner(spec, config)),
        )
    except optuna.exceptions.DuplicatedStudyError:
        return load_study(config, spec, storage=storage)
    if spec.several:  # Optuna's plots and tools name the objectives
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(spec.metrics))
    study.set_user_attr(ATTR_FINGERPRINT, spec.fingerprint)
    study.set_user_attr(ATTR_DEFINITION, json.loads(json.dumps(spec.definition, default=str)))
    study.set_user_attr(ATTR_SPACE, spec.space.to_dict())
    for point in config["study"]["enqueue"]:
        study.enqueue_trial(dict(point), skip_if_exists=True)
    return study


def _use_write_ahead_log(storage: Any) -> None:
    """WAL lets readers (status, dashboard) work while workers write; it persists in the file."""
    connection = storage.engine.raw_connection()  # outside a transaction, where SQLite allows it
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def load_study(
    config: Mapping[str, Any],
    spec: StudySpec | None = None,
    *,
    worker: int = 0,
    storage: Any = None,
) -> optuna.Study:
    """Load the existing study with this process's sampler and pruner."""
    spec = spec or study_spec(config)
    if storage is None:
        storage = storages.open_storage(storages.storage_url(config))
    try:
        return optuna.load_study(
            study_name=spec.name,
            storage=storage,
            sampler=make_sampler(spec, config, worker),
            pruner=pruning_own_trials(make_pruner(spec, config)),
        )
    except KeyError:
        raise UserError(
            f"the study {spec.name} does not exist in the storage",
            file="config",
            field="study.storage",
            fix="create it first: snakesweep create-study --configfile ... (the workflow's create_study rule)",
        ) from None
