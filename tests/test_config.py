from pathlib import Path

import pytest

from snakesweep.config import load_config, validate_config
from snakesweep.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_filled_at_every_depth():
    config = validate_config({"study": {"name": "x"}})
    assert config["study"]["name"] == "x"
    assert config["study"]["direction"] == "maximize"
    assert config["workers"]["count"] == 2
    assert config["retrain"]["seeds"] == [1, 2, 3]
    assert config["objective"]["reduce"] == "final"


def test_the_default_config_is_valid():
    config = load_config(ROOT / "config" / "config.yaml")
    assert config["launcher"]["type"] == "allennlp"


def test_workflow_schema_is_the_library_schema():
    linked = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    shipped = ROOT / "src" / "snakesweep" / "schemas" / "config.schema.yaml"
    assert linked.resolve() == shipped.resolve()


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"study": {"nme": "x"}}, "study", "allowed keys"),
        ({"workers": {"count": 0}}, "workers.count", "minimum"),
        ({"study": {"direction": "up"}}, "study.direction", "maximize"),
        ({"launcher": {"type": "bash"}}, "launcher.type", "allennlp"),
        ({"retrain": {"seeds": []}}, "retrain.seeds", "should be non-empty"),
        ({"study": {"name": "has space"}}, "study.name", "does not match"),
        ({"objective": {"reduce": "median"}}, "objective.reduce", "mean_last"),
    ],
)
def test_a_bad_config_is_one_line_naming_file_and_field(data, field, words):
    with pytest.raises(UserError) as raised:
        validate_config(data, "my.yaml")
    text = str(raised.value)
    assert text.startswith(f"my.yaml: {field}: ")
    assert words in text
    assert "\n" not in text


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("study:\n  name: [x\n")
    with pytest.raises(UserError, match=r"broken.yaml:\d+: not valid YAML"):
        load_config(broken)
