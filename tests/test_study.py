import json
import multiprocessing
from pathlib import Path

import optuna
import pytest

from snakesweep.config import load_config, validate_config
from snakesweep.errors import UserError
from snakesweep.study import create_study, load_study, make_pruner, make_sampler, n_trials, study_spec, worker_seed
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


def first_draws(tmp_path, seed, workers=range(4), sampler=None):
    optuna_json = {"sampler": sampler or {"type": "RandomSampler", "attributes": {}}}
    (tmp_path / "sampler.json").write_text(json.dumps(optuna_json))
    config = load_config(write_project(tmp_path, config={"study": {"seed": seed, "optuna": str(tmp_path / "sampler.json")}}))
    spec = study_spec(config)
    draws = []
    for worker in workers:
        study = optuna.create_study(sampler=make_sampler(spec, config, worker))
        draws.append(tuple(sorted(spec.space.suggest(study.ask()).items())))
    return draws


def test_workers_get_different_sampler_seeds(tmp_path):
    draws = first_draws(tmp_path, seed=13)
    assert len(set(draws)) == 4


def test_studies_with_neighbouring_seeds_share_no_workers_draws(tmp_path):
    """With `seed + worker`, seed 2's worker 1 drew what seed 3's worker 0 drew."""
    assert len(set(first_draws(tmp_path, 2) + first_draws(tmp_path, 3))) == 8
    for sampler in ("TPESampler", "RandomSampler"):
        with_seed = first_draws(tmp_path, 13, sampler={"type": sampler, "attributes": {"seed": 2}})
        assert len(set(with_seed + first_draws(tmp_path, 13, sampler={"type": sampler, "attributes": {"seed": 3}}))) == 8
        assert with_seed == first_draws(tmp_path, 99, sampler={"type": sampler, "attributes": {"seed": 2}}), \
            "optuna.json's seed is the base, in place of study.seed"


def test_distinct_seed_and_worker_pairs_get_distinct_sampler_seeds():
    derived = {worker_seed(seed, worker) for seed in range(-100, 400) for worker in range(64)}
    assert len(derived) == 500 * 64 and all(0 <= value < 2**32 for value in derived)
    assert worker_seed(2**40, 3) == worker_seed(2**40, 3) != worker_seed(2**40 + 1, 3)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ({"sampler": {"type": "NoSuchSampler", "attributes": {}}}, "unknown sampler 'NoSuchSampler'"),
        ({"pruner": {"type": "MedianPrunr", "attributes": {}}}, "unknown pruner 'MedianPrunr'"),
        ({"sampler": {"type": "TPESampler", "attributes": {"n_startup": 3}}}, "TPESampler rejects its attributes"),
        ({"pruner": {"type": "BasePruner", "attributes": {}}}, "unknown pruner"),
        ({"sampler": "TPESampler"}, "expected"),
        ({"samplers": {}}, "expected an object with the keys sampler and pruner"),
        # Types Optuna's constructors take and trials then crash on:
        ({"sampler": {"type": "TPESampler", "attributes": {"n_startup_trials": "5"}}},
         "sampler.attributes.n_startup_trials: TPESampler takes int, not '5'"),
        ({"sampler": {"type": "TPESampler", "attributes": {"multivariate": "yes"}}}, "sampler.attributes.multivariate"),
        ({"sampler": {"type": "RandomSampler", "attributes": {"seed": "7"}}}, "sampler.attributes.seed"),
        ({"pruner": {"type": "MedianPruner", "attributes": {"n_startup_trials": "5"}}},
         "pruner.attributes.n_startup_trials: MedianPruner takes int, not '5'"),
        ({"pruner": {"type": "HyperbandPruner", "attributes": {"min_resource": "auto"}}},
         "pruner.attributes.min_resource: HyperbandPruner takes int, not 'auto'"),
        ({"pruner": {"type": "SuccessiveHalvingPruner", "attributes": {"min_resource": "big"}}}, "min_resource"),
        ({"pruner": {"type": "ThresholdPruner", "attributes": {"lower": "0.5"}}}, "pruner.attributes.lower"),
        ({"pruner": {"type": "PatientPruner", "attributes": {"patience": 2, "wrapped_pruner": "MedianPruner"}}},
         "pruner.attributes.wrapped_pruner"),
        # Right types, values that fail only once trials run:
        ({"pruner": {"type": "HyperbandPruner", "attributes": {"reduction_factor": 1}}},
         "HyperbandPruner fails on trial runs with these attributes"),
        ({"sampler": {"type": "TPESampler", "attributes": {"n_startup_trials": 2, "n_ei_candidates": 0}}},
         "TPESampler fails on trial runs with these attributes"),
        ({"sampler": {"type": "GridSampler", "attributes": {"search_space": {"lr": [0.1], "layers": [1]}}}},
         "sampler.type: GridSampler from optuna.json cannot run a sweep of several workers"),
        ({"pruner": {"type": "TYPE_CHECKING", "attributes": {}}}, "unknown pruner 'TYPE_CHECKING'"),
        ({"pruner": {"type": 3, "attributes": {}}}, "unknown pruner 3"),
        ({"sampler": {"type": "TPESampler", "attributes": [1]}}, "sampler.attributes: expected an object"),
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
    assert "\n" not in str(raised.value)


def test_an_unknown_class_is_named_with_the_classes_there_are(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"pruner": {"type": "MedianPrunr", "attributes": {}}}))
    config = load_config(write_project(tmp_path, config={"study": {"optuna": str(path)}}))
    with pytest.raises(UserError) as raised:
        make_pruner(study_spec(config), config)
    assert f"{path}: pruner.type: unknown pruner 'MedianPrunr'" in str(raised.value)
    accepted = str(raised.value).split("use one of: ")[1].rstrip(")").split(", ")
    assert "MedianPruner" in accepted and "HyperbandPruner" in accepted and "TYPE_CHECKING" not in accepted
    assert all(issubclass(getattr(optuna.pruners, name), optuna.pruners.BasePruner) for name in accepted)


def test_a_pruner_is_checked_even_while_pruning_is_off(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"pruner": {"type": "MedianPruner", "attributes": {"n_warmup_steps": "2"}}}))
    config = load_config(write_project(tmp_path, config={"study": {"optuna": str(path)},
                                                         "objective": {"intermediate": None}}))
    with pytest.raises(UserError, match="pruner.attributes.n_warmup_steps"):
        make_pruner(study_spec(config), config)


def test_the_default_samplers_and_pruners_pass(tmp_path):
    for content in (
        {"sampler": {"type": "TPESampler", "attributes": {"n_startup_trials": 5, "multivariate": True,
                                                          "constant_liar": True}},
         "pruner": {"type": "HyperbandPruner", "attributes": {"min_resource": 1, "max_resource": "auto"}}},
        {"sampler": {"type": "QMCSampler", "attributes": {"qmc_type": "halton", "scramble": True}},
         "pruner": {"type": "SuccessiveHalvingPruner", "attributes": {"min_resource": "auto"}}},
        {"sampler": {"type": "NSGAIISampler", "attributes": {"population_size": 4}},
         "pruner": {"type": "PercentilePruner", "attributes": {"percentile": 25.0, "n_startup_trials": 1}}},
        {"pruner": {"type": "ThresholdPruner", "attributes": {"lower": 0.1, "upper": None}}},
    ):
        config = load_config(write_project(tmp_path))
        (tmp_path / "optuna.json").write_text(json.dumps(content))
        spec = study_spec(config)
        assert type(make_sampler(spec, config)).__name__ == content.get("sampler", {"type": "TPESampler"})["type"]
        assert type(make_pruner(spec, config)).__name__ == content["pruner"]["type"]


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
