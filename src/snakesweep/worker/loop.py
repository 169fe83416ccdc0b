"""A worker: runs trials until the study reaches one of its limits, counted over all workers.

Exactness without a lock: a worker claims a trial by creating it (trial numbers are handed out in
creation order by every storage), then applies the budget rules (`budgets.claim_refusal`). A
surplus claim is closed at once, marked, and never trained, so the study never holds more
finished trials than asked for; epochs and hours are granted as trials go (worker/allowance.py).
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
from snakesweep import budgets, pareto
from snakesweep import trials as vocabulary
from snakesweep.errors import UserError
from snakesweep.launchers import Launcher, make_launcher
from snakesweep.optuna_api import StudyStore
from snakesweep.paths import Paths
from snakesweep.process_env import assign_gpu, limit_threads
from snakesweep.study import StudySpec, limits, load_study, study_spec
from snakesweep.tracking import Listener, listening
from snakesweep.budgets import Limits, Usage
from snakesweep.worker.allowance import Allowance
from snakesweep.worker.liveness import Liveness, StopSignals
from snakesweep.worker.trial_run import TrialRun
from snakesweep.worker.weights import WeightKeeper

log = logging.getLogger("snakesweep.worker")


@dataclass
class Worker:
    """One worker job of a sweep."""

    config: Mapping[str, Any]
    index: int = 0
    threads: int | None = None
    spec: StudySpec = field(init=False)
    limits: Limits = field(init=False)

    def __post_init__(self) -> None:
        self.threads = self.threads or self.config["workers"]["threads"]
        self.spec = study_spec(self.config)
        self.limits = limits(self.spec, self.config)
        self.workers_cfg = self.config["workers"]
        url = storages.storage_url(self.config)
        heartbeat_s = self.config["study"]["heartbeat_s"]
        storage = storages.open_storage(url)
        self.study = load_study(self.config, self.spec, worker=self.index, storage=storage)
        self.store = StudyStore(self.study, heartbeat_s, url=url)
        self.launcher: Launcher = make_launcher(self.config["launcher"])
        self.signals = StopSignals()
        self.weights = WeightKeeper(self.store, self.launcher, Paths.of(self.config), self.spec.name,
                                    list(self.spec.directions), self.config["trials"]["keep_weights"])
        self.liveness = Liveness(self.store, self.index, heartbeat_s, url, self.weights.before_requeue)
        self.ran: list[dict[str, Any]] = []
        self.stopped: str | None = None

    def trial_run(self, tracker: Listener | None = None) -> TrialRun:
        allowance = Allowance(self.store, self.limits, self.spec.direction)
        return TrialRun(self.config, self.spec, self.store, self.launcher, self.liveness, self.signals, allowance,
                        self.weights, worker=self.index, threads=self.threads, tracker=tracker)

    def run(self) -> dict[str, Any]:
        """Run trials until the study reaches a limit or patience stops it; return the worker's summary."""
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        assign_gpu(self.workers_cfg["gpu_ids"], self.index)
        limit_threads(self.threads)
        self.launcher.prepare()
        started = time.monotonic()
        with listening(self.config, self.spec.name, f"worker-{self.index}", ship="live") as tracker:
            self._run_trials(self.trial_run(tracker), started)
        return self.summary()

    def _run_trials(self, trial_run: TrialRun, started: float) -> None:
        time_limit = self.workers_cfg["time_limit_min"]
        consecutive_failures = 0
        with self.signals.installed():
            self.liveness.recover_own_stale_trials()
            self.stopped = self._recorded_stop()
            while self.stopped is None:
                self.signals.check()
                trials = self.liveness.trials_after_stale_check()
                usage = budgets.usage(trials, time.time())
                self.stopped = self.limits.reached(usage) or self._patience(trials)
                if self.stopped:
                    break
                if time_limit is not None and time.monotonic() - started > 60 * time_limit:
                    raise UserError(
                        f"worker {self.index} reached its time limit: {self._progress(usage)}",
                        file="config",
                        field="workers.time_limit_min",
                        fix="run the workflow again to continue the study, or raise the limit",
                    )
                if self.limits.full(usage):
                    # What is left is held by running trials; one may still fail, stop early or go stale.
                    time.sleep(self.workers_cfg["poll_s"])
                    continue
                record = trial_run.run()
                if record is None:
                    continue
                self.weights.clean()
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

    def _recorded_stop(self) -> str | None:
        """A patience stop recorded under today's setting stands; under another, it is decided again."""
        recorded = self.store.study_attr(vocabulary.STOPPED)
        if not recorded:
            return None
        if self.limits.patience is not None and budgets.same_patience(recorded, self.limits):
            return "patience"
        self.store.set_study_attr(vocabulary.STOPPED, None)
        return None

    def _patience(self, trials: list[optuna.trial.FrozenTrial]) -> str | None:
        if self.limits.patience is None:
            return None
        stop = budgets.patience_stop(trials, self.spec.direction, self.limits.patience, self.limits.min_delta)
        if stop is None:
            return None
        self.store.set_study_attr(vocabulary.STOPPED, stop)
        log.info("patience: %d finished trials in a row did not beat trial %d's value by more than %g; "
                 "the study stops", stop["patience"], stop["best_trial"], stop["min_delta"])
        return "patience"

    def _progress(self, usage: Usage) -> str:
        """What is spent of each limit: `finished 3/10 trials, 41/100 epochs, 0.2/1 hours`."""
        limit = f"/{self.limits.n_trials}" if self.limits.n_trials is not None else ""
        parts = [f"finished {usage.finished}{limit} trials"]
        if self.limits.epochs is not None:
            parts.append(f"{usage.epochs}/{self.limits.epochs} epochs")
        if self.limits.hours is not None:
            parts.append(f"{usage.seconds / 3600:.3g}/{self.limits.hours:g} hours")
        return ", ".join(parts)

    def summary(self) -> dict[str, Any]:
        trials = self.store.trials()
        counts = vocabulary.count_trials(trials)
        usage = budgets.usage(trials, time.time())
        return {
            "study": self.spec.name,
            "worker": self.index,
            "budget": self.limits.to_dict(),
            "stopped": self.stopped,
            "finished": counts.finished,
            "epochs": usage.epochs,
            "hours": usage.seconds / 3600,
            "counts": counts.__dict__,
            "trials": self.ran,
        }

    def _log_finished(self, record: Mapping[str, Any]) -> None:
        trials = self.store.trials()  # one read for the best and the counts
        if self.spec.several:
            best_text = f"Pareto front {len(pareto.pareto_front(trials, self.spec.directions))} trials"
        else:
            best = vocabulary.best_trial(trials, self.spec.direction)
            best_text = f"best {best.value:.6g} (trial {best.number})" if best else "best -"
        value = ""
        if isinstance(record.get("value"), Mapping):
            value = " values " + ", ".join(f"{name} {v:.6g}" for name, v in record["value"].items())
        elif "value" in record:
            value = f" value {record['value']:.6g}"
        reason = f" ({record['reason']})" if record.get("reason") else ""
        log.info(
            "trial %d %s%s%s params %s in %.1fs; %s; %s",
            record["number"], record["state"], value, reason, json.dumps(record["params"]),
            record["seconds"], best_text, self._progress(budgets.usage(trials, time.time())),
        )
