import json
import multiprocessing
from pathlib import Path

import optuna
import pytest

from snakesweep.config import load_config, validate_config
from snakesweep.errors import UserError
from snakesweep.study import create_study, load_study, make_pruner, make_sampler, n_trials, study_spec
from tests.conftest import write_project


def spec_name(tmp_path, **changes):
    config = load_config(write_project(tmp_path, **changes))
    return study_spec(config).name


def test_the_name_carries_a_fingerprint_of_what_defines_the_study(tmp_path):
    base = spec_name(tmp_path)
    assert base == spec_name(tmp_path), "stable"
    assert base.startswith("t-")
    assert spec_name(tmp_path, config={"study": {"n_trials": 40}}) == base, "budget is not part of it"
    assert spec_name(tmp_path, config={"workers": {"count": 7}}) == base
    changed = [
        spec_name(tmp_path, space={"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
                                   "layers": {"type": "int", "low": 1, "high": 3}}),
        spec_name(tmp_path, jsonnet="local lr = std.parseJson(std.extVar('lr'));"
                                    "local l = std.parseJson(std.extVar('layers')); {lr: lr, l: l, x: 1}"),
        spec_name(tmp_path, config={"objective": {"metric": "best_validation_loss"}}),
        spec_name(tmp_path, config={"study": {"direction": "minimize"}}),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_an_imported_jsonnet_file_is_part_of_the_fingerprint(tmp_path):
    (tmp_path / "base.libsonnet").write_text("{ epochs: 3 }")
    jsonnet = ("local base = import 'base.libsonnet'; local lr = std.parseJson(std.extVar('lr'));"
               "local l = std.parseJson(std.extVar('layers')); base + {lr: lr, l: l}")
    before = spec_name(tmp_path, jsonnet=jsonnet)
    (tmp_path / "base.libsonnet").write_text("{ epochs: 4 }")
    assert spec_name(tmp_path, jsonnet=jsonnet) != before


def test_sampler_in_optuna_json_changes_the_study(tmp_path):
    config = load_config(write_project(tmp_path))
    before = study_spec(config).name
    Path(config["study"]["optuna"]).write_text(json.dumps({"sampler": {"type": "TPESampler", "attributes": {}}}))
    assert study_spec(config).name != before


def test_optuna_json_in_allennlp_optuna_format(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({
        "pruner": {"type": "HyperbandPruner", "attributes": {"min_resource": 1, "max_resource": 5, "reduction_factor": 3}},
        "sampler": {"type": "TPESampler", "attributes": {"n_startup_trials": 4}},
    }))
    config = load_config(write_project(tmp_path, config={"study": {"optuna": str(path)}}))
    spec = study_spec(config)
    sampler, pruner = make_sampler(spec, config), make_pruner(spec, config)
    assert isinstance(sampler, optuna.samplers.TPESampler) and sampler._n_startup_trials == 4
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)


def test_workers_get_different_sampler_seeds(tmp_path):
    config = load_config(write_project(tmp_path))
    spec = study_spec(config)
    draws = []
    for worker in (0, 1):
        study = optuna.create_study(sampler=make_sampler(spec, config, worker))
        draws.append(spec.space.suggest(study.ask()))
    assert draws[0] != draws[1]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ({"sampler": {"type": "NoSuchSampler", "attributes": {}}}, "unknown sampler 'NoSuchSampler'"),
        ({"pruner": {"type": "MedianPrunr", "attributes": {}}}, "unknown pruner 'MedianPrunr'"),
        ({"sampler": {"type": "TPESampler", "attributes": {"n_startup": 3}}}, "TPESampler rejects its attributes"),
        ({"pruner": {"type": "BasePruner", "attributes": {}}}, "unknown pruner"),
        ({"sampler": "TPESampler"}, "expected"),
        ({"samplers": {}}, "expected an object with the keys sampler and pruner"),
    ],
)
def test_bad_optuna_json_is_one_clear_line(tmp_path, content, words):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(content))
    config = load_config(write_project(tmp_path, config={"study": {"optuna": str(path)}}))
    with pytest.raises(UserError) as raised:
        spec = study_spec(config)
        make_sampler(spec, config)
        make_pruner(spec, config)
    assert words in str(raised.value) and str(path) in str(raised.value)


def test_grid_space_uses_grid_sampler_and_budget_defaults_to_its_size(tmp_path):
    space = {"lr": [0.1, 0.01], "layers": [1, 2, 3]}
    config = load_config(write_project(tmp_path, space=space, config={"study": {"n_trials": None}}))
    spec = study_spec(config)
    assert n_trials(spec, config) == 6
    assert isinstance(make_sampler(spec, config), optuna.samplers.GridSampler)


def test_creation_is_idempotent_and_start_points_enqueued_once(tmp_path):
    config = load_config(write_project(tmp_path, config={"study": {"enqueue": [{"lr": 0.01, "layers": 2}]}}))
    first = create_study(config)
    again = create_study(config)
    assert first.study_name == again.study_name
    trials = load_study(config).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.WAITING]
    assert trials[0].system_attrs["fixed_params"] == {"lr": 0.01, "layers": 2}


def test_a_start_point_outside_the_space_is_refused(tmp_path):
    config = load_config(write_project(tmp_path, config={"study": {"enqueue": [{"lr": 5.0}]}}))
    with pytest.raises(UserError, match="lr"):
        create_study(config)


def test_loading_a_study_that_was_never_created_says_how_to_create_it(tmp_path):
    config = load_config(write_project(tmp_path))
    create_study(validate_config({**config, "study": {**config["study"], "name": "other"}}))
    with pytest.raises(UserError, match="create-study"):
        load_study(config)


def _create(config_path: str) -> str:
    return create_study(load_config(config_path)).study_name


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_eight_processes_creating_the_same_study_at_once(tmp_path, storage):
    url = {"sqlite": None, "journal": f"journal:{tmp_path}/results/journal.log"}[storage]
    config_path = write_project(tmp_path, config={"study": {"storage": url, "enqueue": [{"lr": 0.01, "layers": 1}]}})
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        names = pool.map(_create, [str(config_path)] * 8)
    assert len(set(names)) == 1
    config = load_config(config_path)
    summaries = optuna.get_all_study_summaries(load_study(config)._storage)
    assert [s.study_name for s in summaries] == names[:1]
    assert len(load_study(config).get_trials()) == 1, "the start point is enqueued once"
