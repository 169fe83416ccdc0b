"""Search spaces: both formats, conditions, grids, fingerprints, start points and every user error."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest

from snakesweep.errors import UserError
from snakesweep.space import SearchSpace
from snakesweep.space_parsing import load_space, parse_space

DATA = Path(__file__).parent / "data" / "spaces"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _draws(space: SearchSpace, n: int, seed: int = 0) -> list[dict[str, Any]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    draws = []
    for _ in range(n):
        trial = study.ask()
        draws.append(space.suggest(trial))
        study.tell(trial, 0.0)
    return draws


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- formats ---------------------------------------------------------------------------------------


def test_both_formats_give_the_same_space_and_the_same_suggestions() -> None:
    allennlp = load_space(DATA / "hparams.json")
    compact = load_space(DATA / "space.yaml")
    assert allennlp.to_dict() == compact.to_dict()
    assert allennlp.fingerprint() == compact.fingerprint()
    assert _draws(allennlp, 50) == _draws(compact, 50)


def test_suggestions_lie_in_the_space() -> None:
    space = load_space(DATA / "space.yaml")
    for values in _draws(space, 100):
        assert values["encoder"] in ("cnn", "lstm", "gru")
        assert values["embedding_dim"] in (64, 128, 192, 256)
        assert 1e-4 <= values["lr"] <= 0.1
        assert any(math.isclose(values["dropout"], k / 10) for k in range(6))
        assert isinstance(values["hidden_size"], int)


def test_yaml_reads_exponents_without_a_dot_as_numbers() -> None:
    space = load_space(DATA / "space.yaml")
    lr = next(p for p in space.params if p.name == "lr")
    assert (lr.low, lr.high, lr.log) == (1e-4, 0.1, True)


def test_legacy_type_names_map_to_optuna_5() -> None:
    space = load_space(DATA / "legacy.json")
    assert space.to_dict() == {
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "weight_decay": {"type": "float", "low": 0.0, "high": 0.1, "step": 0.01},
        "num_filters": {"type": "int", "low": 8, "high": 64, "log": True},
        "num_layers": {"type": "int", "low": 1, "high": 5, "step": 2},
        "grad_norm": {"type": "float", "low": 1.0, "high": 5.0, "step": 0.5},
    }
    distributions = space.distributions()
    assert distributions["lr"] == optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True)
    assert distributions["weight_decay"] == optuna.distributions.FloatDistribution(0.0, 0.1, step=0.01)
    for values in _draws(space, 30):
        assert values["num_layers"] in (1, 3, 5)
        assert 1e-5 <= values["lr"] <= 1e-2


def test_constants_are_returned_but_never_sampled() -> None:
    space = parse_space({"lr": {"type": "float", "low": 0.1, "high": 0.2}, "num_epochs": 5, "tag": "x"}, "s")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    assert space.suggest(trial) == {"lr": trial.params["lr"], "num_epochs": 5, "tag": "x"}
    assert set(trial.params) == {"lr"}
    assert set(space.distributions()) == {"lr"}


def test_to_dict_reads_back_to_the_same_space() -> None:
    for name in ("hparams.json", "space.yaml", "grid.yaml", "legacy.json"):
        space = load_space(DATA / name)
        again = parse_space(json.loads(json.dumps(space.to_dict())), "again")
        assert again.to_dict() == space.to_dict()
        assert again.fingerprint() == space.fingerprint()


def test_yml_extension_reads_as_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, "space.yml", (DATA / "space.yaml").read_text())
    assert load_space(path).fingerprint() == load_space(DATA / "hparams.json").fingerprint()


def test_params_of_a_finished_trial_give_back_the_full_dict() -> None:
    space = parse_space({**CONDITIONAL, "num_epochs": 5}, "s")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(30):
        trial = study.ask()
        values = space.suggest(trial)
        assert space.suggest(optuna.trial.FixedTrial(dict(trial.params))) == values
        study.tell(trial, 0.0)


# --- conditions ------------------------------------------------------------------------------------

CONDITIONAL = {
    "encoder": {"type": "categorical", "choices": ["cnn", "lstm", "gru"]},
    "hidden_size": {"type": "int", "low": 32, "high": 256, "when": {"encoder": ["lstm", "gru"]}},
    "bidirectional": {"type": "categorical", "choices": [True, False], "when": {"encoder": "lstm"}, "default": False},
    "kernel": {"type": "int", "low": 2, "high": 5, "when": {"encoder": "cnn"}, "default": 3},
    "cell_dropout": {"type": "float", "low": 0.0, "high": 0.5, "when": {"bidirectional": True}},
}


def test_conditional_parameters_are_sampled_only_when_their_condition_holds() -> None:
    space = parse_space(CONDITIONAL, "conditional")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(200):
        trial = study.ask()
        values = space.suggest(trial)
        study.tell(trial, 0.0)
        encoder = values["encoder"]
        seen.add((encoder, values["bidirectional"]))
        assert ("hidden_size" in values) == (encoder in ("lstm", "gru"))
        assert ("hidden_size" in trial.params) == (encoder in ("lstm", "gru"))
        if encoder != "lstm":
            assert values["bidirectional"] is False and "bidirectional" not in trial.params
        if encoder != "cnn":
            assert values["kernel"] == 3 and "kernel" not in trial.params
        else:
            assert "kernel" in trial.params
        assert ("cell_dropout" in values) == (values["bidirectional"] is True)
    assert seen == {("cnn", False), ("gru", False), ("lstm", True), ("lstm", False)}


def test_conditions_in_the_allennlp_format() -> None:
    space = parse_space(
        [
            {"type": "categorical", "attributes": {"name": "encoder", "choices": ["cnn", "lstm"]}},
            {"type": "int", "attributes": {"name": "hidden_size", "low": 32, "high": 256},
             "when": {"encoder": "lstm"}, "default": 0},
        ],
        "hparams.json",
    )
    for values in _draws(space, 40):
        assert (values["hidden_size"] == 0) == (values["encoder"] == "cnn")


# --- grids -----------------------------------------------------------------------------------------


def test_grid_sampler_runs_every_point_once() -> None:
    space = load_space(DATA / "grid.yaml")
    assert space.is_grid
    assert space.grid() == {"dropout": [0.0, 0.2, 0.5], "encoder": ["cnn", "lstm"]}
    assert space.grid_size == 6
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space.grid(), seed=0))
    points = []

    def objective(trial: optuna.Trial) -> float:
        values = space.suggest(trial)
        assert values["num_epochs"] == 5
        points.append((values["dropout"], values["encoder"]))
        return values["dropout"]

    study.optimize(objective, n_trials=20)
    assert len(study.trials) == 6
    assert len(set(points)) == 6


def test_constants_only_space_is_a_grid_of_one_point() -> None:
    space = parse_space({"num_epochs": 5}, "s")
    assert space.is_grid and space.grid() == {} and space.grid_size == 1


def test_sampled_spaces_are_not_grids() -> None:
    space = load_space(DATA / "space.yaml")
    assert not space.is_grid and space.grid_size is None
    finite = parse_space({"a": {"type": "int", "low": 1, "high": 7, "step": 3}, "b": {"type": "categorical",
                          "choices": ["x", "y"]}, "c": {"type": "float", "low": 0, "high": 0.3, "step": 0.1}}, "s")
    assert not finite.is_grid
    assert finite.grid() == {"a": [1, 4, 7], "b": ["x", "y"], "c": [0.0, 0.1, 0.2, 0.3]}
    with pytest.raises(UserError, match=r"space.yaml: lr: GridSampler cannot enumerate"):
        space.grid()


# --- fingerprints ----------------------------------------------------------------------------------

BASE = {
    "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
    "encoder": {"type": "categorical", "choices": ["cnn", "lstm"]},
    "hidden": {"type": "int", "low": 32, "high": 64, "when": {"encoder": ["lstm"]}, "default": 0},
    "dropout": [0.0, 0.5],
    "epochs": 5,
}


def _changed(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def test_fingerprint_is_short_hex_and_stable() -> None:
    fingerprint = parse_space(BASE, "a").fingerprint()
    assert len(fingerprint) == 12 and int(fingerprint, 16) >= 0
    assert parse_space(json.loads(json.dumps(BASE)), "elsewhere/b.yaml").fingerprint() == fingerprint


@pytest.mark.parametrize(
    "same",
    [
        {key: BASE[key] for key in ("epochs", "dropout", "encoder", "hidden", "lr")},  # other parameter order
        _changed(lr={"log": True, "high": 0.1, "low": 0.0001, "type": "float"}),  # other key order
        _changed(lr={"type": "loguniform", "low": 1e-4, "high": 0.1}),  # legacy name
        _changed(hidden={"type": "int", "low": 32, "high": 64, "step": 1, "log": False, "when": {"encoder": "lstm"},
                         "default": 0}),  # defaults written out, single condition value
    ],
    ids=["param-order", "key-order", "legacy-name", "explicit-defaults"],
)
def test_fingerprint_ignores_form(same: dict[str, Any]) -> None:
    assert parse_space(same, "b").fingerprint() == parse_space(BASE, "a").fingerprint()


@pytest.mark.parametrize(
    "different",
    [
        _changed(lr={"type": "float", "low": 1e-5, "high": 0.1, "log": True}),
        _changed(lr={"type": "float", "low": 1e-4, "high": 0.1}),
        _changed(encoder={"type": "categorical", "choices": ["lstm", "cnn"]}),
        _changed(encoder={"type": "categorical", "choices": ["cnn", "lstm", "gru"]}),
        _changed(hidden={"type": "int", "low": 32, "high": 64, "when": {"encoder": "cnn"}, "default": 0}),
        _changed(hidden={"type": "int", "low": 32, "high": 64, "when": {"encoder": "lstm"}}),
        _changed(hidden={"type": "int", "low": 32, "high": 64, "step": 8, "when": {"encoder": "lstm"}, "default": 0}),
        _changed(dropout={"type": "categorical", "choices": [0.0, 0.5]}),
        _changed(dropout=[0.0, 0.5, 0.7]),
        _changed(epochs=6),
        _changed(extra=1),
    ],
    ids=["low", "log", "choice-order", "choices", "condition", "default", "step", "grid-vs-categorical",
         "grid-values", "constant", "new-param"],
)
def test_fingerprint_changes_with_the_space(different: dict[str, Any]) -> None:
    assert parse_space(different, "b").fingerprint() != parse_space(BASE, "a").fingerprint()


# --- start points ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "point",
    [
        {"encoder": "lstm", "hidden_size": 64, "bidirectional": True, "cell_dropout": 0.1},
        {"encoder": "cnn", "kernel": 4},
        {"encoder": "cnn"},  # hidden_size inactive: not required
        {"encoder": "lstm"},  # hidden_size active but missing: left to the sampler
        {"hidden_size": 64},  # encoder left to the sampler, so hidden_size may be active
        {},
    ],
)
def test_good_start_points(point: dict[str, Any]) -> None:
    parse_space(CONDITIONAL, "space.yaml").check_point(point, "config.yaml: study.enqueue[0]")


@pytest.mark.parametrize(
    "point, field, problem",
    [
        ({"encoder": "rnn"}, "encoder", "'rnn' is not one of"),
        ({"hidden": 64}, "hidden", "unknown parameter"),
        ({"encoder": "lstm", "hidden_size": 300}, "hidden_size", "outside [32, 256]"),
        ({"encoder": "lstm", "hidden_size": 64.0}, "hidden_size", "expected an integer"),
        ({"encoder": "lstm", "hidden_size": True}, "hidden_size", "expected an integer"),
        ({"encoder": "lstm", "bidirectional": True, "cell_dropout": "0.1"}, "cell_dropout", "expected a number"),
        ({"encoder": "lstm", "bidirectional": 1}, "bidirectional", "not one of"),
        ({"encoder": "cnn", "hidden_size": 64}, "hidden_size", "inactive"),
        ({"encoder": "gru", "bidirectional": False, "cell_dropout": 0.1}, "bidirectional", "inactive"),
        ({"encoder": "lstm", "bidirectional": False, "cell_dropout": 0.1}, "cell_dropout", "inactive"),
    ],
)
def test_bad_start_points(point: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_space(CONDITIONAL, "space.yaml").check_point(point, "config.yaml: study.enqueue[0]")
    assert caught.value.file == "config.yaml: study.enqueue[0]"
    assert caught.value.field == field
    assert problem in str(caught.value)


def test_start_point_steps_and_constants() -> None:
    space = parse_space({"lr": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1}, "epochs": 5}, "s")
    space.check_point({"lr": 0.3, "epochs": 5}, "p")
    with pytest.raises(UserError, match="multiple of the step"):
        space.check_point({"lr": 0.25}, "p")
    with pytest.raises(UserError, match="differs from the constant 5"):
        space.check_point({"epochs": 6}, "p")
    with pytest.raises(UserError, match="must map parameter names to values"):
        space.check_point([0.3], "p")  # type: ignore[arg-type]


def test_checked_start_points_are_enqueued_and_used() -> None:
    space = parse_space(CONDITIONAL, "s")
    point = {"encoder": "lstm", "hidden_size": 64, "bidirectional": True, "cell_dropout": 0.25}
    space.check_point(point, "p")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(point)
    assert space.suggest(study.ask()) == {**point, "kernel": 3}


# --- user errors -----------------------------------------------------------------------------------

BAD_SPACES = [
    # (file name, text, field, words in the message)
    ("unknown-type.yaml", "lr: {type: floot, low: 0, high: 1}", "lr.type", "unknown type 'floot'"),
    ("low-high.yaml", "lr: {type: float, low: 1, high: 0.1}", "lr.low", "greater than high"),
    ("log-zero.yaml", "lr: {type: float, low: 0, high: 1, log: true}", "lr.low", "log scale needs low > 0"),
    ("loguniform-neg.json", '[{"type": "loguniform", "attributes": {"name": "lr", "low": -1, "high": 1}}]',
     "lr.low", "log scale"),
    ("int-step.yaml", "units: {type: int, low: 32, high: 100, step: 32}", "units.step", "does not divide"),
    ("float-step.yaml", "p: {type: float, low: 0, high: 0.5, step: 0.3}", "p.step", "does not divide"),
    ("q-step.json", '[{"type": "discrete_uniform", "attributes": {"name": "p", "low": 0, "high": 1, "q": 0.3}}]',
     "p.q", "does not divide"),
    ("zero-step.yaml", "p: {type: float, low: 0, high: 1, step: 0}", "p.step", "must be positive"),
    ("log-step.yaml", "lr: {type: float, low: 0.1, high: 1, log: true, step: 0.1}", "lr.step", "cannot be combined"),
    ("int-log-step.yaml", "n: {type: int, low: 2, high: 64, log: true, step: 2}", "n.step", "cannot be combined"),
    ("empty-choices.yaml", "enc: {type: categorical, choices: []}", "enc.choices", "non-empty list"),
    ("dup-choices.yaml", "enc: {type: categorical, choices: [cnn, lstm, cnn]}", "enc.choices", "duplicate choice"),
    ("empty-grid.yaml", "dropout: []", "dropout", "non-empty list"),
    ("nested-grid.yaml", "sizes: [[1, 2], [3]]", "sizes", "single values"),
    ("dup-grid.yaml", "dropout: [0.1, 0.1]", "dropout", "duplicate choice"),
    ("dup-names.json", '[{"type": "int", "attributes": {"name": "n", "low": 1, "high": 2}},'
                       ' {"type": "float", "attributes": {"name": "n", "low": 1, "high": 2}}]', "n", "duplicate"),
    ("dup-keys.yaml", "n: {type: int, low: 1, high: 2}\nn: [1, 2]", "n", "duplicate key at line 2"),
    ("dup-keys.json", '{"n": [1, 2], "n": 3}', "n", "duplicate key"),
    ("unknown-ref.yaml", "h: {type: int, low: 1, high: 2, when: {encoder: lstm}}", "h.when.encoder",
     "not declared before h"),
    ("later-ref.yaml", "h: {type: int, low: 1, high: 2, when: {enc: lstm}}\nenc: [lstm, cnn]", "h.when.enc",
     "not declared before h"),
    ("bad-ref-value.yaml", "enc: [lstm, cnn]\nh: {type: int, low: 1, high: 2, when: {enc: gru}}", "h.when.enc",
     "enc can never be 'gru'"),
    ("bad-when.yaml", "enc: [lstm, cnn]\nh: {type: int, low: 1, high: 2, when: lstm}", "h.when", "when must map"),
    ("default-alone.yaml", "h: {type: int, low: 1, high: 2, default: 0}", "h.default",
     "default must be a value h can take: 0 is outside [1, 2]"),
    ("unknown-attribute.json", '[{"type": "float", "attributes": {"name": "lr", "low": 0, "high": 1, "lg": true}}]',
     "lr.lg", "allowed here: name, low, high, step, log"),
    ("unknown-entry-key.json", '[{"type": "float", "attributes": {"name": "lr", "low": 0, "high": 1}, "if": {}}]',
     "lr.if", "allowed here: type, attributes, when, default"),
    ("unknown-compact-key.yaml", "lr: {type: float, low: 0, high: 1, choices: [1]}", "lr.choices",
     "allowed here: type, when, default, low, high, step, log"),
    ("legacy-key.json", '[{"type": "uniform", "attributes": {"name": "p", "low": 0, "high": 1, "step": 0.1}}]',
     "p.step", "allowed here: name, low, high"),
    ("missing-name.json", '[{"type": "float", "attributes": {"low": 0, "high": 1}}]', "entry 1.attributes.name",
     "missing parameter name"),
    ("missing-type.json", '[{"attributes": {"name": "lr", "low": 0, "high": 1}}]', "lr", "missing type"),
    ("missing-attributes.json", '[{"type": "float", "name": "lr"}]', "entry 1.name", "unknown key name"),
    ("missing-low.yaml", "lr: {type: float, high: 1}", "lr", "missing low"),
    ("missing-high.json", '[{"type": "int", "attributes": {"name": "n", "low": 1}}]', "n", "missing high"),
    ("missing-q.json", '[{"type": "discrete_uniform", "attributes": {"name": "p", "low": 0, "high": 1}}]', "p",
     "missing q"),
    ("missing-choices.yaml", "enc: {type: categorical}", "enc", "missing choices"),
    ("text-bound.yaml", "lr: {type: float, low: small, high: 1}", "lr.low", "expected a number, got 'small'"),
    ("bool-bound.yaml", "n: {type: int, low: 1, high: true}", "n.high", "expected an integer, got True"),
    ("bool-step.json", '{"p": {"type": "float", "low": 0, "high": 1, "step": true}}', "p.step", "expected a number"),
    ("float-int.yaml", "n: {type: int, low: 1, high: 32.5}", "n.high", "expected an integer, got 32.5"),
    ("infinite.json", '{"p": {"type": "float", "low": 0, "high": Infinity}}', "p.high", "finite"),
    ("text-log.yaml", "lr: {type: float, low: 0.1, high: 1, log: 'yes'}", "lr.log", "true or false"),
    ("no-type.yaml", "encoder: {choices: [cnn, lstm]}", "encoder", "needs a type"),
    ("number-name.yaml", "1: [1, 2]", "1", "names must be text"),
    ("entry-not-mapping.json", '["lr"]', "entry 1", "expected a mapping"),
]


@pytest.mark.parametrize("name, text, field, words", BAD_SPACES, ids=[case[0] for case in BAD_SPACES])
def test_bad_space_is_one_clear_user_error(tmp_path: Path, name: str, text: str, field: str, words: str) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(UserError) as caught:
        load_space(path)
    message = str(caught.value)
    assert caught.value.file == str(path) and caught.value.field == field
    assert message.startswith(f"{path}: {field}: ")
    assert words in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("syntax.yaml", "lr: {type: float,\n  low: [0, 1\n", "not valid YAML"),
        ("syntax.yaml", "a: 1\nb: [1, 2\nc: 3\n", "line 3"),
        ("syntax.json", '[{"type": "int",\n "attributes": {"name": "n" "low": 1}}]', "not valid JSON: Expecting ',' "
                                                                                   "delimiter at line 2"),
        ("scalar.yaml", "5", "expected a list (allennlp-optuna format) or a mapping"),
        ("text.json", '"lr"', "got text"),
        ("empty.yaml", "", "got nothing"),
        ("empty-list.json", "[]", "declares no parameters"),
        ("one-entry.json", '{"type": "int", "attributes": {"name": "n", "low": 1, "high": 2}}', "wrap the entries"),
        ("space.toml", "lr = 1", "unsupported file type .toml"),
    ],
)
def test_bad_file_is_one_clear_user_error(tmp_path: Path, name: str, text: str, words: str) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(UserError) as caught:
        load_space(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert words in str(caught.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nowhere\.yaml: file not found"):
        load_space(tmp_path / "nowhere.yaml")


def test_parse_space_names_its_source() -> None:
    with pytest.raises(UserError, match=r"^config.yaml: search_space: lr.low: low 2.0 is greater than"):
        parse_space({"lr": {"type": "float", "low": 2, "high": 1}}, "config.yaml: search_space")
