"""Simple line and point charts described once, drawn twice: matplotlib (PNG) and plotly (HTML).

The report's own figures (learning curves, expected best, test scores) are lists of traces; a
trace is a line, a set of points, or a band between two lines. Each backend draws the same list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

WIDTH_IN, HEIGHT_IN, DPI = 10.0, 6.0, 100  # PNGs are 1000 x 600 pixels

_MPL_MARKERS = {"circle": "o", "x": "x", "diamond": "D", "square": "s"}
_MPL_DASHES = {None: "-", "dash": "--", "dot": ":"}


@dataclass
class Trace:
    """One series. `lower` makes it a band between `lower` and `y`."""

    x: Sequence[Any]
    y: Sequence[float]
    name: str
    mode: str = "lines"  # lines, markers, lines+markers
    color: str = "#1f77b4"
    width: float = 1.5
    dash: str | None = None  # None, dash, dot
    opacity: float = 1.0
    marker: str = "circle"
    size: float = 7.0
    legend: bool = True
    hover: Sequence[str] | None = None
    lower: Sequence[float] | None = None


@dataclass
class Chart:
    title: str
    xlabel: str
    ylabel: str
    traces: list[Trace] = field(default_factory=list)
    note: str | None = None  # a line under the title; alone on an empty chart
    xticks: Sequence[tuple[float, str]] | None = None
    integer_x: bool = False


def placeholder(title: str, message: str) -> Chart:
    """A chart that says why there is nothing to draw yet, so every output file still exists."""
    return Chart(title=title, xlabel="", ylabel="", note=message)


# -- plotly --------------------------------------------------------------------------------------
def to_plotly(chart: Chart) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    for trace in chart.traces:
        if trace.lower is not None:
            figure.add_trace(go.Scatter(
                x=list(trace.x), y=list(trace.lower), mode="lines", line={"width": 0, "color": trace.color},
                showlegend=False, hoverinfo="skip", name=f"{trace.name} (lower)",
            ))
            figure.add_trace(go.Scatter(
                x=list(trace.x), y=list(trace.y), mode="lines", line={"width": 0, "color": trace.color},
                fill="tonexty", fillcolor=_rgba(trace.color, 0.2 * trace.opacity), name=trace.name,
                showlegend=trace.legend, hoverinfo="skip",
            ))
            continue
        figure.add_trace(go.Scatter(
            x=list(trace.x), y=list(trace.y), name=trace.name, mode=trace.mode, opacity=trace.opacity,
            line={"color": trace.color, "width": trace.width, "dash": trace.dash or "solid"},
            marker={"color": trace.color, "symbol": trace.marker, "size": trace.size},
            showlegend=trace.legend,
            text=list(trace.hover) if trace.hover is not None else None,
            hovertemplate="%{text}<extra></extra>" if trace.hover is not None else None,
        ))
    title = chart.title if not chart.note else f"{chart.title}<br><sup>{chart.note}</sup>"
    figure.update_layout(
        title={"text": title}, xaxis_title=chart.xlabel, yaxis_title=chart.ylabel,
        template="plotly_white", hovermode="closest",
        width=int(WIDTH_IN * DPI), height=int(HEIGHT_IN * DPI),
    )
    if chart.integer_x:
        figure.update_xaxes(tickformat="d", rangemode="tozero")
    if chart.xticks:
        figure.update_xaxes(tickmode="array", tickvals=[t[0] for t in chart.xticks],
                            ticktext=[t[1] for t in chart.xticks])
    if not chart.traces:
        figure.update_xaxes(visible=False)
        figure.update_yaxes(visible=False)
    return figure


def _rgba(color: str, alpha: float) -> str:
    red, green, blue = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha:.2f})"


# -- matplotlib ----------------------------------------------------------------------------------
def to_matplotlib(chart: Chart) -> Any:
    """A matplotlib Figure (not registered with pyplot: nothing global to close)."""
    import matplotlib

    # Optuna's matplotlib plots switch the global style to ggplot; ours keep the default one.
    with matplotlib.style.context("default"):
        return _draw(chart)


def _draw(chart: Chart) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    axes = figure.add_subplot()
    for trace in chart.traces:
        label = trace.name if trace.legend else "_nolegend_"
        if trace.lower is not None:
            axes.fill_between(list(trace.x), list(trace.lower), list(trace.y), color=trace.color,
                              alpha=0.2 * trace.opacity, linewidth=0, label=label)
            continue
        line = "lines" in trace.mode
        axes.plot(
            list(trace.x), list(trace.y), label=label, color=trace.color, alpha=trace.opacity,
            linewidth=trace.width if line else 0, linestyle=_MPL_DASHES[trace.dash] if line else "none",
            marker=_MPL_MARKERS[trace.marker] if "markers" in trace.mode else None,
            markersize=trace.size,
        )
    axes.set_title(chart.title if not chart.note else f"{chart.title}\n{chart.note}", fontsize=11)
    axes.set_xlabel(chart.xlabel)
    axes.set_ylabel(chart.ylabel)
    if chart.integer_x:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if chart.xticks:
        axes.set_xticks([t[0] for t in chart.xticks], [t[1] for t in chart.xticks])
    if chart.traces:
        axes.grid(alpha=0.3)
        if any(t.legend for t in chart.traces):
            axes.legend(loc="best", fontsize=9)
    else:
        axes.set_axis_off()
    figure.tight_layout()
    return figure
