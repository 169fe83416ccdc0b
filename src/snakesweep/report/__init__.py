"""The sweep's report: plots (PNG and interactive HTML) and a summary table, for `snakemake --report`.

    write_report(config, "results/report", test_metrics="results/test_metrics.json")

writes, under the output directory:

- `<plot>.png` for each plot in PLOTS (matplotlib; what the Snakemake report embeds),
- `html/<plot>.html` and `html/index.html` (plotly; one shared `html/plotly.min.js`, opens offline),
- `summary.rst` (included by the report's front page), `summary.html` and `summary.json`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakesweep.report.expected_max import ExpectedMax, expected_max
from snakesweep.config import objective_metrics
from snakesweep.report.plots import PLOTLY_JS, PLOTS, TITLES, plot_names

__all__ = ["PLOTS", "ExpectedMax", "ReportOutput", "expected_max", "output_names", "report_outputs", "write_report"]

HTML_DIR = "html"
SUMMARY_FILES = ("summary.rst", "summary.html", "summary.json")
TOP_TRIALS = 10
# plot -> (category, label) of its entry in `snakemake --report`; captions are workflow/report/<plot>.rst
_REPORT_ENTRIES = {
    "optimization_history": ("Sweep", "optimization history"),
    "parallel_coordinates": ("Sweep", "parallel coordinates"),
    "param_importances": ("Sweep", "parameter importances"),
    "slices": ("Sweep", "slices"),
    "expected_max": ("Sweep", "expected best against trials"),
    "learning_curves": ("Trials", "learning curves"),
    "test_scores": ("Final model", "test scores across seeds"),
    "pareto_front": ("Sweep", "Pareto front"),
}


@dataclass(frozen=True)
class ReportOutput:
    """One thing write_report writes under its output directory, as the report rule declares it."""

    name: str  # the rule's name for the output
    file: str
    category: str | None = None  # its entry in `snakemake --report`; None: not an entry
    labels: Mapping[str, str] = field(default_factory=dict)
    directory: bool = False

    @property
    def caption(self) -> str:
        return f"{Path(self.file).stem}.rst"


def report_outputs(config: Mapping[str, Any] | None = None) -> list[ReportOutput]:
    """Every output of the report rule: the rule is generated from this list, write_report writes it.
    The Pareto front is among them when the config has several objectives."""
    several = config is not None and len(objective_metrics(config)) > 1
    plots = [ReportOutput(name, f"{name}.png", _REPORT_ENTRIES[name][0], {"figure": _REPORT_ENTRIES[name][1]})
             for name in plot_names(several)]
    return [
        *plots,
        ReportOutput("summary_html", "summary.html", "Summary", {"table": "summary"}),
        ReportOutput("summary_rst", "summary.rst"),
        ReportOutput("summary_json", "summary.json"),
        ReportOutput("html", HTML_DIR, directory=True),
    ]


def output_names(config: Mapping[str, Any] | None = None) -> list[str]:
    """What write_report writes directly under its output directory (the rule's outputs)."""
    return [output.file for output in report_outputs(config)]


def write_report(
    config: Mapping[str, Any],
    out_dir: str | Path,
    *,
    test_metrics: str | Path | None = None,
    retrained: Mapping[Any, str | Path] | None = None,
) -> dict[str, Any]:
    """Plots and summary of the config's study; returns the summary.

    Everything is built in a temporary directory beside out_dir and moved in at the end, so a
    failure leaves the previous report (or nothing), never half of a new one.
    """
    from snakesweep.report.plots import write_plots
    from snakesweep.report.summary import summarize, to_html, to_rst
    from snakesweep.report.sweep import load_sweep
    from snakesweep.view import sort_trials, trials_table

    out = Path(out_dir)
    sweep = load_sweep(config, test_metrics=test_metrics, retrained=retrained)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        written = write_plots(sweep, staging, staging / HTML_DIR)
        summary = summarize(sweep)
        table = sort_trials(trials_table(sweep.study, sweep.spec), "value", sweep.spec.direction)
        rst = to_rst(summary, _top_trials(table))
        (staging / "summary.rst").write_text(rst)
        (staging / "summary.html").write_text(to_html(rst, f"Sweep {sweep.spec.name}"))
        (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        (staging / HTML_DIR / "index.html").write_text(_index(sweep.spec.name, written))
        out.mkdir(exist_ok=True)
        for name in output_names(config):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            (staging / name).replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _top_trials(frame: Any) -> list[dict[str, Any]]:
    import pandas as pd

    complete = frame["state"] == "COMPLETE"
    if "warm_start" in frame.columns:  # measured under another config: never among the study's top trials
        complete &= frame["warm_start"].isna()
    frame = frame[complete].head(TOP_TRIALS)
    params = [c for c in frame.columns if c.startswith("param_")]
    values = [c for c in frame.columns if c == "value" or c.startswith("value_") or c == "pareto_front"]
    shown = frame[["number", *values, "epochs", *params]].rename(columns={c: c[len("param_"):] for c in params})
    return [
        {key: (None if pd.isna(value) else value) for key, value in row.items()}
        for row in shown.astype(object).to_dict(orient="records")
    ]


def _index(study: str, written: Mapping[str, Mapping[str, Path]]) -> str:
    """html/index.html: links to every interactive plot and to the summary."""
    from html import escape

    links = "\n".join(
        f'<li><a href="{escape(paths["html"].name)}">{escape(TITLES[name])}</a> '
        f'(<a href="../{escape(paths["png"].name)}">PNG</a>)</li>'
        for name, paths in written.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sweep {escape(study)}</title>
<style>body {{font-family: sans-serif; max-width: 50em; margin: 2em auto}}</style></head>
<body><h1>Sweep {escape(study)}</h1>
<p><a href="../summary.html">Summary</a>: best parameters, test scores, trial counts, compute.</p>
<ul>
{links}
</ul>
<p>The plots are interactive (plotly, with {escape(PLOTLY_JS)} in this directory): hover for each
trial's parameters, drag to zoom, double-click to reset.</p>
</body></html>
"""
