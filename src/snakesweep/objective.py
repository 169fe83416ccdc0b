"""The objective of a trial, read from the files its trainer wrote: checked at each epoch, valued at the end."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from snakesweep.errors import UserError
from snakesweep.trialfiles import read_epoch_metrics, read_final_metrics


class MetricMissing(UserError):
    """The configured metric is not among the keys the trainer wrote: a config mistake, not bad luck."""


def _number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: {key} is {value!r}, not a number")
    if not math.isfinite(value):
        raise ValueError(f"{where}: {key} is {'NaN' if math.isnan(value) else value}, not a finite number")
    return float(value)


def require_key(metrics: Mapping[str, Any], key: str, where: str) -> None:
    """MetricMissing, naming the keys the file does have, when `key` is not one of them."""
    if key not in metrics:
        raise MetricMissing(
            f"has no key {key!r}; it has: {', '.join(sorted(metrics)) or 'nothing'}",
            file=where,
            field="objective",
            fix="set objective.metric / objective.intermediate to one of those keys",
        )


def metric_from(metrics: Mapping[str, Any], key: str, where: str) -> float:
    """One metric of one metrics file, a finite number; a missing key names the keys the file does have."""
    require_key(metrics, key, where)
    return _number(metrics[key], key, where)


def epoch_check(objective: Mapping[str, Any], *, report: bool,
                final_key_in_epochs: Callable[[str], bool] | bool,
                metrics: Sequence[str] | None = None) -> Callable[[Mapping[str, Any], str], None]:
    """What each epoch file of a run must hold, so that a mistake shows at the first epoch, not the last.

    The value of the key reported to the pruner (when `report`) and of the key a reduction reads
    must be a finite number (ValueError: the run diverged, the trial fails); the key of metrics.json
    must be there when the trainer's epoch files carry its keys (MetricMissing: the config is wrong).
    """
    values = [objective["intermediate"]] if report and objective["intermediate"] else []
    present = []
    for metric in metrics or [objective["metric"]]:
        in_epochs = final_key_in_epochs(metric) if callable(final_key_in_epochs) else final_key_in_epochs
        if objective["reduce"] != "final":
            values.append(metric)
        elif in_epochs:
            present.append(metric)

    def check(metrics: Mapping[str, Any], where: str) -> None:
        for key in present:
            require_key(metrics, key, where)
        for key in values:
            metric_from(metrics, key, where)

    return check


def objective_values(serialization_dir: Path, objective: Mapping[str, Any], metrics: Sequence[str],
                     directions: Sequence[str]) -> list[float]:
    """The values to tell a study of several objectives: each metric read as objective_value reads one."""
    return [objective_value(serialization_dir, objective, direction, key=metric)
            for metric, direction in zip(metrics, directions)]


def objective_value(serialization_dir: Path, objective: Mapping[str, Any], direction: str,
                    key: str | None = None) -> float:
    """The value to tell the study: a key of metrics.json (objective.metric, or `key`), or a
    reduction over the epoch files.

    Raises ValueError for a missing, NaN or infinite value (the trial fails with that reason) and
    MetricMissing when the key does not exist at all.
    """
    key, reduce = key or objective["metric"], objective["reduce"]
    if reduce == "final":
        metrics = read_final_metrics(serialization_dir)
        if metrics is None:
            raise ValueError(f"{serialization_dir}/metrics.json was not written")
        return metric_from(metrics, key, str(serialization_dir / "metrics.json"))
    epochs = read_epoch_metrics(serialization_dir)
    if not epochs:
        raise ValueError(f"{serialization_dir} holds no metrics_epoch_N.json")
    values = [metric_from(m, key, str(serialization_dir / f"metrics_epoch_{n}.json")) for n, m in epochs.items()]
    if reduce == "last":
        return values[-1]
    if reduce == "best":
        return max(values) if direction == "maximize" else min(values)
    tail = values[-objective["last_k"]:]
    return sum(tail) / len(tail)
