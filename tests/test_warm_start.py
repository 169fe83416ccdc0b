"""Warm start: earlier studies' finished trials fitted into a new space, counted nowhere, never the best."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from snakesweep.config import load_config
from snakesweep.errors import UserError
from snakesweep.report import write_report
from snakesweep.selection import best_summary
from snakesweep.space_parsing import parse_space
from snakesweep.study import create_study, load_study, study_spec
from snakesweep.trials import WARM_START, count_trials, is_warm_start, real_trials
from snakesweep.view import sorted_trials, status
from snakesweep.warm_start import fit
from snakesweep.worker import Worker
from tests.conftest import ROOT, write_project
from tests.workflow_project import edit_config, make, planned_rules, snakemake

CURVE = ("local lr = std.parseJson(std.extVar('lr')); local layers = std.parseJson(std.extVar('layers')); "
         "{lr: lr, layers: layers, epochs: %d}")
TPE_NO_PRUNING = {"sampler": {"type": "TPESampler", "attributes": {"n_startup_trials": 2}},
                  "pruner": {"type": "NopPruner", "attributes": {}}}
LR = {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}
LAYERS = {"type": "int", "low": 1, "high": 3}


def project(tmp_path, space, *, epochs=3, n_trials=4, warm_start=None, storage=None, direction="maximize",
            optuna_json=TPE_NO_PRUNING):
    """The project's config.yaml, written again (as a user edits it) on each call; returns the loaded config."""
    config = {"study": {"n_trials": n_trials, "warm_start": warm_start, "storage": storage, "direction": direction},
              "launcher": {"type": "python", "function": "tests.trainers.curve:train"}, "workers": {"poll_s": 0.05}}
    path = write_project(tmp_path, config=config, space=space, jsonnet=CURVE % epochs)
    (tmp_path / "optuna.json").write_text(json.dumps(optuna_json))
    return load_config(path)


def tell(config, points):
    """Finished trials in the config's study, sampled through its space: (params, value), None for pruned;
    each reports 0.95 at step 0, more than the curve trainer reaches there."""
    spec = study_spec(config)
    study = create_study(config, spec)
    for params, value in points:
        study.enqueue_trial(params)
        trial = study.ask()
        spec.space.suggest(trial)
        trial.report(0.95, 0)
        if value is None:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return study


def warm(config):
    return [t for t in load_study(config).get_trials() if is_warm_start(t)]


# -- fitting one trial ---------------------------------------------------------------------------
NEW = parse_space({"lr": LR, "layers": LAYERS})


@pytest.mark.parametrize("sampled, ran_with, space, expected", [
    ({"lr": 0.005, "layers": 2}, {}, NEW, {"lr": 0.005, "layers": 2}),
    ({"lr": 0.5, "layers": 2}, {}, NEW, "lr outside the space"),
    ({"lr": 0.005, "layers": 2, "dropout": 0.1}, {}, NEW, "dropout no longer in the space"),
    ({"lr": 0.005, "layers": 2}, {}, parse_space({"lr": LR, "layers": LAYERS, "width": {"type": "int", "low": 8,
                                                                                       "high": 64}}),
     "width new in the space, without a default"),
    ({"lr": 0.005, "layers": 2}, {}, parse_space({"lr": LR, "layers": LAYERS, "width": {
        "type": "int", "low": 8, "high": 64, "default": 16}}), {"lr": 0.005, "layers": 2, "width": 16}),
    ({"lr": 0.005}, {"layers": 3}, NEW, {"lr": 0.005, "layers": 3}),  # a constant of the old space, now sampled
    ({"lr": 0.005, "layers": 2}, {}, parse_space({"lr": LR, "layers": 2}), {"lr": 0.005}),
    ({"lr": 0.005, "layers": 3}, {}, parse_space({"lr": LR, "layers": 2}), "layers fixed to another value by the space"),
    ({"lr": 0.005}, {}, parse_space({"lr": LR, "layers": 2}), {"lr": 0.005}),  # a constant the new space adds
    ({"lr": 0.005, "enc": "gru"}, {}, parse_space({"lr": LR, "enc": {"type": "categorical", "choices": ["cnn", "lstm"]}}),
     "enc outside the space"),
    ({"lr": 0.005, "enc": "cnn", "hidden": 32}, {},
     parse_space({"lr": LR, "enc": ["cnn", "lstm"], "hidden": {"type": "int", "low": 8, "high": 64,
                                                             "when": {"enc": "lstm"}, "default": 0}}),
     "hidden inactive in the space"),
    ({"lr": 0.005, "enc": "cnn"}, {"hidden": 0},
     parse_space({"lr": LR, "enc": ["cnn", "lstm"], "hidden": {"type": "int", "low": 8, "high": 64,
                                                             "when": {"enc": "lstm"}, "default": 0}}),
     {"lr": 0.005, "enc": "cnn"}),
    ({"lr": 2}, {}, parse_space({"lr": {"type": "int", "low": 1, "high": 3}}), {"lr": 2}),
    ({"lr": 2.0}, {}, parse_space({"lr": {"type": "int", "low": 1, "high": 3}}), "lr outside the space"),
], ids=["widened", "outside-range", "dropped", "added-without-default", "added-with-default", "old-constant",
        "fixed-to-its-value", "fixed-to-another", "added-constant", "not-a-choice", "now-inactive",
        "inactive-default", "int", "float-into-int"])
def test_fitting_a_trial_into_the_new_space(sampled, ran_with, space, expected):
    assert fit(sampled, {**ran_with, **sampled}, space) == expected


# -- through the worker --------------------------------------------------------------------------
def test_the_previous_studys_trials_steer_the_sampler_but_count_toward_nothing(tmp_path):
    # First sweep: lr near the curve's peak (0.01), 3 epochs: values of 0.6 and more.
    first = project(tmp_path, {"lr": {**LR, "low": 5e-3, "high": 2e-2}, "layers": LAYERS}, n_trials=4)
    first_name = create_study(first).study_name
    Worker(first).run()
    old = [t for t in load_study(first).get_trials() if t.state == TrialState.COMPLETE]
    assert len(old) == 4 and min(t.value for t in old) > 0.6

    # The range widened and one epoch a trial: every new value is at most 0.5, below every old one.
    second = project(tmp_path, {"lr": LR, "layers": LAYERS}, epochs=1, n_trials=3, warm_start="previous")
    create_study(second)
    added = warm(second)
    assert len(added) == 4
    assert {t.system_attrs[WARM_START]["trial"] for t in added} == {t.number for t in old}
    by_origin = {t.system_attrs[WARM_START]["trial"]: t for t in added}
    for trial in old:
        copy = by_origin[trial.number]
        assert (copy.state, copy.value, copy.params) == (trial.state, trial.value, trial.params)
        assert copy.distributions["lr"] == FloatDistribution(1e-4, 1e-1, log=True)  # the new space's
        assert copy.intermediate_values == trial.intermediate_values
    assert all(t.system_attrs[WARM_START]["study"] == first_name for t in added)

    summary = Worker(second).run()
    trials = load_study(second).get_trials()
    assert count_trials(trials).finished == 3 == summary["finished"], "the budget counts the new study's trials only"
    assert len(real_trials(trials)) == 3

    best = best_summary(second, study_spec(second), load_study(second))
    assert best["value"] <= 0.5 and best["counts"] == {"complete": 3, "pruned": 0, "failed": 0}
    assert not is_warm_start(next(t for t in trials if t.number == best["trial"]))
    state = status(second)
    assert state.best["trial"] == best["trial"] and state.finished == 3 and state.warm_start == 4

    table = sorted_trials(second)
    assert list(table["warm_start"].notna()) == [False] * 3 + [True] * 4, "warm-start trials last, marked"
    assert table["warm_start"].iloc[-1].startswith(first_name + " #")

    report = write_report(second, tmp_path / "report")
    assert report["warm_start"] == {"trials": 4, "studies": {first_name: 4}}
    assert report["best"]["trial"] == best["trial"] and report["counts"]["complete"] == 3
    rst = (tmp_path / "report" / "summary.rst").read_text()
    assert "Warm start" in rst and "4 trials of earlier studies" in rst


# -- create_study --------------------------------------------------------------------------------
def test_warm_start_is_not_part_of_the_study_and_adds_each_trial_once(tmp_path, caplog):
    tell(project(tmp_path, {"lr": LR, "layers": LAYERS}, epochs=3), [
        ({"lr": 0.01, "layers": 2}, 0.7), ({"lr": 0.001, "layers": 1}, None), ({"lr": 0.05, "layers": 3}, 0.4)])
    cold = project(tmp_path, {"lr": LR, "layers": {"type": "int", "low": 1, "high": 2}})
    create_study(cold)
    assert warm(cold) == []

    warmed = project(tmp_path, {"lr": LR, "layers": {"type": "int", "low": 1, "high": 2}}, warm_start="previous")
    assert study_spec(warmed).name == study_spec(cold).name, "warm_start does not change the fingerprint"
    with caplog.at_level(logging.INFO, logger="snakesweep"):
        create_study(warmed)
    added = warm(warmed)
    assert sorted((t.state, t.params["layers"]) for t in added) == [(TrialState.COMPLETE, 2), (TrialState.PRUNED, 1)]
    assert "2 trials added" in caplog.text and "1 with layers outside the space" in caplog.text
    create_study(warmed)
    create_study(warmed)
    assert len(warm(warmed)) == 2, "a rerun adds nothing twice"


def test_the_pruner_compares_with_this_studys_own_trials_only(tmp_path):
    tell(project(tmp_path, {"lr": LR, "layers": LAYERS}), [({"lr": 0.01, "layers": 2}, 0.9)] * 3)
    median = {"sampler": {"type": "RandomSampler", "attributes": {}},
              "pruner": {"type": "MedianPruner", "attributes": {"n_startup_trials": 1}}}
    config = project(tmp_path, {"lr": LR, "layers": {"type": "int", "low": 1, "high": 2}}, n_trials=1,
                     warm_start="previous", optuna_json=median)
    create_study(config)
    assert len(warm(config)) == 3
    Worker(config).run()
    (own,) = real_trials(load_study(config).get_trials())
    assert own.state == TrialState.COMPLETE, "no trial of this study completed before it: nothing to prune against"

    hyperband = {"sampler": median["sampler"], "pruner": {"type": "HyperbandPruner", "attributes": {}}}
    config = project(tmp_path, {"lr": LR, "layers": LAYERS}, optuna_json=hyperband)
    create_study(config)
    assert isinstance(load_study(config).pruner, optuna.pruners.HyperbandPruner), "samplers still learn per bracket"


def test_a_constant_of_the_earlier_space_is_the_value_its_trials_take(tmp_path):
    tell(project(tmp_path, {"lr": LR, "layers": 3}), [({"lr": 0.01}, 0.7), ({"lr": 0.002}, 0.5)])
    config = project(tmp_path, {"lr": LR, "layers": LAYERS}, warm_start="previous")
    create_study(config)
    added = warm(config)
    assert sorted(t.params["layers"] for t in added) == [3, 3]
    assert all(t.distributions["layers"] == IntDistribution(1, 3) for t in added)


def test_a_study_of_another_storage_by_name_even_a_plain_optuna_one(tmp_path):
    other = f"journal:{tmp_path}/elsewhere/journal.log"
    (tmp_path / "elsewhere").mkdir()
    plain = optuna.create_study(study_name="by-hand", direction="maximize",
                                storage=optuna.storages.JournalStorage(
                                    optuna.storages.journal.JournalFileBackend(other[len("journal:"):])))
    plain.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-2, log=True) + t.suggest_int("layers", 1, 2), n_trials=3)
    config = project(tmp_path, {"lr": LR, "layers": LAYERS, "width": {"type": "int", "low": 8, "high": 64}},
                     warm_start=[{"study": "by-hand", "storage": other}])
    create_study(config)
    assert warm(config) == [], "width is new and declares no default"

    config = project(tmp_path, {"lr": LR, "layers": LAYERS, "width": {"type": "int", "low": 8, "high": 64,
                                                                    "default": 32}},
                     warm_start=[{"study": "by-hand", "storage": other}])
    create_study(config)
    added = warm(config)
    assert len(added) == 3 and {t.params["width"] for t in added} == {32}
    assert {t.system_attrs[WARM_START]["storage"] for t in added} == {other}


@pytest.mark.parametrize("warm_start, words", [
    (["nope"], "study.warm_start: no study nope in this storage"),
    ([{"study": "x", "storage": "sqlite:///absent/optuna.db"}], "study.warm_start: the storage sqlite:///absent"),
    (["other-study"], "other-study measures something else: its direction differs"),
])
def test_a_warm_start_that_cannot_be_read_is_one_clear_error(tmp_path, warm_start, words):
    (tmp_path / "results").mkdir()
    plain = optuna.create_study(study_name="other-study", direction="minimize",
                                storage=f"sqlite:///{tmp_path}/results/optuna.db")
    plain.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-2), n_trials=1)
    config = project(tmp_path, {"lr": LR, "layers": LAYERS}, warm_start=warm_start)
    with pytest.raises(UserError, match="study.warm_start") as error:
        create_study(config)
    assert words in str(error.value)


def test_check_reads_the_warm_start_studies_of_other_storages(tmp_path):
    from snakesweep.check import check

    other = f"sqlite:///{tmp_path}/old.db"
    optuna.create_study(study_name="by-hand", storage=other)
    entries = ["previous", {"study": "by-hand", "storage": other}]
    project(tmp_path, {"lr": LR, "layers": LAYERS}, warm_start=entries)
    out = io.StringIO()
    assert check(tmp_path / "config.yaml", out=out) == 0, out.getvalue()
    assert f"ok    warm start: previous in this storage; by-hand in {other} (by-hand)" in out.getvalue()

    project(tmp_path, {"lr": LR, "layers": LAYERS}, warm_start=[*entries, {"study": "gone", "storage": other}])
    out = io.StringIO()
    assert check(tmp_path / "config.yaml", out=out) == 1
    assert f"FAIL  warm start: config: study.warm_start: no study gone in {other}" in out.getvalue()
    assert not (tmp_path / "results").exists(), "check creates nothing"


def test_a_grid_space_refuses_a_warm_start_before_creating_anything(tmp_path, run_env):
    project(tmp_path, {"lr": [0.01, 0.1], "layers": [1, 2]}, warm_start="previous")
    result = subprocess.run([sys.executable, "-m", "snakesweep.cli", "create-study", "--configfile",
                             str(tmp_path / "config.yaml")], cwd=ROOT, env=run_env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("snakesweep: error: config: study.warm_start: a grid space")
    assert not (tmp_path / "results" / "optuna.db").exists()


def test_previous_with_no_earlier_study_starts_cold_and_says_so(tmp_path, caplog):
    config = project(tmp_path, {"lr": LR, "layers": LAYERS}, warm_start="previous")
    with caplog.at_level(logging.INFO, logger="snakesweep"):
        create_study(config)
    assert warm(config) == [] and "no earlier study to start from" in caplog.text


def test_previous_leaves_out_a_study_of_another_objective(tmp_path, caplog):
    tell(project(tmp_path, {"lr": LR, "layers": LAYERS}, direction="minimize"), [({"lr": 0.01, "layers": 2}, 0.7)])
    config = project(tmp_path, {"lr": LR, "layers": LAYERS}, warm_start="previous")
    with caplog.at_level(logging.INFO, logger="snakesweep"):
        create_study(config)
    assert warm(config) == [] and "left out: its direction differs" in caplog.text


@pytest.mark.services
def test_a_server_storage_password_is_masked_in_the_warm_start_mark(tmp_path, mariadb_database, monkeypatch):
    monkeypatch.setenv("DB_PASSWORD", mariadb_database.password)
    tell(project(tmp_path, {"lr": LR, "layers": LAYERS}, storage=mariadb_database.url_template),
         [({"lr": 0.01, "layers": 2}, 0.7)])
    config = project(tmp_path, {"lr": LR, "layers": LAYERS}, warm_start=[
        {"study": "previous", "storage": mariadb_database.url_template}])
    create_study(config)
    (added,) = warm(config)
    mark = added.system_attrs[WARM_START]["storage"]
    assert "***" in mark and mariadb_database.password not in json.dumps(added.system_attrs)
    assert mariadb_database.password not in sorted_trials(config).to_csv()


# -- the workflow --------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_workflow_warm_starts_a_widened_space_and_warm_start_alone_reruns_nothing(tmp_path, run_env):
    make(tmp_path)
    assert snakemake(tmp_path, env=run_env).returncode == 0
    results = tmp_path / "results"
    first = json.loads((results / "best_params.json").read_text())
    assert "warm_start" not in pd.read_csv(results / "trials.csv").columns

    edit_config(tmp_path, study={"warm_start": "previous"})
    assert planned_rules(tmp_path, env=run_env) == {}, "warm_start is no part of the study"

    space = json.loads((tmp_path / "config" / "space.json").read_text())
    space["layers"]["high"] = 4
    (tmp_path / "config" / "space.json").write_text(json.dumps(space))
    result = snakemake(tmp_path, env=run_env)
    assert result.returncode == 0, result.stderr[-3000:]

    best = json.loads((results / "best_params.json").read_text())
    assert best["study"] != first["study"]
    assert best["counts"]["complete"] + best["counts"]["pruned"] == 4
    trials = pd.read_csv(results / "trials.csv")
    marked = trials[trials["warm_start"].notna()]
    assert len(marked) == 4 and set(marked["warm_start"].str.split(" #").str[0]) == {first["study"]}
    assert len(trials) - len(marked) == 4 and best["trial"] not in set(marked["number"])
    summary = json.loads((results / "report" / "summary.json").read_text())
    assert summary["warm_start"] == {"trials": 4, "studies": {first["study"]: 4}}
    log = (results / "studies" / best["study"] / "logs" / "create_study.log").read_text()
    assert "warm start: 4 trials added" in log
