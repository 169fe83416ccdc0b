"""Studies: sampler and pruner from optuna.json, the fingerprinted name, creation once, start points."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock

from snakesweep import storage as storages
from snakesweep.errors import UserError
from snakesweep.optuna_api import SweepGridSampler, pruning_own_trials
from snakesweep.space import SearchSpace
from snakesweep.space_parsing import load_space

ATTR_FINGERPRINT = "snakesweep:fingerprint"
ATTR_DEFINITION = "snakesweep:definition"
ATTR_SPACE = "snakesweep:space"  # the normalised space: a later study's warm start reads its constants
_IMPORT = re.compile(r"""\bimport(?:str|bin)?\s+(['"])(?P<path>[^'"]+)\1""")


@dataclass(frozen=True)
class StudySpec:
    """Everything that defines a study, read from the config and its files."""

    name: str
    fingerprint: str
    direction: str
    space: SearchSpace
    sampler: Mapping[str, Any]
    pruner: Mapping[str, Any]
    definition: Mapping[str, Any]


def _read_json(path: str | Path, field: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError("file not found", file=path, field=field, fix="fix the path in the config") from None
    except json.JSONDecodeError as error:
        raise UserError(f"not valid JSON: {error.msg} at line {error.lineno}", file=path) from None


def load_optuna_json(path: str | Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sampler and pruner specs from allennlp-optuna's optuna.json; TPE and no pruning by default."""
    default_sampler = {"type": "TPESampler", "attributes": {}}
    default_pruner = {"type": "NopPruner", "attributes": {}}
    if path is None:
        return default_sampler, default_pruner
    data = _read_json(path, "study.optuna")
    if not isinstance(data, dict) or set(data) - {"sampler", "pruner"}:
        raise UserError(
            "expected an object with the keys sampler and pruner",
            file=path,
            fix='write {"sampler": {"type": "TPESampler", "attributes": {}}, "pruner": {...}}',
        )
    specs = []
    for key, default in (("sampler", default_sampler), ("pruner", default_pruner)):
        spec = data.get(key, default)
        if not isinstance(spec, dict) or "type" not in spec or set(spec) - {"type", "attributes"}:
            raise UserError(
                'expected {"type": ClassName, "attributes": {...}}', file=path, field=key
            )
        specs.append({"type": spec["type"], "attributes": dict(spec.get("attributes") or {})})
    return specs[0], specs[1]


def _component(module: Any, base: type, spec: Mapping[str, Any], path: Any, key: str, **extra: Any) -> Any:
    """An Optuna sampler or pruner from its class name and keyword attributes."""
    name = spec["type"]
    cls = getattr(module, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, base) and not inspect.isabstract(cls)):
        known = sorted(n for n in dir(module) if n[0].isupper() and not n.startswith("Base"))
        raise UserError(
            f"unknown {key} {name!r}", file=path, field=f"{key}.type", fix="use one of: " + ", ".join(known)
        )
    attributes = dict(spec["attributes"])
    accepted = inspect.signature(cls).parameters
    for option, value in extra.items():
        if option in accepted and option not in attributes:
            attributes[option] = value
    try:
        return cls(**attributes)
    except (TypeError, ValueError) as error:
        raise UserError(
            f"{name} rejects its attributes: {error}",
            file=path,
            field=f"{key}.attributes",
            fix=f"accepted: {', '.join(p for p in accepted if p != 'self')}",
        ) from None


def make_sampler(spec: StudySpec, config: Mapping[str, Any], worker: int = 0) -> optuna.samplers.BaseSampler:
    """The study's sampler; each worker seeds it differently, or all would start on the same points.

    A grid space (every parameter a list of values) always gets a grid sampler over its full
    product, seeded alike in every worker (see SweepGridSampler).
    """
    if spec.space.is_grid:
        return SweepGridSampler(spec.space.grid(), seed=config["study"]["seed"])
    seed = config["study"]["seed"] + worker
    path = config["study"]["optuna"]
    return _component(optuna.samplers, optuna.samplers.BaseSampler, spec.sampler, path, "sampler", seed=seed)


def make_pruner(spec: StudySpec, config: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    if config["objective"]["intermediate"] is None:
        return optuna.pruners.NopPruner()
    path = config["study"]["optuna"]
    return _component(optuna.pruners, optuna.pruners.BasePruner, spec.pruner, path, "pruner")


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
    definition = {
        "space": space.fingerprint(),
        "model": jsonnet_digest(model_path),
        "model_overrides": config["model"]["overrides"],
        "metric": [objective["metric"], objective["reduce"], objective["last_k"], objective["intermediate"]],
        "direction": config["study"]["direction"],
        "sampler": sampler,
        "pruner": pruner,
        "repeats": config["study"]["repeats"],
    }
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
    fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:10]
    return StudySpec(
        name=f"{config['study']['name']}-{fingerprint}",
        fingerprint=fingerprint,
        direction=config["study"]["direction"],
        space=space,
        sampler=sampler,
        pruner=pruner,
        definition=definition,
    )


def n_trials(spec: StudySpec, config: Mapping[str, Any]) -> int:
    """The study's budget of finished trials: the config's, or the grid's size."""
    configured = config["study"]["n_trials"]
    if configured is not None:
        return configured
    if spec.space.grid_size is not None:
        return spec.space.grid_size
    raise UserError(
        "no trial budget: the space is not a grid", file="config", field="study.n_trials", fix="set study.n_trials"
    )


def create_study(config: Mapping[str, Any], spec: StudySpec | None = None) -> optuna.Study:
    """Create schema, study and start points once; later calls load the same study. Each call adds
    the warm-start trials the study still lacks (none twice).

    Safe to call from many processes at once: embedded storages serialise on a file lock, servers
    on the study-name uniqueness of the database.
    """
    from snakesweep import warm_start  # here: warm_start imports this module

    spec = spec or study_spec(config)
    url = storages.storage_url(config)
    for point in config["study"]["enqueue"]:
        spec.space.check_point(point, "config: study.enqueue")
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
            direction=spec.direction,
            sampler=make_sampler(spec, config),
            pruner=pruning_own_trials(make_pruner(spec, config)),
        )
    except optuna.exceptions.DuplicatedStudyError:
        return load_study(config, spec, storage=storage)
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
        storage = storages.open_storage(storages.storage_url(config), heartbeat_s=config["study"]["heartbeat_s"])
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
