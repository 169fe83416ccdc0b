"""The report: the expected-max estimator, and plots and summary made from a real small study."""

from __future__ import annotations

import base64
import itertools
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from snakesweep.config import load_config
from snakesweep.report import PLOTS, expected_max, output_names, write_report
from snakesweep.report.plots import figures
from snakesweep.report.sweep import load_sweep
from snakesweep.study import create_study, load_study
from snakesweep.trials import is_surplus
from tests.conftest import ROOT, write_project

CURVE = ("local lr = std.parseJson(std.extVar('lr')); local layers = std.parseJson(std.extVar('layers'));"
         " {lr: lr, layers: layers, epochs: %d, sleep_s: %s, storage: '%s'}")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- expected max (Dodge et al. 2019) ------------------------------------------------------------
def brute_force(scores, n):
    """Mean and std of the max over every one of the N^n equally likely draws with replacement."""
    maxima = [max(draw) for draw in itertools.product(scores, repeat=n)]
    return statistics.fmean(maxima), statistics.pstdev(maxima)


@pytest.mark.parametrize("scores", [[0.3, 0.9, 0.5, 0.7], [0.5, 0.5, 0.1, 0.9, 0.9], [2.0]])
def test_expected_max_is_the_mean_and_spread_of_the_best_of_n_draws(scores):
    curve = expected_max(scores)
    assert curve.n == list(range(1, len(scores) + 1))
    for n, mean, std in zip(curve.n, curve.mean, curve.std):
        want_mean, want_std = brute_force(scores, n)
        assert mean == pytest.approx(want_mean) and std == pytest.approx(want_std, abs=1e-12)


def test_expected_max_closed_form_and_limits():
    scores = [1.0, 2.0, 3.0, 4.0]
    curve = expected_max(scores, n_max=200)
    assert curve.mean[0] == pytest.approx(2.5) and curve.std[0] == pytest.approx(math.sqrt(1.25))
    # n = 2: P(max = v_i) = (i^2 - (i-1)^2) / 16 = 1, 3, 5, 7 sixteenths
    assert curve.mean[1] == pytest.approx((1 * 1 + 2 * 3 + 3 * 5 + 4 * 7) / 16)
    assert all(a <= b for a, b in zip(curve.mean, curve.mean[1:])), "more trials never expect less"
    assert curve.mean[-1] == pytest.approx(4.0, abs=1e-6) and curve.std[-1] < 1e-3
    lower, upper = curve.band(scores)
    assert min(lower) >= 1.0 and max(upper) <= 4.0


def test_expected_min_mirrors_expected_max_and_bad_values_are_left_out():
    scores = [0.3, 0.9, 0.5, 0.7]
    low = expected_max(scores + [math.nan], minimize=True)
    high = expected_max([-s for s in scores])
    assert low.n == [1, 2, 3, 4] and low.minimize
    assert low.mean == pytest.approx([-m for m in high.mean]) and low.std == pytest.approx(high.std)
    assert expected_max([0.4] * 3).std == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        expected_max([math.nan])


# -- a real small study --------------------------------------------------------------------------
def make_study(directory: Path, n_trials: int, *, epochs: int = 4, run: bool = True) -> Path:
    """A project whose study was filled by a real worker process (the curve, seconds).

    The lockstep trainer never trains past the pruner's verdict: what a pruned trial ran does not
    depend on how busy the machine is.
    """
    url = f"sqlite:///{directory}/results/optuna.db"
    (directory / "results").mkdir()
    path = write_project(directory, config={
        "study": {"n_trials": n_trials, "heartbeat_s": 10, "storage": url},
        "launcher": {"type": "python", "function": "tests.trainers.lockstep:train"},
        "workers": {"poll_s": 0.05},
    }, jsonnet=CURVE % (epochs, 0, url))
    create_study(load_config(path))
    if run:
        env = {"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent)}
        result = subprocess.run([sys.executable, "-m", "snakesweep.cli", "worker", "--configfile", str(path)],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
    return path


@pytest.fixture(scope="module")
def study_config(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("study"), 8)


def real_trials(config_path):
    return [t for t in load_study(load_config(config_path)).get_trials() if not is_surplus(t)]


def plotly_data(page: Path) -> list[dict]:
    """The traces of the figure a plotly HTML page draws."""
    text = page.read_text()
    start = text.index("Plotly.newPlot(")
    start = text.index("[", text.index(",", start))
    data, _ = json.JSONDecoder().raw_decode(text[start:])
    return data


def values(array) -> list:
    """A trace's x or y: a list, or plotly's base64-encoded typed array."""
    if isinstance(array, dict):
        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array or [])


def trial_traces(data: list[dict]) -> list[dict]:
    return [trace for trace in data if str(trace.get("name", "")).startswith("trial ")]


def test_the_study_has_complete_and_pruned_trials(study_config):
    states = [t.state for t in real_trials(study_config)]
    assert len(states) == 8 and TrialState.PRUNED in states and TrialState.COMPLETE in states


def test_every_figure_shows_every_trial(study_config):
    trials = real_trials(study_config)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    made = figures(load_sweep(load_config(study_config)))
    assert list(made) == list(PLOTS)

    curves, curves_png = made["learning_curves"]
    traces = [t for t in curves.data if t.name.startswith("trial ")]
    assert sorted(int(t.name.split()[1]) for t in traces) == sorted(t.number for t in trials)
    for trace, trial in ((t, next(x for x in trials if x.number == int(t.name.split()[1]))) for t in traces):
        if trial.state == TrialState.PRUNED:  # the curve ends where the pruner stopped the trainer
            assert list(trace.x) == list(range(trial.user_attrs["pruned_at_epoch"] + 1))
        else:
            assert list(trace.x) == [0, 1, 2, 3]
    (marks,) = [t for t in curves.data if t.name == "pruned here"]
    assert len(marks.x) == len(pruned)
    axes = curves_png.axes[0]
    assert len([line for line in axes.get_lines() if len(line.get_xdata())]) == len(trials) + 1  # + the marks

    history, _ = made["optimization_history"]
    objective = [t for t in history.data if t.name == "best_validation_accuracy"]
    assert len(objective[0].x) == len(complete)
    parallel, _ = made["parallel_coordinates"]
    assert len([t for t in parallel.data if t.mode == "lines"]) == len(complete)
    slices, _ = made["slices"]
    assert all(len(t.x) == len(complete) for t in slices.data if t.name == "Feasible Trial")
    importances, _ = made["param_importances"]
    assert set(importances.data[0].y) == {"lr", "layers"}
    expected, _ = made["expected_max"]
    (mean,) = [t for t in expected.data if t.name.startswith("expected highest")]
    assert list(mean.x) == list(range(1, len(complete) + 1))
    assert mean.y[-1] <= max(t.value for t in complete)


def test_write_report_gives_valid_pngs_html_pages_and_a_summary(study_config, tmp_path):
    from PIL import Image

    trials = real_trials(study_config)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    out = tmp_path / "report"
    summary = write_report(load_config(study_config), out)
    assert sorted(p.name for p in out.iterdir()) == sorted(output_names())
    assert not list(tmp_path.glob(".report.*")), "the staging directory is gone"
    for name in PLOTS:
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.format == "PNG"
            assert image.size == (1000, 600) or (name == "slices" and image.size[1] == 600 and image.size[0] >= 1000)
        page = out / "html" / f"{name}.html"
        text = page.read_text()
        assert '<script charset="utf-8" src="plotly.min.js"></script>' in text and "Plotly.newPlot(" in text
        assert len(text) < 200_000, "plotly.js is shared, not embedded in each page"
    assert (out / "html" / "plotly.min.js").stat().st_size > 1_000_000
    index = (out / "html" / "index.html").read_text()
    assert all(f'href="{name}.html"' in index for name in PLOTS)

    curves = plotly_data(out / "html" / "learning_curves.html")
    assert len(trial_traces(curves)) == len(trials)
    history = plotly_data(out / "html" / "optimization_history.html")
    (objective,) = [t for t in history if t.get("name") == "best_validation_accuracy"]
    assert len(values(objective["x"])) == len(complete)

    best = max(complete, key=lambda t: t.value)
    assert summary["best"]["trial"] == best.number and summary["best"]["value"] == best.value
    assert summary["counts"]["complete"] == len(complete)
    assert summary["counts"]["complete"] + summary["counts"]["pruned"] == 8
    compute = summary["compute"]
    ran = sum(t.user_attrs["epochs"] for t in trials)
    assert compute["epochs_run"] == ran and compute["epochs_per_full_trial"] == 4
    assert compute["epochs_without_pruning"] == 4 * 8 and compute["epochs_saved"] == 32 - ran > 0
    assert json.loads((out / "summary.json").read_text())["best"]["trial"] == best.number
    rst = (out / "summary.rst").read_text()
    assert "Saved by pruning" in rst and f"{32 - ran} epochs" in rst
    html = (out / "summary.html").read_text()
    assert "<table" in html and "Saved by pruning" in html and 'class="system-message"' not in html


def test_the_summary_is_valid_restructured_text(study_config, tmp_path):
    from docutils.core import publish_string

    write_report(load_config(study_config), tmp_path / "report")
    rst = (tmp_path / "report" / "summary.rst").read_text()
    publish_string(rst, writer="html5", settings_overrides={"halt_level": 2, "report_level": 2})


def test_test_scores_against_the_best_validation_score(study_config, tmp_path):
    config = load_config(study_config)
    test = tmp_path / "test_metrics.json"
    test.write_text(json.dumps({
        "seeds": {"1": {"accuracy": 0.61, "loss": 1.0}, "2": {"accuracy": 0.63, "loss": 0.9},
                  "3": {"accuracy": 0.62, "loss": 0.8}},
        "mean": {"accuracy": 0.62, "loss": 0.9}, "std": {"accuracy": 0.01, "loss": 0.1},
    }))
    retrained = {}
    for seed in (1, 2, 3):
        (tmp_path / f"seed-{seed}").mkdir()
        retrained[seed] = tmp_path / f"seed-{seed}" / "metrics.json"
        retrained[seed].write_text(json.dumps({"best_validation_accuracy": 0.6 + seed / 100}))
    summary = write_report(config, tmp_path / "report", test_metrics=test, retrained=retrained)
    assert summary["test"]["metric"] == "accuracy" and summary["test"]["mean"]["accuracy"] == 0.62
    data = plotly_data(tmp_path / "report" / "html" / "test_scores.html")
    (points,) = [t for t in data if t.get("name") == "test accuracy"]
    assert values(points["y"]) == [0.61, 0.63, 0.62]
    (validation,) = [t for t in data if "of the retrained run" in t.get("name", "")]
    assert values(validation["y"]) == pytest.approx([0.61, 0.62, 0.63])
    (line,) = [t for t in data if "the sweep's best trial" in t.get("name", "")]
    assert values(line["y"])[0] == summary["best"]["value"]
    assert "0.62 ± 0.01" in (tmp_path / "report" / "summary.rst").read_text()


def test_one_retrain_seed_is_one_seed_without_a_spread(study_config, tmp_path):
    test = tmp_path / "test_metrics.json"
    test.write_text(json.dumps({"seeds": {"1": {"accuracy": 0.61, "loss": 1.0}},
                                "mean": {"accuracy": 0.61, "loss": 1.0}, "std": {"accuracy": 0.0, "loss": 0.0}}))
    write_report(load_config(study_config), tmp_path / "report", test_metrics=test)
    rst = (tmp_path / "report" / "summary.rst").read_text()
    assert "Test accuracy over 1 retrain seed\n     - 0.61\n" in rst
    assert "retrain seeds" not in rst and "±" not in rst.split("Expected best")[0] and "std" not in rst
    names = [t.get("name", "") for t in plotly_data(tmp_path / "report" / "html" / "test_scores.html")]
    assert "test accuracy: 0.61" in names and not any("±" in name for name in names)


def test_a_study_without_trials_still_gets_every_file(tmp_path):
    config_path = make_study(tmp_path, 3, run=False)
    out = tmp_path / "results" / "report"
    summary = write_report(load_config(config_path), out)
    assert summary["best"] is None and summary["counts"]["complete"] == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(output_names())
    assert "needs" in (out / "html" / "param_importances.html").read_text()
    assert "no trial completed" in (out / "summary.rst").read_text()


def test_the_report_command(study_config):
    result = subprocess.run([sys.executable, "-m", "snakesweep.cli", "report", "--configfile", str(study_config)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = study_config.parent / "results" / "report"
    assert f"{out}/summary.html" in result.stdout
    assert all((out / name).exists() for name in output_names())


def test_the_compute_summary_counts_a_resumed_trial_at_its_full_length(tmp_path):
    """A trial resumed at epoch 3 trained 1 epoch itself (its interrupted attempt, failed, the 3
    before): it is a 4-epoch trial for what a full run of every trial would have cost."""
    import optuna

    from snakesweep.report.summary import summarize

    config = load_config(write_project(tmp_path))
    study = create_study(config)
    distributions = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
                     "layers": optuna.distributions.IntDistribution(1, 3)}

    def add(state, epochs, value=None, **attrs):
        study.add_trial(optuna.trial.create_trial(
            state=state, value=value, params={"lr": 0.01, "layers": 2}, distributions=distributions,
            user_attrs={"epochs": epochs, **attrs}))

    add(TrialState.COMPLETE, 4, 0.8)
    add(TrialState.FAIL, 3)
    add(TrialState.COMPLETE, 1, 0.7, resumed_from_epoch=3)
    add(TrialState.PRUNED, 1)
    compute = summarize(load_sweep(config))["compute"]
    assert compute["epochs_run"] == 4 + 3 + 1 + 1 and compute["epochs_run_finished"] == 6
    assert compute["epochs_per_full_trial"] == 4
    assert compute["epochs_without_pruning"] == 4 + 4 + 4 and compute["epochs_saved"] == 12 - 6
