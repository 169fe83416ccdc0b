"""A worker: runs trials until the study holds its budget of finished trials, counted over all workers.

Exactness without a lock: a worker claims a trial by creating it (trial numbers are handed out in
creation order by every storage), then applies the budget rule (`trials.claim_is_surplus`). A
surplus claim is closed at once, marked, and never trained, so the study never holds more
finished trials than asked for.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from snakesweep import storage as storages
from snakesweep import trials as vocabulary
from snakesweep.errors import UserError
from snakesweep.launchers import Launcher, make_launcher
from snakesweep.optuna_api import StudyStore
from snakesweep.process_env import assign_gpu, limit_threads
from snakesweep.study import StudySpec, load_study, n_trials, study_spec
from snakesweep.worker.liveness import Liveness, StopSignals
from snakesweep.worker.trial_run import TrialRun

log = logging.getLogger("snakesweep.worker")


@dataclass
class Worker:
    """One worker job of a sweep."""

    config: Mapping[str, Any]
    index: int = 0
    threads: int | None = None
    spec: StudySpec = field(init=False)
    budget: int = field(init=False)

    def __post_init__(self) -> None:
        self.threads = self.threads or self.config["workers"]["threads"]
        self.spec = study_spec(self.config)
        self.budget = n_trials(self.spec, self.config)
        self.workers_cfg = self.config["workers"]
        url = storages.storage_url(self.config)
        heartbeat_s = self.config["study"]["heartbeat_s"]
        storage = storages.open_storage(url, heartbeat_s=heartbeat_s)
        self.study = load_study(self.config, self.spec, worker=self.index, storage=storage)
        self.store = StudyStore(self.study, heartbeat_s, url=url)
        self.launcher: Launcher = make_launcher(self.config["launcher"])
        self.signals = StopSignals()
        self.liveness = Liveness(self.store, self.index, heartbeat_s, url)
        self.ran: list[dict[str, Any]] = []

    def trial_run(self) -> TrialRun:
        return TrialRun(self.config, self.spec, self.store, self.launcher, self.liveness, self.signals,
                        worker=self.index, threads=self.threads, budget=self.budget)

    def run(self) -> dict[str, Any]:
        """Run trials until the study holds `budget` finished trials; return the worker's summary."""
        # We drive heartbeats ourselves around ask/tell; Optuna warns as if we forgot them.
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used", UserWarning)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        assign_gpu(self.workers_cfg["gpu_ids"], self.index)
        limit_threads(self.threads)
        self.launcher.prepare()
        started = time.monotonic()
        time_limit = self.workers_cfg["time_limit_min"]
        consecutive_failures = 0
        trial_run = self.trial_run()
        with self.signals.installed():
            self.liveness.recover_own_stale_trials()
            while True:
                self.signals.check()
                counts = vocabulary.count_trials(self.liveness.trials_after_stale_check())
                if counts.finished >= self.budget:
                    break
                if time_limit is not None and time.monotonic() - started > 60 * time_limit:
                    raise UserError(
                        f"worker {self.index} reached its time limit with {counts.finished}/{self.budget} "
                        "trials finished",
                        file="config",
                        field="workers.time_limit_min",
                        fix="run the workflow again to continue the study, or raise the limit",
                    )
                if counts.finished + counts.running >= self.budget:
                    # Every missing trial is being trained elsewhere; one may still fail or go stale.
                    time.sleep(self.workers_cfg["poll_s"])
                    continue
                record = trial_run.run()
                if record is None:
                    continue
                self.ran.append(record)
                self._log_finished(record)
                if record["state"] != "FAIL":
                    consecutive_failures = 0
                    continue
                consecutive_failures += 1
                if consecutive_failures >= self.workers_cfg["max_failures"]:
                    raise UserError(
                        f"{consecutive_failures} trials in a row failed; the last: {record['reason']} "
                        f"(log: {record['log']})",
                        file="config",
                        field="workers.max_failures",
                        fix="fix the trainer or the config, then run again",
                    )
        return self.summary()

    def summary(self) -> dict[str, Any]:
        counts = vocabulary.count_trials(self.store.trials())
        return {
            "study": self.spec.name,
            "worker": self.index,
            "budget": self.budget,
            "finished": counts.finished,
            "counts": counts.__dict__,
            "trials": self.ran,
        }

    def _log_finished(self, record: Mapping[str, Any]) -> None:
        trials = self.store.trials()  # one read for the best and the counts
        best = vocabulary.best_trial(trials, self.spec.direction)
        best_text = f"best {best.value:.6g} (trial {best.number})" if best else "best -"
        counts = vocabulary.count_trials(trials)
        value = f" value {record['value']:.6g}" if "value" in record else ""
        reason = f" ({record['reason']})" if record.get("reason") else ""
        log.info(
            "trial %d %s%s%s params %s in %.1fs; %s; finished %d/%d",
            record["number"], record["state"], value, reason, json.dumps(record["params"]),
            record["seconds"], best_text, counts.finished, self.budget,
        )
