"""The worker: a budget loop (loop.py) over one trial's run (trial_run.py), kept alive by liveness.py."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from snakesweep.trialfiles import write_json
from snakesweep.worker.loop import Worker
from snakesweep.worker.trial_run import TrialFailed, TrialRun

__all__ = ["TrialFailed", "TrialRun", "Worker", "run_worker"]


def run_worker(config: Mapping[str, Any], index: int, *, threads: int | None = None,
               summary_path: str | Path | None = None) -> dict[str, Any]:
    """Entry point of the workflow's worker rule and of `snakesweep worker`."""
    summary = Worker(config, index, threads).run()
    if summary_path is not None:
        write_json(Path(summary_path), summary)
    return summary
