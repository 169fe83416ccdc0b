"""The report's figures, each written as a PNG (matplotlib) and an interactive HTML page (plotly).

HTML pages share one copy of plotly.js written next to them (`include_plotlyjs="directory"`): they
open offline, from the file system, without 4.8 MB of JavaScript in every page.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from snakesweep import pareto
from snakesweep.logs import quiet_optuna
from snakesweep.report.charts import DPI, HEIGHT_IN, WIDTH_IN, Chart, Trace, placeholder, to_matplotlib, to_plotly
from snakesweep.report.expected_max import expected_max
from snakesweep.report.sweep import Sweep

# name -> title, in the order the report lists them
PLOTS = {
    "optimization_history": "Optimization history",
    "parallel_coordinates": "Parallel coordinates",
    "param_importances": "Parameter importances",
    "slices": "Slices: the objective against each parameter",
    "learning_curves": "Learning curves",
    "expected_max": "Expected best validation score against the number of trials",
    "test_scores": "Test scores of the retrained model across seeds",
}
FRONT_PLOTS = {"pareto_front": "Pareto front of the objectives, and the trial chosen for retraining"}
"""The plots of a study of several objectives only, after those of PLOTS."""
TITLES = {**PLOTS, **FRONT_PLOTS}


def plot_names(several: bool) -> list[str]:
    """The plots of a study: the Pareto front only with several objectives."""
    return [*PLOTS, *(FRONT_PLOTS if several else ())]
PLOTLY_JS = "plotly.min.js"
_OPTUNA_TITLES = {"Optimization History Plot", "Parallel Coordinate Plot", "Hyperparameter Importances", "Slice Plot"}

_BLUE, _RED, _GREY, _ORANGE, _GREEN, _PURPLE = "#1f77b4", "#d62728", "#7f7f7f", "#ff7f0e", "#2ca02c", "#9467bd"


# -- Optuna's own plots --------------------------------------------------------------------------
def _optuna_plot(sweep: Sweep, name: str, function: str, *, need: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """(plotly figure, matplotlib figure) from optuna.visualization and its matplotlib twin."""
    import optuna.visualization as plotly_plots
    import optuna.visualization.matplotlib as matplotlib_plots

    title = PLOTS[name]
    complete = len(sweep.of_state(TrialState.COMPLETE))
    if complete < need:
        chart = placeholder(title, f"needs {need} completed trial{'s' if need > 1 else ''}; the study has {complete}")
        return to_plotly(chart), to_matplotlib(chart)
    study = sweep.finished_study
    if sweep.spec.several and name != "param_importances":  # these plots show one objective: the report's
        kwargs["target"] = lambda trial, index=sweep.objective: trial.values[index]
    try:
        with quiet_optuna():  # experimental-API warnings, empty studies: the charts say it
            figure = getattr(plotly_plots, function)(study, target_name=sweep.metric, **kwargs)
            axes = getattr(matplotlib_plots, function)(study, target_name=sweep.metric, **kwargs)
    except (ValueError, RuntimeError) as error:  # e.g. importances of parameters that never varied
        chart = placeholder(title, f"not drawn: {error}")
        return to_plotly(chart), to_matplotlib(chart)
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    mpl = first.figure
    panels = len(axes.flat) if hasattr(axes, "flat") else 1
    mpl.set_size_inches(max(WIDTH_IN, 3.5 * panels) if name == "slices" else WIDTH_IN, HEIGHT_IN)
    for ax in (axes.flat if hasattr(axes, "flat") else [axes]):
        for loc in ("center", "left", "right"):
            if ax.get_title(loc=loc) in _OPTUNA_TITLES:
                ax.set_title("", loc=loc)
    mpl.suptitle(f"{title} ({complete} completed trials)", fontsize=11)
    if name != "slices":  # the slices' shared colour bar does not survive tight_layout
        with quiet_optuna():
            mpl.tight_layout()
    figure.update_layout(title={"text": f"{title} ({complete} completed trials)"})
    return figure, mpl


def _importance_evaluator() -> Any:
    from optuna.importance import FanovaImportanceEvaluator

    return FanovaImportanceEvaluator(seed=0)  # the same trials give the same bars


# -- learning curves -----------------------------------------------------------------------------
def learning_curves(sweep: Sweep) -> Chart:
    title = PLOTS["learning_curves"]
    if not sweep.curves:
        why = (f"no epoch file of any trial has {sweep.key!r}" if sweep.key
               else "no per-epoch metric: set objective.intermediate")
        return placeholder(title, why)
    best = sweep.best
    styles = {
        "COMPLETE": ("complete", _BLUE, None, 0.55),
        "PRUNED": ("pruned", _GREY, None, 0.55),
        "FAIL": ("failed", _ORANGE, "dot", 0.8),
        "RUNNING": ("running", _GREEN, "dash", 0.9),
    }
    traces: list[Trace] = []
    legend: dict[str, int] = {}
    pruned_x, pruned_y, pruned_text = [], [], []
    for curve in sweep.curves:
        label, color, dash, opacity = styles.get(curve.state, (curve.state.lower(), _PURPLE, None, 0.6))
        legend[curve.state] = legend.get(curve.state, 0) + 1
        is_best = best is not None and curve.number == best.number
        text = _hover(curve.number, curve.params, curve.value)
        traces.append(Trace(
            x=curve.epochs, y=curve.values, name=f"trial {curve.number}", mode="lines+markers",
            color=_RED if is_best else color, width=3.0 if is_best else 1.3, dash=dash,
            opacity=1.0 if is_best else opacity, size=3.5, legend=False, hover=[text] * len(curve.epochs),
        ))
        if curve.state == "PRUNED" and curve.pruned_at in curve.epochs:
            pruned_x.append(curve.pruned_at)
            pruned_y.append(curve.values[curve.epochs.index(curve.pruned_at)])
            pruned_text.append(f"trial {curve.number} pruned at epoch {curve.pruned_at}")
    for state, count in legend.items():
        label, color, dash, _ = styles.get(state, (state.lower(), _PURPLE, None, 0.6))
        traces.append(Trace(x=[], y=[], name=f"{label} ({count})", color=color, dash=dash))
    if pruned_x:
        traces.append(Trace(x=pruned_x, y=pruned_y, name="pruned here", mode="markers", color="#000000",
                            marker="x", size=9, hover=pruned_text))
    if best is not None:
        traces.append(Trace(x=[], y=[], name=f"best: trial {best.number}", color=_RED, width=3.0))
    return Chart(title=title, xlabel="epoch (metrics_epoch_N.json)", ylabel=sweep.key or "",
                 traces=traces, note=f"{len(sweep.curves)} trials", integer_x=True)


def _hover(number: int, params: dict[str, Any], value: float | None) -> str:
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    score = f" value {value:.4g}" if value is not None else ""
    return html.escape(f"trial {number}{score}: {shown}")


# -- expected best against the number of trials --------------------------------------------------
def expected_best(sweep: Sweep) -> Chart:
    title = PLOTS["expected_max"]
    scores = [v for v in map(sweep.value_of, sweep.of_state(TrialState.COMPLETE)) if v is not None and math.isfinite(v)]
    if not scores:
        return placeholder(title, "needs completed trials; the study has none")
    curve = expected_max(scores, minimize=sweep.minimize)
    lower, upper = curve.band(scores)
    word = "lowest" if sweep.minimize else "highest"
    observed = min(scores) if sweep.minimize else max(scores)
    traces = [
        Trace(x=curve.n, y=upper, lower=lower, name="expected ± one standard deviation", color=_BLUE),
        Trace(x=curve.n, y=curve.mean, name=f"expected {word} {sweep.metric} of n trials", color=_BLUE,
              width=2.5, mode="lines+markers", size=4,
              hover=[f"n={n}: {m:.4g} ± {s:.2g}" for n, m, s in zip(curve.n, curve.mean, curve.std)]),
        Trace(x=[1, len(scores)], y=[observed, observed], name=f"{word} observed ({observed:.4g})",
              color=_RED, dash="dash"),
    ]
    half = max(1, len(scores) // 2)
    gain = curve.mean[-1] - curve.mean[half - 1]
    note = (f"{len(scores)} completed trials (pruned ones left out); from {half} to {len(scores)} trials "
            f"the expected best moved by {gain:+.3g}")
    return Chart(title=title, xlabel="number of trials n", ylabel=sweep.metric, traces=traces, note=note,
                 integer_x=True)


# -- the final test scores -----------------------------------------------------------------------
def test_scores(sweep: Sweep) -> Chart:
    title = PLOTS["test_scores"]
    if not sweep.test or not sweep.test.get("seeds"):
        return placeholder(title, "no test metrics yet: they come after retraining (results/test_metrics.json)")
    seeds = list(sweep.test["seeds"])
    positions = list(range(len(seeds)))
    key = sweep.test_key()
    keys = [key] if key else sorted(
        k for k in sweep.test.get("mean", {}) if all(_number(sweep.test["seeds"][s].get(k)) for s in seeds))
    traces: list[Trace] = []
    colors = [_GREEN, _PURPLE, _ORANGE, _BLUE]
    for i, name in enumerate(keys[:4]):
        values = [float(sweep.test["seeds"][s][name]) for s in seeds]
        mean, std = sweep.test["mean"][name], sweep.test["std"].get(name, 0.0)
        color = colors[i]
        traces.append(Trace(x=[-0.3, len(seeds) - 0.7], y=[mean + std] * 2, lower=[mean - std] * 2,
                            name=f"test {name}: {mean:.4g}" if len(seeds) == 1
                            else f"test {name}: mean {mean:.4g} ± {std:.2g}", color=color))
        traces.append(Trace(x=positions, y=values, name=f"test {name}", mode="markers", color=color, size=10,
                            hover=[f"seed {s}: test {name} {v:.4g}" for s, v in zip(seeds, values)]))
    retrained = [sweep.retrained.get(s, {}).get(sweep.metric) for s in seeds]
    if any(_number(v) for v in retrained):
        xs = [p for p, v in zip(positions, retrained) if _number(v)]
        ys = [float(v) for v in retrained if _number(v)]
        traces.append(Trace(x=xs, y=ys, name=f"{sweep.metric} of the retrained run", mode="markers",
                            color=_BLUE, marker="diamond", size=9))
    best = sweep.best
    if best is not None:
        value = sweep.value_of(best)
        traces.append(Trace(x=[-0.3, len(seeds) - 0.7], y=[value, value],
                            name=f"the sweep's best trial ({best.number}): {sweep.metric} {value:.4g}",
                            color=_RED, dash="dash"))
    note = None if key else f"no test metric matches {sweep.metric!r}: showing {', '.join(keys[:4]) or 'none'}"
    return Chart(title=title, xlabel="retrain seed", ylabel="score", traces=traces, note=note,
                 xticks=[(p, f"seed {s}") for p, s in zip(positions, seeds)])


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# -- all of them ---------------------------------------------------------------------------------
def figures(sweep: Sweep) -> dict[str, tuple[Any, Any]]:
    """{name: (plotly figure, matplotlib figure)} for every plot in PLOTS."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no window, no display needed (Optuna's plots go through pyplot)
    charts: dict[str, Callable[[Sweep], Chart]] = {
        "learning_curves": learning_curves,
        "expected_max": expected_best,
        "test_scores": test_scores,
    }
    made: dict[str, tuple[Any, Any]] = {
        "optimization_history": _optuna_plot(sweep, "optimization_history", "plot_optimization_history"),
        "parallel_coordinates": _optuna_plot(sweep, "parallel_coordinates", "plot_parallel_coordinate"),
        "param_importances": _optuna_plot(sweep, "param_importances", "plot_param_importances", need=2,
                                          evaluator=_importance_evaluator()),
        "slices": _optuna_plot(sweep, "slices", "plot_slice"),
    }
    for name, build in charts.items():
        chart = build(sweep)
        made[name] = (to_plotly(chart), to_matplotlib(chart))
    if sweep.spec.several:
        made["pareto_front"] = pareto_front(sweep)
    return {name: made[name] for name in plot_names(sweep.spec.several)}


def pareto_front(sweep: Sweep) -> tuple[Any, Any]:
    """Optuna's plot_pareto_front (two or three objectives), the chosen trial marked with a red star."""
    import optuna.visualization as plotly_plots
    import optuna.visualization.matplotlib as matplotlib_plots
    import plotly.graph_objects as go

    title = FRONT_PLOTS["pareto_front"]
    complete = len(sweep.of_state(TrialState.COMPLETE))
    objectives = len(sweep.spec.metrics)
    if not complete or objectives > 3:
        why = "no completed trial yet" if not complete else f"{objectives} objectives: Optuna draws 2 or 3"
        chart = placeholder(title, why)
        return to_plotly(chart), to_matplotlib(chart)
    names = list(sweep.spec.metrics)
    with quiet_optuna():
        figure = plotly_plots.plot_pareto_front(sweep.finished_study, target_names=names)
        axes = matplotlib_plots.plot_pareto_front(sweep.finished_study, target_names=names)
    chosen = sweep.best
    if chosen is not None:
        label = f"chosen for retraining: trial {chosen.number} ({pareto.Rule.of(sweep.config).describe()})"
        point = list(chosen.values)
        if objectives == 2:
            figure.add_trace(go.Scatter(x=[point[0]], y=[point[1]], mode="markers", name=label,
                                        marker={"symbol": "star", "size": 16, "color": _RED}))
            axes.scatter([point[0]], [point[1]], marker="*", s=250, color=_RED, label=label, zorder=5)
        else:
            figure.add_trace(go.Scatter3d(x=[point[0]], y=[point[1]], z=[point[2]], mode="markers", name=label,
                                          marker={"symbol": "diamond", "size": 8, "color": _RED}))
            axes.scatter([point[0]], [point[1]], [point[2]], marker="*", s=250, color=_RED, label=label)
        axes.legend(fontsize=8)
    heading = f"{title} ({complete} completed trials)"
    figure.update_layout(title={"text": heading})
    mpl = axes.figure
    mpl.set_size_inches(WIDTH_IN, HEIGHT_IN)
    axes.set_title("")
    mpl.suptitle(heading, fontsize=11)
    return figure, mpl


def write_plots(sweep: Sweep, png_dir: Path, html_dir: Path) -> dict[str, dict[str, Path]]:
    """<png_dir>/<name>.png and <html_dir>/<name>.html for every plot, plus plotly.min.js once."""
    import matplotlib.pyplot as plt

    png_dir.mkdir(parents=True, exist_ok=True)
    html_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, dict[str, Path]] = {}
    for name, (plotly_figure, mpl_figure) in figures(sweep).items():
        png, page = png_dir / f"{name}.png", html_dir / f"{name}.html"
        mpl_figure.savefig(png, dpi=DPI, format="png")
        plt.close(mpl_figure)  # the Optuna ones live in pyplot's registry
        plotly_figure.write_html(page, include_plotlyjs="directory", full_html=True,
                                 config={"displaylogo": False, "responsive": True})
        written[name] = {"png": png, "html": page}
    return written
