"""Several objectives: the config's forms, the front and select.rule on a real study, the tracking journal."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import optuna
import pytest
import yaml

from snakesweep.config import load_config, validate_config
from snakesweep.display import format_status
from snakesweep.errors import UserError
from snakesweep.selection import select
from snakesweep.study import create_study, make_sampler, pruning_note, study_spec
from snakesweep.tracking.journal import Journal
from snakesweep.tracking.listener import JournalListener
from snakesweep.view import status
from tests.conftest import BIN, write_project
from tests.workflow_project import JSONNET, edit_config, make, planned_rules, snakemake

SEVERAL = {"objective": {"metrics": ["accuracy", "parameters"]}, "study": {"directions": ["maximize", "minimize"]}}


@pytest.mark.parametrize("config, field, words", [
    ({"objective": {"metrics": ["accuracy", "parameters"], "metric": "accuracy"},
      "study": {"directions": ["maximize", "minimize"]}}, "objective.metric", "leave out objective.metric"),
    ({"objective": {"metrics": ["accuracy", "parameters"]},
      "study": {"directions": ["maximize", "minimize"], "direction": "maximize"}}, "study.direction", "leave out"),
    ({"objective": {"metrics": ["accuracy", "parameters"]}, "study": {"directions": ["maximize"]}},
     "study.directions", "1 directions for 2 metrics"),
    ({"objective": {"metrics": ["accuracy"]}, "study": {"directions": ["maximize"]}},
     "objective.metrics", "write one as objective.metric"),
    ({"objective": {"metrics": ["accuracy", "parameters"]}}, "study.directions", "give both lists"),
    ({"study": {"directions": ["maximize", "minimize"]}}, "objective.metrics", "give both lists"),
    ({**SEVERAL, "study": {**SEVERAL["study"], "patience": 5}}, "study.patience", "patience needs one objective"),
    ({**SEVERAL, "select": {"rule": "best", "metric": "loss"}}, "select.metric", "use one of: accuracy, parameters"),
    ({**SEVERAL, "select": {"where": {"latency": {"max": 3}}}}, "select.where.latency", "bound one of"),
])
def test_a_wrong_combination_of_objectives_is_one_line_naming_file_field_and_fix(tmp_path, config, field, words):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(UserError) as raised:
        load_config(path)
    line = str(raised.value)
    assert "\n" not in line and line.startswith(f"{path}: {field}: ") and words in line


def test_a_completed_config_of_either_form_validates_again_unchanged():
    for data in ({}, SEVERAL):
        completed = validate_config(data)
        assert validate_config(completed) == completed
    assert validate_config({})["objective"]["metric"] == "best_validation_accuracy"
    assert "metric" not in validate_config(SEVERAL)["objective"]


# -- the front and the rule, on a study in a real SQLite storage ---------------------------------
# (accuracy, parameters) per trial; 2 is dominated by 1, 4 by 3; the front is 0, 1, 3, 5.
VALUES = [(0.60, 1000), (0.80, 3000), (0.70, 3000), (0.90, 9000), (0.85, 9500), (0.95, 40000)]


def several_objectives(tmp_path: Path, **select_rule) -> dict:
    """A study of two objectives holding the trials of VALUES (told as a worker tells them)."""
    path = write_project(tmp_path, config={**SEVERAL, "select": select_rule})
    config = load_config(path)
    study = create_study(config)
    for number, values in enumerate(VALUES):
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_int("layers", 1, 3)
        assert trial.number == number
        study.tell(trial, list(values))
    failed = study.ask()
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    return config


def select_into(config: dict, tmp_path: Path) -> dict:
    out = tmp_path / "out"
    return select(config, out / "trials.csv", out / "best_params.json", out / "best_config.json")


def test_best_params_holds_the_front_and_the_knee_of_it(tmp_path):
    config = several_objectives(tmp_path, rule="knee")
    summary = select_into(config, tmp_path)
    written = json.loads((tmp_path / "out" / "best_params.json").read_text())
    assert written == json.loads(json.dumps(summary))
    assert [entry["trial"] for entry in written["front"]] == [0, 1, 3, 5]
    assert written["front"][2]["values"] == {"accuracy": 0.90, "parameters": 9000}
    assert set(written["front"][2]["params"]) == {"lr", "layers"}
    # Scaled over the front, accuracy 0.60..0.95 and parameters 1000..40000 (0 best, 1 worst):
    # 0 (1, 0), 1 (0.43, 0.05), 3 (0.14, 0.21), 5 (0, 1): trial 3 is nearest to (0, 0).
    assert written["trial"] == 3 and written["values"] == {"accuracy": 0.90, "parameters": 9000}
    assert written["metrics"] == ["accuracy", "parameters"] and written["directions"] == ["maximize", "minimize"]
    assert written["params"] == written["front"][2]["params"]
    assert "value" not in written and written["counts"] == {"complete": 6, "pruned": 0, "failed": 1}

    table = (tmp_path / "out" / "trials.csv").read_text().splitlines()
    header = table[0].split(",")
    assert header[:5] == ["number", "state", "value_accuracy", "value_parameters", "pareto_front"]
    on_front = {int(row.split(",")[0]) for row in table[1:] if row.split(",")[4] == "True"}
    assert on_front == {0, 1, 3, 5}


def test_the_best_of_one_metric_within_a_bound_on_another(tmp_path):
    config = several_objectives(tmp_path, rule="best", metric="accuracy", where={"parameters": {"max": 9200}})
    assert select_into(config, tmp_path)["trial"] == 3  # 4 (0.85, 9500) is out of bounds and off the front anyway
    config["select"] = {"rule": "best", "metric": "parameters", "where": {"accuracy": {"min": 0.75}}}
    assert select_into(config, tmp_path)["trial"] == 1
    # A bound on the good end of a metric: 4 (0.85, 9500) is off the study's front (3 dominates it)
    # but the best trial within the bound, since 3 and 5 are out of it.
    config["select"] = {"rule": "best", "metric": "accuracy", "where": {"accuracy": {"max": 0.88}}}
    assert select_into(config, tmp_path)["trial"] == 4


def test_no_trial_within_the_bound_is_one_line_and_writes_nothing(tmp_path):
    config = several_objectives(tmp_path, rule="best", where={"parameters": {"max": 500}})
    with pytest.raises(UserError) as raised:
        select_into(config, tmp_path)
    line = str(raised.value)
    assert "\n" not in line and line.startswith("config: select.where: no completed trial is within the bounds")
    assert "parameters <= 500" in line and "loosen the bounds" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    shown = format_status(status(config))  # watching the sweep still works: the front, nothing chosen yet
    assert "front    4 trials on the Pareto front of accuracy, parameters (maximize, minimize)" in shown
    assert "chosen   - (no trial on the front is within the bounds yet: best accuracy within parameters <= 500)" in shown


def test_a_pruner_with_several_objectives_is_one_warning_and_not_used(tmp_path):
    config = load_config(write_project(tmp_path, config=SEVERAL))
    spec = study_spec(config)
    note = pruning_note(spec, config)
    assert note is not None and "\n" not in note and "MedianPruner is not used" in note
    study = create_study(config, spec)
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert study.metric_names == ["accuracy", "parameters"]
    assert isinstance(study.pruner, optuna.pruners.NopPruner)
    config["objective"]["intermediate"] = None
    assert pruning_note(spec, config) is None


def test_the_default_sampler_and_nsga_ii_take_several_objectives(tmp_path):
    config = load_config(write_project(tmp_path, config={**SEVERAL, "study": {**SEVERAL["study"], "optuna": None}}))
    assert isinstance(make_sampler(study_spec(config), config), optuna.samplers.TPESampler)  # tried out on 2 objectives
    (tmp_path / "nsga.json").write_text(json.dumps({"sampler": {"type": "NSGAIISampler", "attributes": {}}}))
    config["study"]["optuna"] = str(tmp_path / "nsga.json")
    assert isinstance(make_sampler(study_spec(config), config), optuna.samplers.NSGAIISampler)


def test_the_tracking_journal_logs_each_objective_under_its_metric_name(tmp_path):
    listener = JournalListener(Journal(tmp_path / "worker-0.jsonl", {}), metric="accuracy", ship="never")
    listener.trial_started(0, {"lr": 0.1}, tmp_path, worker=0)
    listener.trial_finished(0, {"state": "COMPLETE", "value": {"accuracy": 0.9, "parameters": 9000.0}, "seconds": 1})
    (tmp_path / "study").mkdir()
    config = several_objectives(tmp_path / "study", rule="knee")
    listener.selected(select_into(config, tmp_path), {})
    listener.close()
    events = [json.loads(line) for line in (tmp_path / "worker-0.jsonl").read_text().splitlines()]
    finished = next(e for e in events if e["event"] == "trial_finished")
    assert finished["metrics"] == {"accuracy": 0.9, "parameters": 9000.0, "duration_s": 1}
    selected = next(e for e in events if e["event"] == "selected")
    assert selected["metrics"]["best_accuracy"] == 0.9 and selected["metrics"]["best_parameters"] == 9000
    assert selected["tags"]["best_trial"] == 3


# -- the workflow --------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_sweep_of_two_objectives_retrains_the_chosen_trial_and_reports_the_front(tmp_path, run_env):
    """The curve trainer reports accuracy and a size (1000 per layer); Snakemake runs the whole workflow."""
    directory = make(tmp_path, study={"n_trials": 8, "directions": ["maximize", "minimize"]},
                     objective={"metrics": ["best_validation_accuracy", "parameters"]},
                     select={"rule": "best", "where": {"parameters": {"max": 2000}}}, retrain={"seeds": [1]})
    (directory / "config" / "model.jsonnet").write_text(JSONNET.replace("epochs: 3", "epochs: 3, size_per_layer: 1000"))

    result = snakemake(directory, env=run_env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    warnings = [line for line in output.splitlines() if "warning" in line.lower()]
    assert warnings == ["snakesweep: warning: config/optuna.json: pruner.type: MedianPruner is not used: Optuna "
                        "defines no pruning for several objectives, so every trial trains to its end (set "
                        "objective.intermediate: null, or the NopPruner, to silence this)"]

    results = directory / "results"
    best = json.loads((results / "best_params.json").read_text())
    front = {entry["trial"]: entry for entry in best["front"]}
    assert best["trial"] in front and best["values"] == front[best["trial"]]["values"]
    assert best["values"]["parameters"] <= 2000 and best["params"] == front[best["trial"]]["params"]
    assert all(entry["values"]["parameters"] == 1000 * entry["params"]["layers"] for entry in best["front"])
    assert best["counts"] == {"complete": 8, "pruned": 0, "failed": 0}  # nothing pruned: no pruner

    study = best["study"]
    stored = optuna.load_study(study_name=study, storage=f"sqlite:///{results}/optuna.db").get_trials()
    assert len(stored) == 8 and not any(t.intermediate_values for t in stored)  # nothing reported to a pruner
    retrained = json.loads((results / "final" / "seed-1" / "config.json").read_text())
    assert {key: retrained[key] for key in best["params"]} == best["params"]

    report = results / "report"
    assert (report / "pareto_front.png").stat().st_size > 10_000 and (report / "html" / "pareto_front.html").is_file()
    assert f"chosen for retraining: trial {best['trial']}" in (report / "html" / "pareto_front.html").read_text()
    summary = json.loads((report / "summary.json").read_text())
    assert summary["pareto"]["front"] == sorted(front) and summary["best"]["trial"] == best["trial"]

    status = subprocess.run([str(BIN / "snakesweep"), "status", "--configfile", "config/config.yaml"],
                            cwd=directory, env=run_env, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    assert (f"front    {len(front)} trials on the Pareto front of best_validation_accuracy, parameters "
            "(maximize, minimize)") in status.stdout
    assert f"chosen   trial {best['trial']} (best best_validation_accuracy within parameters <= 2000)" in status.stdout
    table = subprocess.run([str(BIN / "snakesweep"), "trials", "--configfile", "config/config.yaml", "--format", "csv"],
                           cwd=directory, env=run_env, capture_output=True, text=True)
    rows = table.stdout.splitlines()
    assert rows[0].startswith("number,state,value_best_validation_accuracy,value_parameters,pareto_front,")
    assert [int(row.split(",")[0]) for row in rows[1:len(front) + 1]] == sorted(
        front, key=lambda n: -front[n]["values"]["best_validation_accuracy"])  # the front first

    edit_config(directory, select={"rule": "knee", "where": {}})  # another rule: select again, and what follows
    assert planned_rules(directory, env=run_env) == {"select": 1, "retrain": 1, "evaluate": 1, "test_metrics": 1,
                                                    "report": 1, "all": 1}


@pytest.mark.parametrize("directions", [["maximize", "minimize"], ["minimize", "maximize", "minimize"]])
def test_the_front_of_many_trials_with_ties_is_the_definitions_and_optunas(directions):
    """The front is built against the front so far, not against every trial: the same trials as the
    definition (no trial dominates them; equal values both stay) and as Optuna's best_trials."""
    import random

    from snakesweep import pareto

    rng = random.Random(7)
    study = optuna.create_study(directions=directions)
    for _ in range(400):
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        first = rng.randint(0, 30)  # few distinct values: many ties and repeated points
        study.tell(trial, [first, first + rng.randint(0, 8), *[rng.randint(0, 5)] * (len(directions) - 2)])
    trials = study.get_trials(deepcopy=False)
    signs = [1 if direction == "minimize" else -1 for direction in directions]

    def dominates(a: list[float], b: list[float]) -> bool:  # at least as good in all, better in one
        pairs = [(s * x, s * y) for s, x, y in zip(signs, a, b)]
        return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)

    defined = [t.number for t in trials if not any(dominates(o.values, t.values) for o in trials)]
    front = [t.number for t in pareto.pareto_front(trials, directions)]
    assert front == defined and len(front) > 5
    assert set(front) == {t.number for t in study.best_trials}
