"""Warm start: the finished trials of earlier studies, fitted to this study's space, as the sampler's prior.

`study.warm_start` names the studies: `previous` (every earlier study of this `study.name` in this
storage), a study's name, or `{study: NAME, storage: URL}` for one in another storage. create_study
adds their trials that fit the space once, before any worker; a rerun adds only those still missing.
Each carries the trials.WARM_START system attribute, which keeps it out of every count, budget and
best: its value was measured under another config.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from snakesweep import storage as storages
from snakesweep import trials as vocabulary
from snakesweep.errors import UserError
from snakesweep.optuna_api import all_trials, storage_of
from snakesweep.space import SearchSpace, _same
from snakesweep.space_parsing import parse_space
from snakesweep.definition import ATTR_DEFINITION, ATTR_FINGERPRINT, ATTR_SPACE, StudySpec

PREVIOUS = "previous"
FIELD = "study.warm_start"
log = logging.getLogger("snakesweep.warm_start")


@dataclass(frozen=True)
class Source:
    """Where earlier trials come from: a study's name (or PREVIOUS) and its storage (None: this study's)."""

    study: str
    url: str | None = None

    def where(self) -> str:
        return "this storage" if self.url is None else storages.mask(self.url)


def sources(config: Mapping[str, Any], spec: StudySpec) -> list[Source]:
    """The studies `study.warm_start` names, checked without opening any storage."""
    setting = config["study"].get("warm_start")
    if not setting:
        return []
    if spec.space.is_grid:
        raise UserError(
            "a grid space is swept point by point: earlier trials cannot steer a grid sampler",
            file="config", field=FIELD,
            fix="remove study.warm_start, or give a parameter a range so that a sampler can learn from them",
        )
    own = storages.storage_url(config)
    found = []
    for item in [setting] if isinstance(setting, str) else setting:
        entry = {"study": item} if isinstance(item, str) else item
        url = storages.expand_url(entry["storage"], field=FIELD) if entry.get("storage") else None
        found.append(Source(entry["study"], None if url == own else url))
    return found


# -- fitting one trial into the new space --------------------------------------------------------
def fit(sampled: Mapping[str, Any], ran_with: Mapping[str, Any], space: SearchSpace) -> dict[str, Any] | str:
    """The sampled parameters an earlier trial has in `space`, or why it does not fit.

    `sampled` are the trial's own params; `ran_with` adds the constants and defaults its study
    rendered with, where that study recorded its space. A parameter the space adds takes the value
    the trial ran with, else its declared `default`; one the space drops, or fixes to another
    value, or whose value lies outside the new range or choices leaves the trial out.
    """
    names = {param.name for param in space.params}
    dropped = next((name for name in sampled if name not in names), None)
    if dropped is not None:
        return f"{dropped} no longer in the space"
    values: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for param in space.params:
        name, known = param.name, param.name in ran_with
        if not param.is_active(values):
            if param.has_default:
                values[name] = param.default
            if known and not (param.has_default and _same(ran_with[name], param.default)):
                return f"{name} inactive in the space"
            continue
        if param.kind == "constant":
            if known and param.problem(ran_with[name]) is not None:
                return f"{name} fixed to another value by the space"
            values[name] = param.value
            continue
        if not known and not param.has_default:
            return f"{name} new in the space, without a default"
        value = ran_with[name] if known else param.default
        if param.problem(value) is not None:
            return f"{name} outside the space"
        values[name] = params[name] = value
    return params


def _ran_with(trial: FrozenTrial, space: SearchSpace | None) -> dict[str, Any]:
    """Every value the trial was rendered with: its params, and its space's constants and defaults."""
    if space is None:
        return dict(trial.params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rendered = space.suggest(optuna.trial.FixedTrial(dict(trial.params)))
    except ValueError:  # the recorded space does not match the trial: trust the trial alone
        return dict(trial.params)
    return {**rendered, **trial.params}


def _warm_trial(trial: FrozenTrial, params: dict[str, Any], space: SearchSpace, origin: dict[str, Any]) -> FrozenTrial:
    """A copy of `trial` in the new space's distributions, marked with where it comes from."""
    distributions = space.distributions()
    kept = (vocabulary.EPOCHS, vocabulary.PRUNED_AT_EPOCH)
    return FrozenTrial(
        number=0, trial_id=0, state=trial.state, value=None, values=trial.values,
        datetime_start=trial.datetime_start, datetime_complete=trial.datetime_complete,
        params=params, distributions={name: distributions[name] for name in params},
        user_attrs={key: trial.user_attrs[key] for key in kept if key in trial.user_attrs},
        system_attrs={vocabulary.WARM_START: origin},
        intermediate_values=dict(trial.intermediate_values),
    )


# -- reading earlier studies ---------------------------------------------------------------------
@dataclass(frozen=True)
class Earlier:
    """One earlier study, read through its storage's public API."""

    name: str
    study_id: int
    storage: BaseStorage
    source: Source

    def why_not_comparable(self, study: optuna.Study, spec: StudySpec) -> str | None:
        """Why its values do not measure what this study measures, or None."""
        if self.storage.get_study_directions(self.study_id) != study.directions:
            return "its direction differs"
        definition = self.storage.get_study_user_attrs(self.study_id).get(ATTR_DEFINITION)
        if definition is not None and definition.get("metric") != json.loads(json.dumps(spec.definition["metric"])):
            return "its objective differs"
        return None

    def space(self) -> SearchSpace | None:
        """The space it recorded when it was created (studies of older versions recorded none)."""
        recorded = self.storage.get_study_user_attrs(self.study_id).get(ATTR_SPACE)
        try:
            return parse_space(recorded, self.name) if recorded is not None else None
        except UserError:
            return None

    def finished(self) -> list[FrozenTrial]:
        """Its own complete and pruned trials: surplus claims and its warm-start trials left out."""
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False, states=vocabulary.FINISHED)
        return vocabulary.real_trials(trials)

    def origin(self, trial: FrozenTrial) -> dict[str, Any]:
        """The warm-start marker: the password of another storage's URL masked."""
        where = None if self.source.url is None else storages.mask(self.source.url)
        return {"study": self.name, "trial": trial.number, "storage": where}


def _open(source: Source, study: optuna.Study | None) -> BaseStorage:
    """The source's storage, read-only: this study's own, or another that must exist already."""
    if source.url is None and study is not None:
        return storage_of(study)
    assert source.url is not None
    local = storages.local_file(source.url)
    if local is not None and not local.is_file():
        raise UserError(f"the storage {source.where()} of {source.study} does not exist", file="config",
                        field=FIELD, fix="fix the storage of this entry (a path relative to where snakemake runs)")
    return storages.open_storage(source.url, field=FIELD)


def _named(source: Source, storage: BaseStorage, spec: StudySpec) -> list[Earlier]:
    """The studies a source names: one by its name, or every earlier study of this study.name."""
    if source.study != PREVIOUS:
        if source.url is None and source.study == spec.name:
            raise UserError(f"{source.study} is this study itself", file="config", field=FIELD,
                            fix="name earlier studies only")
        try:
            return [Earlier(source.study, storage.get_study_id_from_name(source.study), storage, source)]
        except KeyError:
            raise UserError(f"no study {source.study} in {source.where()}", file="config", field=FIELD,
                            fix=f"list the studies there: optuna studies --storage {source.where()}") from None
    base = spec.name[: -len(spec.fingerprint) - 1]
    pattern = re.compile(rf"{re.escape(base)}-[0-9a-f]{{{len(spec.fingerprint)}}}")
    return [
        Earlier(frozen.study_name, storage.get_study_id_from_name(frozen.study_name), storage, source)
        for frozen in sorted(storage.get_all_studies(), key=lambda s: s.study_name)
        if pattern.fullmatch(frozen.study_name) and ATTR_FINGERPRINT in frozen.user_attrs
        and not (source.url is None and frozen.study_name == spec.name)
    ]


def _earlier_studies(study: optuna.Study, spec: StudySpec, wanted: list[Source]) -> Iterator[Earlier]:
    """Every earlier study named, that measures what this one does; a named one that does not is an error."""
    for source in wanted:
        for earlier in _named(source, _open(source, study), spec):
            why = earlier.why_not_comparable(study, spec)
            if why is None:
                yield earlier
            elif source.study == PREVIOUS:
                log.info("warm start: %s left out: %s", earlier.name, why)
            else:
                raise UserError(f"{earlier.name} measures something else: {why}", file="config", field=FIELD,
                                fix="warm-start only from studies of the same objective and direction")


def describe(config: Mapping[str, Any], spec: StudySpec) -> str:
    """For `snakesweep check`: the studies named, those of other storages read (nothing is created)."""
    found = []
    for source in sources(config, spec):
        if source.url is None:
            found.append(f"{source.study} in this storage")
        else:
            names = [earlier.name for earlier in _named(source, _open(source, None), spec)]
            found.append(f"{source.study} in {source.where()} ({', '.join(names) or 'no study yet'})")
    return "; ".join(found) or "none"


# -- adding them -----------------------------------------------------------------------------------
def _origin_key(origin: Mapping[str, Any]) -> tuple[Any, ...]:
    return origin.get("storage"), origin.get("study"), origin.get("trial")


def add(study: optuna.Study, spec: StudySpec, wanted: list[Source]) -> int:
    """Add the fitting finished trials of the `wanted` studies that `study` lacks; return how many."""
    if not wanted:
        return 0
    before = {_origin_key(t.system_attrs[vocabulary.WARM_START]) for t in all_trials(study)
              if vocabulary.is_warm_start(t)}
    present = set(before)
    new: list[FrozenTrial] = []
    fitted: dict[str, tuple[int, int]] = {}
    left_out: Counter[str] = Counter()
    for earlier in _earlier_studies(study, spec, wanted):
        space, finished, fit_count = earlier.space(), earlier.finished(), 0
        for trial in finished:
            params = fit(trial.params, _ran_with(trial, space), spec.space)
            if isinstance(params, str):
                left_out[params] += 1
                continue
            fit_count += 1
            origin = earlier.origin(trial)
            if _origin_key(origin) not in present:
                present.add(_origin_key(origin))
                new.append(_warm_trial(trial, params, spec.space, origin))
        fitted[earlier.name] = (fit_count, len(finished))
    study.add_trials(new)
    _report(len(new), len(before), fitted, left_out, wanted)
    return len(new)


def _report(added: int, before: int, fitted: Mapping[str, tuple[int, int]], left_out: Counter[str],
            wanted: list[Source]) -> None:
    if not fitted:
        where = ", ".join(sorted({source.where() for source in wanted}))
        log.warning("warm start: no earlier study to start from in %s; the study starts cold", where)
        return
    studies = ", ".join(f"{name}: {fit} of {total}" for name, (fit, total) in fitted.items())
    log.info("warm start: %d trials added, %d added before (finished trials that fit the space, %s)",
             added, before, studies)
    if left_out:
        log.info("warm start: left out: %s", ", ".join(f"{n} with {why}" for why, n in left_out.most_common()))
