"""`snakemake` then `snakemake --report`: the report holds every plot, its captions and the summary."""

from __future__ import annotations

import base64
import json

import pytest
from PIL import Image

from snakesweep.report import PLOTS
from tests.test_plots import plotly_data, trial_traces
from tests.workflow_project import make, planned_rules, snakemake

pytestmark = pytest.mark.slow


def test_the_snakemake_report_has_the_plots_captions_and_summary(tmp_path, run_env):
    make(tmp_path)
    result = snakemake(tmp_path, env=run_env)
    assert result.returncode == 0, result.stderr[-3000:]
    report_dir = tmp_path / "results" / "report"
    summary = json.loads((report_dir / "summary.json").read_text())
    best = json.loads((tmp_path / "results" / "best_params.json").read_text())
    test = json.loads((tmp_path / "results" / "test_metrics.json").read_text())
    assert summary["best"]["trial"] == best["trial"] and summary["best"]["params"] == best["params"]
    assert summary["counts"]["complete"] + summary["counts"]["pruned"] == 4
    assert summary["test"]["metric"] == "accuracy" and summary["test"]["mean"] == test["mean"]
    for name in PLOTS:
        with Image.open(report_dir / f"{name}.png") as image:
            assert image.format == "PNG" and image.size[1] == 600
    assert len(trial_traces(plotly_data(report_dir / "html" / "learning_curves.html"))) == 4
    assert planned_rules(tmp_path, run_env) == {}, "the report is up to date with the rest"

    result = snakemake(tmp_path, "--report", "report.html", env=run_env)
    assert result.returncode == 0, result.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    for name in PLOTS:
        png = base64.b64encode((report_dir / f"{name}.png").read_bytes()).decode()
        assert png in html, f"{name}.png is not embedded"
    assert base64.b64encode((report_dir / "summary.html").read_bytes()).decode() in html
    # the front page: the summary table itself, and the captions
    assert "Saved by pruning" in html and f"{summary['best']['value']:.6g} in trial {summary['best']['trial']}" in html
    assert "Test accuracy over 2 retrain seeds" in html
    assert "Dodge et al." in html and "Show Your Work" in html and "pruned trials are grey" in html
    assert "System Message" not in html
    print(f"report.html: {len(html) / 1e6:.1f} MB")
