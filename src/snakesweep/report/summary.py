"""The report's summary table: the answer, the test scores, the counts, and the compute pruning saved."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from datetime import datetime
from typing import Any

from optuna.trial import TrialState

from snakesweep import pareto
from snakesweep import storage as storages
from snakesweep import trials as vocabulary
from snakesweep.display import duration
from snakesweep.report.expected_max import expected_max
from snakesweep.report.sweep import Sweep
from snakesweep.view import busy_seconds, render_params


def summarize(sweep: Sweep) -> dict[str, Any]:
    """Everything the summary table shows, as plain data (written as summary.json too)."""
    complete = sweep.of_state(TrialState.COMPLETE)
    pruned = sweep.of_state(TrialState.PRUNED)
    failed = sweep.of_state(TrialState.FAIL)
    best = sweep.best
    summary: dict[str, Any] = {
        "study": sweep.spec.name,
        "storage": storages.mask(storages.storage_url(sweep.config)),
        "metric": sweep.metric,
        "direction": sweep.spec.directions[sweep.objective],
        "budget": sweep.budget,
        "counts": {
            "complete": len(complete), "pruned": len(pruned), "failed": len(failed),
            "running": len(sweep.of_state(TrialState.RUNNING)), "waiting": len(sweep.of_state(TrialState.WAITING)),
        },
        "best": None,
        "test": _test(sweep),
        "compute": _compute(sweep),
        "expected_best": None,
        "warm_start": _warm_start(sweep),
    }
    if best is not None:
        summary["best"] = {
            "trial": best.number,
            "value": sweep.value_of(best),
            "params": render_params(sweep.spec, best),
            "sampled": sorted(best.params),
        }
        if sweep.selection is not None:  # several objectives: best is the trial chosen from the front
            summary["pareto"] = {"front": [t.number for t in sweep.selection.front],
                                 "rule": pareto.Rule.of(sweep.config).describe(),
                                 "values": pareto.values_of(best, sweep.spec.metrics)}
        scores = [v for v in map(sweep.value_of, complete) if v is not None and math.isfinite(v)]
        curve = expected_max(scores, minimize=sweep.minimize)
        half = max(1, len(scores) // 2)
        summary["expected_best"] = {
            "n": len(scores), "mean": curve.mean[-1], "std": curve.std[-1],
            "half_n": half, "half_mean": curve.mean[half - 1],
        }
    return summary


def _warm_start(sweep: Sweep) -> dict[str, Any] | None:
    """The earlier studies' trials the sampler started from: how many, from which study."""
    if not sweep.warm:
        return None
    studies = Counter(t.system_attrs[vocabulary.WARM_START]["study"] for t in sweep.warm)
    return {"trials": len(sweep.warm), "studies": dict(sorted(studies.items()))}


def _test(sweep: Sweep) -> dict[str, Any] | None:
    if not sweep.test:
        return None
    key = sweep.test_key()
    return {
        "metric": key,
        "seeds": len(sweep.test.get("seeds", {})),
        "mean": dict(sweep.test.get("mean", {})),
        "std": dict(sweep.test.get("std", {})),
    }


def _compute(sweep: Sweep) -> dict[str, Any]:
    """Epochs run, against the epochs a full run of every finished trial would have taken.

    A pruned trial is counted as if it had run as many epochs as the completed trials did on
    average (their early stopping included), and at least as many as it did run. A resumed trial
    ran the epochs after `resumed_from_epoch` (the ones before count in its interrupted attempt,
    failed), and is as long as all of them.
    """
    finished = sweep.of_state(TrialState.COMPLETE, TrialState.PRUNED)
    complete_epochs = [sweep.epochs_run(t) for t in sweep.of_state(TrialState.COMPLETE)]
    pruned_epochs = [sweep.epochs_run(t) for t in sweep.of_state(TrialState.PRUNED)]
    failed_epochs = [sweep.epochs_run(t) for t in sweep.of_state(TrialState.FAIL)]
    lengths = [sweep.epochs_run(t) + t.user_attrs.get(vocabulary.RESUMED_FROM_EPOCH, 0)
               for t in sweep.of_state(TrialState.COMPLETE)]
    full = statistics.fmean(lengths) if lengths else None
    run_finished = sum(complete_epochs) + sum(pruned_epochs)
    without = None
    if full is not None:
        without = sum(lengths) + sum(max(full, e) for e in pruned_epochs)
    seconds = [t.duration.total_seconds() for t in sweep.trials
               if t.duration is not None and t.state != TrialState.RUNNING]
    return {
        "epochs_run": run_finished + sum(failed_epochs),
        "epochs_run_finished": run_finished,
        "epochs_failed": sum(failed_epochs),
        "epochs_per_full_trial": full,
        "epochs_without_pruning": without,
        "epochs_saved": None if without is None else without - run_finished,
        "saved_fraction": None if not without else (without - run_finished) / without,
        "trial_hours": sum(seconds) / 3600,
        "sweep_hours": busy_seconds(finished + sweep.of_state(TrialState.FAIL), datetime.now()) / 3600,
    }


# -- reStructuredText and HTML -------------------------------------------------------------------
def _escape(value: Any) -> str:
    """Text safe inside a reStructuredText table cell."""
    text = str(value)
    for char in "\\`*_|[]":
        text = text.replace(char, "\\" + char)
    return text.replace("\n", " ") or "\\ "


def _number(value: float | None, digits: int = 6) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _table(title: str, rows: list[list[Any]], header: list[str] | None = None, widths: str | None = None) -> str:
    lines = [f".. list-table:: {_escape(title)}"]
    if header:
        lines.append("   :header-rows: 1")
    if widths:
        lines.append(f"   :widths: {widths}")
    lines.append("")
    for row in ([header] if header else []) + rows:
        for i, cell in enumerate(row):
            lines.append(f"   {'* -' if i == 0 else '  -'} {_escape(cell)}")
    return "\n".join(lines) + "\n"


def to_rst(summary: dict[str, Any], trials: list[dict[str, Any]] | None = None) -> str:
    """The summary as reStructuredText tables (no section titles: it is included into other pages)."""
    counts, compute, best = summary["counts"], summary["compute"], summary["best"]
    finished = counts["complete"] + counts["pruned"]
    rows: list[list[Any]] = [["Study", f"{summary['study']} in {summary['storage']}"]]
    front = summary.get("pareto")
    if best and front:
        values = ", ".join(f"{name} {_number(value)}" for name, value in front["values"].items())
        rows.append(["Pareto front", f"{len(front['front'])} trials: " + ", ".join(map(str, front["front"]))])
        rows.append([f"Chosen for retraining ({front['rule']})", f"trial {best['trial']}: {values}"])
    elif best:
        rows.append([f"{summary['metric']} of the best trial ({summary['direction']})",
                     f"{_number(best['value'])} in trial {best['trial']}"])
    else:
        rows.append([f"{summary['metric']} of the best trial", "no trial completed"])
    test = summary["test"]
    if test and test["metric"]:
        key = test["metric"]
        rows.append([f"Test {key} over {_seeds(test['seeds'])}", _spread(test, key)])
    elif test:
        rows.append(["Test metrics", f"no key matches {summary['metric']}: see the table below"])
    else:
        rows.append(["Test metrics", "not yet: retraining has not finished"])
    of_budget = f" of {summary['budget']}" if summary["budget"] is not None else ""
    rows.append(["Trials", f"{finished}{of_budget} finished: {counts['complete']} complete, "
                 f"{counts['pruned']} pruned; {counts['failed']} failed"
                 + (f", {counts['running']} running" if counts["running"] else "")])
    warm = summary.get("warm_start")
    if warm:
        studies = ", ".join(f"{n} of {name}" for name, n in warm["studies"].items())
        rows.append(["Warm start", f"{warm['trials']} trials of earlier studies ({studies}): the sampler's "
                     "prior knowledge, in no count, plot or best above"])
    if compute["epochs_without_pruning"] is not None:
        rows.append(["Epochs trained", f"{compute['epochs_run']} ({compute['epochs_run_finished']} in finished "
                     f"trials, {compute['epochs_failed']} in failed ones)"])
        rows.append(["Epochs without pruning",
                     f"{compute['epochs_without_pruning']:.0f}: every finished trial run to the end "
                     f"({compute['epochs_per_full_trial']:.3g} epochs each, as the completed ones)"])
        rows.append(["Saved by pruning",
                     f"{compute['epochs_saved']:.0f} epochs ({100 * compute['saved_fraction']:.0f}%)"])
    else:
        rows.append(["Epochs trained", str(compute["epochs_run"])])
    rows.append(["Compute", f"{duration(compute['trial_hours'] * 3600)} of trial time in "
                 f"{duration(compute['sweep_hours'] * 3600)} of sweep time"])
    expected = summary["expected_best"]
    if expected:
        rows.append(["Expected best of n trials (Dodge et al. 2019)",
                     f"n={expected['half_n']}: {_number(expected['half_mean'], 4)}; "
                     f"n={expected['n']}: {_number(expected['mean'], 4)} ± {_number(expected['std'], 2)}"])
    parts = [_table("Sweep summary", rows, widths="35 65")]
    if best:
        sampled = set(best["sampled"])
        parts.append(_table("Best parameters", [[name, value, "sampled" if name in sampled else "fixed"]
                                                for name, value in best["params"].items()],
                            header=["parameter", "value", ""]))
    if test and test["mean"] and test["seeds"] == 1:
        parts.append(_table("Test metrics (1 retrain seed)",
                            [[key, _number(value, 4)] for key, value in sorted(test["mean"].items())],
                            header=["metric", "value"]))
    elif test and test["mean"]:
        parts.append(_table(f"Test metrics (mean and standard deviation over {_seeds(test['seeds'])})",
                            [[key, _number(value, 4), _number(test["std"].get(key), 2)]
                             for key, value in sorted(test["mean"].items())],
                            header=["metric", "mean", "std"]))
    if trials:
        header = list(trials[0])
        parts.append(_table(f"Top {len(trials)} trials", [[_cell(row[c]) for c in header] for row in trials],
                            header=header))
    return "\n".join(parts)


def _seeds(count: int) -> str:
    return f"{count} retrain seed{'' if count == 1 else 's'}"


def _spread(test: dict[str, Any], key: str) -> str:
    """Mean ± standard deviation; a single seed has no spread to show."""
    mean = _number(test["mean"][key], 4)
    return mean if test["seeds"] == 1 else f"{mean} ± {_number(test['std'].get(key), 2)}"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def to_html(rst: str, title: str) -> str:
    """A standalone HTML page of the summary (docutils comes with Snakemake)."""
    from docutils.core import publish_string

    source = f"{'=' * len(title)}\n{title}\n{'=' * len(title)}\n\n{rst}"
    settings = {"report_level": 5, "halt_level": 5, "embed_stylesheet": True, "output_encoding": "unicode"}
    return publish_string(source, writer="html5", settings_overrides=settings)
