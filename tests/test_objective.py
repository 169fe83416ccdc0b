import math

import pytest

from snakesweep.errors import UserError
from snakesweep.objective import MetricMissing, objective_value
from snakesweep.trialfiles import write_epoch_metrics, write_final_metrics


@pytest.fixture
def run(tmp_path):
    for epoch, value in enumerate([0.5, 0.8, 0.7, 0.6]):
        write_epoch_metrics(tmp_path, epoch, {"validation_accuracy": value, "validation_loss": 1 - value})
    write_final_metrics(tmp_path, {"best_validation_accuracy": 0.8, "best_epoch": 1})
    return tmp_path


def objective(metric, reduce="final", last_k=3):
    return {"metric": metric, "reduce": reduce, "last_k": last_k}


def test_a_key_of_metrics_json(run):
    assert objective_value(run, objective("best_validation_accuracy"), "maximize") == 0.8


@pytest.mark.parametrize(
    ("reduce", "direction", "expected"),
    [("last", "maximize", 0.6), ("best", "maximize", 0.8), ("mean_last", "maximize", (0.8 + 0.7 + 0.6) / 3)],
)
def test_reductions_over_the_epoch_files(run, reduce, direction, expected):
    assert objective_value(run, objective("validation_accuracy", reduce), direction) == pytest.approx(expected)


def test_best_follows_the_direction(run):
    assert objective_value(run, objective("validation_loss", "best"), "minimize") == pytest.approx(0.2)


def test_mean_of_fewer_epochs_than_k(tmp_path):
    write_epoch_metrics(tmp_path, 0, {"a": 1.0})
    assert objective_value(tmp_path, objective("a", "mean_last", 5), "maximize") == 1.0


def test_a_missing_key_names_the_keys_there_are(run):
    with pytest.raises(MetricMissing) as raised:
        objective_value(run, objective("accuracy"), "maximize")
    assert isinstance(raised.value, UserError)
    assert "best_epoch, best_validation_accuracy" in str(raised.value) and "metrics.json" in str(raised.value)


@pytest.mark.parametrize("bad", [math.nan, "0.5", None, True])
def test_nan_or_non_numbers_fail_the_trial(tmp_path, bad):
    write_final_metrics(tmp_path, {"m": bad})
    with pytest.raises(ValueError):
        objective_value(tmp_path, objective("m"), "maximize")


def test_no_files_fail_the_trial(tmp_path):
    with pytest.raises(ValueError, match="metrics.json was not written"):
        objective_value(tmp_path, objective("m"), "maximize")
    with pytest.raises(ValueError, match="no metrics_epoch_N.json"):
        objective_value(tmp_path, objective("m", "last"), "maximize")
