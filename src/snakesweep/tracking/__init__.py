"""Experiment tracking as a listener: the worker and the final steps report, MLflow is written from outside.

Every launcher is tracked alike because nothing runs inside the trainer, and a tracking outage never
stops or slows a sweep: reports go to a journal file at once (listener.py, journal.py), and a
separate shipper process sends them to MLflow (shipper.py, mlflow_runs.py), retrying, and leaving
what it could not send to the next step. Nothing here imports mlflow; only the shipper does.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from snakesweep.config import objective_metrics
from snakesweep.errors import UserError
from snakesweep.paths import Paths
from snakesweep.tracking.journal import Journal, has_pending, journals
from snakesweep.tracking.listener import JournalListener, Listener
from snakesweep.tracking.target import Target, target

__all__ = ["Listener", "Target", "catch_up", "listening", "open_listener", "target"]


def open_listener(config: Mapping[str, Any], study: str, writer: str, *, ship: str) -> Listener:
    """The listener of one step (`writer`: worker-0, select, evaluate-1, ...); a silent one when tracking is off.

    ship: "live" (a worker), "at_close" (ship every journal of the study when the step ends) or "never".
    """
    where = target(config, study)
    if where is None:
        return Listener()
    journal = Journal(Paths.of(config).journal(study, writer), where.as_dict())
    return JournalListener(journal, metric=objective_metrics(config)[0], ship=ship)


@contextmanager
def listening(config: Mapping[str, Any], study: str, writer: str, *, ship: str) -> Iterator[Listener]:
    """open_listener() for the length of a step; closing it ships as `ship` says."""
    listener = open_listener(config, study, writer, ship=ship)
    try:
        yield listener
    finally:
        listener.close()


def catch_up(config: Mapping[str, Any]) -> list[Path]:
    """Log to MLflow what every study's steps left pending (an outage); return the journals still pending."""
    if config["tracking"]["mlflow"] is None:
        raise UserError("MLflow tracking is off", file="config", field="tracking.mlflow", fix="set tracking: {mlflow: {}}")
    found = [path for directory in sorted(Paths.of(config).studies_dir.glob("*/tracking")) for path in journals(directory)]
    if found:
        subprocess.run([sys.executable, "-m", "snakesweep.tracking.shipper", *map(str, found)], check=False)
    return [path for path in found if has_pending(path)]
