"""`snakesweep check`: every user-made input validated before any worker starts."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import optuna
import sqlalchemy

from snakesweep import storage as storages
from snakesweep import warm_start
from snakesweep.config import load_config
from snakesweep.errors import UserError
from snakesweep.final import check_test_data
from snakesweep.launchers import make_launcher
from snakesweep.optuna_api import in_memory_study
from snakesweep.study import StudySpec, check_start_points, make_pruner, make_sampler, pruning_note, study_spec
from snakesweep.tracking import target


def sample_point(spec: StudySpec, seed: int = 0) -> dict[str, Any]:
    """One point of the space, drawn the way a worker draws it, without touching the study's storage."""
    probe = in_memory_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return spec.space.suggest(probe.ask())


def check_model_config(config: Mapping[str, Any], spec: StudySpec) -> dict[str, Any]:
    """Render the Jsonnet once with a sampled point and let the launcher check its data files; return the point."""
    from snakesweep.render import render

    model = config["model"]
    point = sample_point(spec)
    rendered = render(model["config"], point, style=model["style"], overrides=model["overrides"],
                      strict=model["strict"])
    make_launcher(config["launcher"]).check_data(rendered, model["config"])
    return point


def check_storage(config: Mapping[str, Any]) -> str:
    """Reach the storage without creating anything; return the masked URL."""
    url = storages.storage_url(config)
    local = storages.local_file(url)
    if local is not None:
        parent = next((p for p in [local.parent, *local.parent.parents] if p.exists()), Path("."))
        if not (parent.is_dir() and _writable(parent)):
            raise UserError(f"cannot create {local}", file="config", field="study.storage", fix="use a writable path")
        return storages.mask(url)
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
    except Exception as error:
        raise storages.storage_error(url, error, "reach") from None
    return storages.mask(url)


def _tracking(config: Mapping[str, Any], study: str) -> str:
    """Where MLflow runs go (masked), without contacting MLflow: an outage never stops a sweep."""
    where = target(config, study)
    return "off" if where is None else f"MLflow at {where.masked_uri()}, experiment {where.experiment}"


def _writable(path: Path) -> bool:
    import os

    return os.access(path, os.W_OK)


def check(configfile: str | Path, out: TextIO = sys.stdout) -> int:
    """Print one line per check; 0 when all pass, 1 otherwise."""
    failures = 0
    state: dict[str, Any] = {}

    def step(label: str, action: Callable[[], str | None]) -> None:
        nonlocal failures
        try:
            detail = action()
        except UserError as error:
            failures += 1
            print(f"FAIL  {label}: {error}", file=out)
            return
        print(f"ok    {label}" + (f": {detail}" if detail else ""), file=out)

    def load() -> str:
        state["config"] = load_config(configfile)
        return str(configfile)

    def spec() -> str:
        state["spec"] = study_spec(state["config"])
        space = state["spec"].space
        grid = f", grid of {space.grid_size} points" if space.is_grid else ""
        return f"{state['spec'].name} ({len(space.params)} parameters{grid})"

    def components() -> str:
        sampler = make_sampler(state["spec"], state["config"])
        pruner = make_pruner(state["spec"], state["config"])
        note = pruning_note(state["spec"], state["config"])
        return f"{type(sampler).__name__}, {type(pruner).__name__}" + (f" (warning: {note})" if note else "")

    def jsonnet() -> str:
        return f"rendered with {check_model_config(state['config'], state['spec'])}"

    def start_points() -> str:
        return f"{check_start_points(state['spec'], state['config'])} in the space"

    step("config", load)
    if "config" not in state:
        return 1
    step("study", spec)
    if "spec" in state:
        step("sampler and pruner", components)
        step("start points", start_points)
        step("model config", jsonnet)
        step("warm start", lambda: warm_start.describe(state["config"], state["spec"]))
    step("test data", lambda: check_test_data(state["config"]))
    step("storage", lambda: check_storage(state["config"]))
    if "spec" in state:
        step("tracking", lambda: _tracking(state["config"], state["spec"].name))
    return 1 if failures else 0
