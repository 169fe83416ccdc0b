"""Rendering Jsonnet configs with real jsonnet: both styles, overrides and the errors users cause."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from snakesweep.errors import UserError
from snakesweep.render import UnusedParamWarning, apply_overrides, detect_style, parse_override, render

DATA = Path(__file__).parent / "data" / "jsonnet"
ALLENNLP_OPTUNA = DATA / "allennlp_optuna.jsonnet"
TLA = DATA / "tla.jsonnet"
OPTUNA_PARAMS = {"embedding_dim": 32, "dropout": 0.2, "lr": 0.001, "max_filter_size": 4, "num_filters": 16,
                 "activation": "relu"}


def write(tmp_path: Path, text: str, name: str = "config.jsonnet") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def user_error(match: str, *args, **kwargs) -> UserError:
    """Render, expect a one-line UserError matching ``match``, return it."""
    with pytest.raises(UserError, match=match) as info:
        render(*args, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


@pytest.fixture(autouse=True)
def no_stray_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnusedParamWarning)
        yield


# --- external variables, the allennlp-optuna way -------------------------------------------------


def test_allennlp_optuna_file_renders_unchanged():
    config = render(ALLENNLP_OPTUNA, OPTUNA_PARAMS)
    encoder = config["model"]["seq2vec_encoder"]
    assert encoder == {"type": "cnn", "embedding_dim": 32, "ngram_filter_sizes": [2, 3, 4], "num_filters": 16,
                       "conv_layer_activation": "relu"}
    assert config["model"]["dropout"] == 0.2
    assert config["trainer"]["optimizer"] == {"lr": 0.001, "type": "sgd"}


@pytest.mark.parametrize("value", [1e-05, 3.2e-07, 1e-300, 5e-324, 0.1, 1 / 3, 123.456, -2.5e-08, 1e300, 0.0, 7])
@pytest.mark.parametrize("style", ["extvar", "tla"])
def test_numbers_survive_exactly(tmp_path, value, style):
    text = "{ v: std.parseJson(std.extVar('v')) }" if style == "extvar" else "function(v) { v: v }"
    rendered = render(write(tmp_path, text), {"v": value})["v"]
    assert rendered == value
    assert type(rendered) is type(value) or float(rendered).is_integer()  # 1e300 and 0.0 print as integers


@pytest.mark.parametrize("value", [True, False, None, [1, "a"], {"k": 0.5}])
def test_bools_none_and_structures_through_parse_json(tmp_path, value):
    path = write(tmp_path, "{ v: std.parseJson(std.extVar('v')) }")
    assert render(path, {"v": value})["v"] == value


def test_strings_are_passed_raw(tmp_path):
    path = write(tmp_path, "{ plain: std.extVar('s'), quoted: std.extVar('q') }")
    assert render(path, {"s": "lstm", "q": '"x" y'}) == {"plain": "lstm", "quoted": '"x" y'}


def test_extvar_read_in_an_import_counts(tmp_path):
    config = render(DATA / "extvar_import.jsonnet", {"lr": 0.01, "encoder": "gru"})
    assert config == {"model": {"type": "basic_classifier", "encoder": "gru"}, "trainer": {"optimizer": {"lr": 0.01}}}


# --- top-level arguments ------------------------------------------------------------------------


def test_tla_keeps_types_and_uses_defaults_for_absent_params():
    config = render(TLA, {"lr": 0.05, "encoder": "gru", "extra": [1, 2]})
    assert config["trainer"]["optimizer"]["lr"] == 0.05
    assert config["model"]["dropout"] == 0.25  # default: a conditional param that was not sampled
    assert config["model"]["encoder"] == {"type": "gru", "bidirectional": True}
    assert config["model"]["extra"] == [1, 2]


def test_tla_bools_none_and_numeric_strings(tmp_path):
    path = write(tmp_path, "function(a=1, b=1, c=1) { a: a, b: b, c: c }")
    assert render(path, {"a": False, "b": None, "c": "10"}) == {"a": False, "b": None, "c": "10"}


def test_tla_required_argument_given():
    assert render(DATA / "tla_required.jsonnet", {"lr": 0.3}) == {"trainer": {"optimizer": {"lr": 0.3}},
                                                                   "model": {"dropout": 0.1}}


# --- style detection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "style"),
    [
        ("tla.jsonnet", "tla"),
        ("tla_required.jsonnet", "tla"),
        ("allennlp_optuna.jsonnet", "extvar"),
        ("object_with_function.jsonnet", "extvar"),
        ("extvar_import.jsonnet", "extvar"),
        ("top_level_extvar.jsonnet", "extvar"),
    ],
)
def test_detect_style(name, style):
    assert detect_style(DATA / name) == style


def test_detect_style_function_from_an_import(tmp_path):
    write(tmp_path, "function(lr=1) { lr: lr }", "lib.libsonnet")
    assert detect_style(write(tmp_path, "// reuse\nlocal f = import 'lib.libsonnet';\nf")) == "tla"


def test_detect_style_path_with_quote(tmp_path):
    folder = tmp_path / "it's here"
    folder.mkdir()
    assert detect_style(write(folder, "function(lr=1) { lr: lr }")) == "tla"


def test_top_level_extvar_renders_in_auto():
    assert render(DATA / "top_level_extvar.jsonnet", {"encoder": "cnn"}) == {"model": "cnn"}


def test_forced_extvar_on_a_function_uses_defaults_and_warns():
    with pytest.warns(UnusedParamWarning, match="lr"):
        config = render(TLA, {"lr": 0.5}, style="extvar")
    assert config["trainer"]["optimizer"]["lr"] == 0.001


def test_forced_tla_on_an_object_is_an_error():
    user_error("style is tla but the top level is not a function", ALLENNLP_OPTUNA, OPTUNA_PARAMS, style="tla")


def test_forced_styles_agree_with_auto():
    assert render(ALLENNLP_OPTUNA, OPTUNA_PARAMS, style="extvar") == render(ALLENNLP_OPTUNA, OPTUNA_PARAMS)
    assert render(TLA, {"lr": 0.1}, style="tla") == render(TLA, {"lr": 0.1})


def test_unknown_style():
    user_error("unknown style", TLA, {}, style="yaml")


# --- imports -------------------------------------------------------------------------------------


def test_imports_resolve_next_to_the_file_from_any_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert render(TLA, {})["dataset_reader"] == {"type": "text_classification_json"}
    monkeypatch.chdir(DATA.parent)
    assert render(Path("jsonnet/tla.jsonnet"), {})["model"]["layers"] == [{"size": 16}, {"size": 16}]


# --- overrides ---------------------------------------------------------------------------------


def test_render_applies_overrides():
    config = render(TLA, {}, overrides={"trainer.num_epochs": 20, "random_seed": 13, "model.layers.1.size": 4})
    assert config["trainer"]["num_epochs"] == 20
    assert config["random_seed"] == 13
    assert config["model"]["layers"] == [{"size": 16}, {"size": 4}]


def test_overrides_create_intermediate_dicts_and_do_not_mutate():
    config = {"trainer": {"num_epochs": 3, "optimizer": {"lr": 0.1, "type": "adam"}}, "layers": [{"size": 1}]}
    before = repr(config)
    result = apply_overrides(config, {"trainer.checkpointer.keep": 1, "trainer.optimizer.lr": 0.5,
                                      "layers.0.size": 9})
    assert repr(config) == before
    assert result == {"trainer": {"num_epochs": 3, "optimizer": {"lr": 0.5, "type": "adam"},
                                  "checkpointer": {"keep": 1}}, "layers": [{"size": 9}]}
    result["trainer"]["optimizer"]["lr"] = 7
    assert config["trainer"]["optimizer"]["lr"] == 0.1


def test_dict_overrides_merge_recursively():
    config = {"trainer": {"num_epochs": 3, "optimizer": {"lr": 0.1, "type": "adam"}}}
    result = apply_overrides(config, {"trainer": {"optimizer": {"lr": 0.2}, "patience": 2}})
    assert result == {"trainer": {"num_epochs": 3, "optimizer": {"lr": 0.2, "type": "adam"}, "patience": 2}}


def test_dict_override_onto_list_uses_indices_and_scalars_replace():
    config = {"layers": [{"size": 1}, {"size": 2}], "seed": 1, "tags": ["a"]}
    result = apply_overrides(config, {"layers": {"-1": {"size": 5}}, "seed.value": 3, "tags": ["b", "c"]})
    assert result == {"layers": [{"size": 1}, {"size": 5}], "seed": {"value": 3}, "tags": ["b", "c"]}


def test_later_overrides_win():
    assert apply_overrides({}, {"a.b": 1, "a": {"b": 2, "c": 3}}) == {"a": {"b": 2, "c": 3}}


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"layers.5.size": 1}, "out of range"),
        ({"layers.first": 1}, "'first' is not a list index"),
        ({"trainer..lr": 1}, "empty part"),
        ({"": 1}, "empty part"),
    ],
)
def test_bad_overrides(overrides, match):
    with pytest.raises(UserError, match=match) as info:
        apply_overrides({"layers": [{"size": 1}]}, overrides)
    assert "override" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trainer.num_epochs=20", ("trainer.num_epochs", 20)),
        ("trainer.optimizer.lr=1e-05", ("trainer.optimizer.lr", 1e-05)),
        ("trainer.cuda=true", ("trainer.cuda", True)),
        ("model.extra=null", ("model.extra", None)),
        ("model.encoder=lstm", ("model.encoder", "lstm")),
        ('model.encoder="20"', ("model.encoder", "20")),
        ("model.sizes=[1, 2]", ("model.sizes", [1, 2])),
        ('trainer={"patience": 2}', ("trainer", {"patience": 2})),
        ("url=a=b", ("url", "a=b")),
        ("empty=", ("empty", "")),
        ("x=NaN", ("x", "NaN")),
        (" key = 3", ("key", 3)),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["trainer.num_epochs", "=3", ""])
def test_parse_override_needs_key_and_equals(text):
    with pytest.raises(UserError, match="not KEY=VALUE"):
        parse_override(text)


# --- errors ------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    error = user_error("Jsonnet file not found", tmp_path / "nope.jsonnet", {})
    assert "nope.jsonnet" in str(error)
    with pytest.raises(UserError, match="not found"):
        detect_style(tmp_path / "nope.jsonnet")


def test_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "{\n  a: 1,\n  b: 1 + ,\n}\n")
    error = user_error("invalid Jsonnet", path, {})
    assert str(error).startswith(f"{path}:3: invalid Jsonnet: unexpected")


def test_syntax_error_in_an_import(tmp_path):
    write(tmp_path, "{\n  y: }\n", "broken.libsonnet")
    error = user_error("invalid Jsonnet", write(tmp_path, "local b = import 'broken.libsonnet';\n{ x: b }"), {})
    assert "broken.libsonnet:2:" in str(error)


def test_unknown_variable_is_a_static_error(tmp_path):
    path = write(tmp_path, "local a = 1;\n{ b: c }\n")
    assert str(user_error("Unknown variable: c", path, {})).startswith(f"{path}:2:")


def test_error_expression_names_file_and_line(tmp_path):
    path = write(tmp_path, "local f = 3;\n{\n  a: error 'boom',\n}\n")
    error = user_error("boom", path, {})
    assert str(error) == f"{path}:3: boom (fix the Jsonnet at that line)"


def test_type_error_in_an_imported_function(tmp_path):
    write(tmp_path, "{\n  f(x):: x - 1,\n}\n", "lib.libsonnet")
    path = write(tmp_path, "local lib = import 'lib.libsonnet';\n{ a: lib.f('s') }")
    error = user_error("binary operator - requires matching types", path, {})
    assert f"{tmp_path / 'lib.libsonnet'}:2: " in str(error)


def test_runtime_error_in_a_tla_file(tmp_path):
    path = write(tmp_path, "function(lr=1)\n  { a: lr - 'x' }")
    assert str(user_error("requires matching types", path, {"lr": 2})).startswith(f"{path}:2: ")


def test_missing_external_variable(tmp_path):
    path = write(tmp_path, "{\n  lr: std.parseJson(std.extVar('lr')),\n}\n")
    error = user_error("external variable lr is not set", path, {})
    assert str(error) == (f"{path}:2: lr: external variable lr is not set "
                          "(add lr to the search space or give it a fixed value in the config)")


def test_missing_tla_argument_without_default():
    error = user_error("top-level argument lr has no value", DATA / "tla_required.jsonnet", {"dropout": 0.3})
    assert ": lr: " in str(error) and "give the argument a default" in str(error)


def test_string_param_read_with_parse_json(tmp_path):
    path = write(tmp_path, "{ enc: std.parseJson(std.extVar('enc')) }")
    user_error("parse error.*std.extVar, without std.parseJson", path, {"enc": "lstm"})


@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "list"), ("'text'", "str"), ("3", "int"), ("null", "NoneType")])
def test_top_level_must_be_an_object(tmp_path, text, kind):
    user_error(f"renders to a JSON {kind}, not an object", write(tmp_path, text), {})


def test_unserialisable_param(tmp_path):
    user_error("cannot be passed to Jsonnet", write(tmp_path, "{ v: std.parseJson(std.extVar('v')) }"),
               {"v": float("nan")})
    user_error("cannot be passed to Jsonnet", write(tmp_path, "function(v) { v: v }"), {"v": object()})


# --- parameters the config never reads --------------------------------------------------------


def test_unused_extvar_warns_then_renders():
    with pytest.warns(UnusedParamWarning, match=r"never read by the config: hidden_size, nope") as record:
        config = render(ALLENNLP_OPTUNA, {**OPTUNA_PARAMS, "nope": 1, "hidden_size": 3})
    assert len(record) == 1 and str(ALLENNLP_OPTUNA) in str(record[0].message)
    assert config["model"]["dropout"] == 0.2


def test_unused_extvar_strict_is_an_error():
    error = user_error("never read by the config: nope", ALLENNLP_OPTUNA, {**OPTUNA_PARAMS, "nope": 1}, strict=True)
    assert "std.extVar('nope')" in str(error)


def test_commented_out_read_is_not_a_read(tmp_path):
    path = write(tmp_path, "// local lr = std.extVar('lr');\n/* std.extVar(\"lr\") */\n{ url: 'http://x#y' }")
    user_error("never read by the config: lr", path, {"lr": 0.1}, strict=True)


def test_read_in_double_quotes_and_verbatim_counts(tmp_path):
    path = write(tmp_path, "{ a: std.extVar(\"a\"), b: std.extVar( @'b' ) }")
    assert render(path, {"a": "x", "b": "y"}, strict=True) == {"a": "x", "b": "y"}


def test_computed_extvar_name_is_not_reported(tmp_path):
    path = write(tmp_path, "local names = ['a', 'b'];\n{ [n]: std.extVar(n) for n in names }")
    assert render(path, {"a": "1", "b": "2", "c": "3"}, strict=True) == {"a": "1", "b": "2"}


def test_unused_tla_param_dropped_with_warning():
    with pytest.warns(UnusedParamWarning, match=r"never read by the config: hidden, momentum") as record:
        config = render(TLA, {"momentum": 0.9, "lr": 0.2, "hidden": 3})
    assert len(record) == 1 and "make them top-level arguments" in str(record[0].message)
    assert config["trainer"]["optimizer"]["lr"] == 0.2


def test_unused_tla_param_strict_is_an_error():
    user_error("never read by the config: momentum", TLA, {"lr": 0.2, "momentum": 0.9}, strict=True)
