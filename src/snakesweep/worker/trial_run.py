"""One trial, from claim to verdict: sample, render, train (with repeats), watch the epochs, prune, tell."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import optuna
from optuna.trial import TrialState

from snakesweep import storage as storages
from snakesweep import trials as vocabulary
from snakesweep.errors import Interrupted, UserError
from snakesweep.launchers import Launcher
from snakesweep.launchers.process import TrainingProcess
from snakesweep.objective import MetricMissing, metric_from, objective_value
from snakesweep.optuna_api import StudyStore
from snakesweep.paths import Paths
from snakesweep.provenance import provenance
from snakesweep.render import render
from snakesweep.study import StudySpec
from snakesweep.trialfiles import EpochWatcher, log_tail, write_json
from snakesweep.worker.allowance import Allowance
from snakesweep.worker.liveness import Liveness, StopSignals

log = logging.getLogger("snakesweep.worker")


class TrialFailed(Exception):
    """The trainer crashed or left no usable metric: the trial fails, the worker goes on."""


class TrialRun:
    """Runs one trial of the study for a worker; `run()` returns the trial's record, or None."""

    def __init__(self, config: Mapping[str, Any], spec: StudySpec, store: StudyStore, launcher: Launcher,
                 liveness: Liveness, signals: StopSignals, allowance: Allowance, *, worker: int, threads: int) -> None:
        self.config = config
        self.spec = spec
        self.store = store
        self.launcher = launcher
        self.liveness = liveness
        self.signals = signals
        self.worker = worker
        self.threads = threads
        self.allowance = allowance
        self.epochs = 0  # trained by the current trial, over its repeats
        self.trained_until: float | None = None  # when its trainer ended
        self.paths = Paths.of(config)
        self.poll_s = config["workers"]["poll_s"]
        self.grace_s = config["launcher"]["grace_s"]

    def run(self) -> dict[str, Any] | None:
        trial = self.store.ask()
        try:
            return self._claim_and_train(trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker took this trial for stale (its heartbeats were late: a suspended
            # machine, a long outage) and failed and requeued it; the requeued copy will be trained.
            log.warning("trial %d was failed by another worker, which found its heartbeat late; "
                        "it is queued again", trial.number)
            return None

    def _claim_and_train(self, trial: optuna.Trial) -> dict[str, Any] | None:
        # Marked at once: a claim whose worker dies right here is found stale like any other.
        self.store.set_system_attr(trial, vocabulary.HEARTBEAT, time.time())
        self.store.set_user_attr(trial, vocabulary.WORKER, self.worker)
        if self.allowance.refuse_claim(trial) is not None:
            self.store.set_system_attr(trial, vocabulary.SURPLUS, True)
            self.store.tell(trial, state=TrialState.FAIL)
            return None
        self.epochs = 0
        self.trained_until = None
        started = time.monotonic()
        directory = self.paths.trial_dir(self.spec.name, trial.number)
        record: dict[str, Any] = {"number": trial.number, "log": str(directory / "train.log")}
        with self.liveness.heartbeat(trial):
            try:
                value = self._timed_train(trial, directory)
            except optuna.TrialPruned as pruned:
                self.store.tell(trial, state=TrialState.PRUNED)
                record.update(state="PRUNED", reason=str(pruned))
            except TrialFailed as failure:
                self._fail(trial, str(failure), directory)
                record.update(state="FAIL", reason=str(failure))
            except MetricMissing as error:
                self._fail(trial, str(error), directory)
                raise
            except storages.StorageUnreachable:
                raise  # the trial cannot be told; the next run finds it stale and redoes it
            except UserError as error:
                self._fail(trial, str(error), directory)
                record.update(state="FAIL", reason=str(error))
            except Interrupted as interrupted:
                self._fail(trial, f"worker interrupted by {interrupted}", directory, requeue=True)
                raise
            else:
                self.store.tell(trial, value)
                record.update(state="COMPLETE", value=value)
        record["seconds"] = round(time.monotonic() - started, 2)
        record["params"] = trial.params
        return record

    def _timed_train(self, trial: optuna.Trial, directory: Path) -> float:
        """Train, then record the training time (for the hours budget) whatever the outcome."""
        try:
            value = self._train(trial, directory)
        except (storages.StorageUnreachable, optuna.exceptions.UpdateFinishedTrialError):
            raise  # the trial can no longer be written to
        except BaseException:
            self._record_time(trial)
            raise
        self._record_time(trial)
        return value

    def _train(self, trial: optuna.Trial, directory: Path) -> float:
        params = self.store.suggest(trial, self.spec.space.suggest)
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        original = self.store.system_attrs(trial).get(vocabulary.FAILED_TRIAL, trial.number)
        base_seed = self.config["study"]["seed"] * 100_003 + original * 101
        write_json(directory / "params.json", params)
        write_json(directory / "provenance.json", provenance(trial=trial.number, worker=self.worker))
        repeats = self.config["study"]["repeats"]
        values = []
        for repeat in range(repeats):
            if repeat and not self.allowance.grant_epoch(trial, self.epochs):
                self._pruned(trial, None, "budget", "by the epochs budget before its next repeat")
            if repeat and self.allowance.seconds_left() <= 0:
                self._pruned(trial, None, "budget", "by the hours budget before its next repeat")
            run_dir = directory if repeats == 1 else directory / f"repeat-{repeat}"
            run_dir.mkdir(exist_ok=True)
            seed = base_seed + repeat
            (run_dir / "seed").write_text(f"{seed}\n")
            config_path = run_dir / "config.json"
            write_json(config_path, self.render(params, seed))
            values.append(self._train_once(trial, config_path, run_dir, prune=repeat == 0))
        return sum(values) / len(values)

    def render(self, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
        """The trial's config: the Jsonnet with its params, then the seed, the device and model.overrides."""
        model = self.config["model"]
        overrides = self.launcher.run_overrides(seed, model["seed_keys"], model["overrides"])
        overrides.update(model["overrides"])
        return render(model["config"], params, style=model["style"], overrides=overrides, strict=model["strict"])

    def _train_once(self, trial: optuna.Trial, config_path: Path, run_dir: Path, prune: bool) -> float:
        """Train one run, reporting each epoch; between epochs, the pruner and the budgets may stop it."""
        objective = self.config["objective"]
        intermediate = objective["intermediate"] if prune else None
        process = self.launcher.start(config_path, run_dir, trial_number=trial.number,
                                      log_path=run_dir / "train.log", threads=self.threads, env={})
        watcher = EpochWatcher(run_dir)
        last: int | None = None
        left = self.allowance.seconds_left()
        try:
            while True:
                code = process.wait(timeout=max(0.0, min(self.poll_s, left)))  # wake when the hours run out
                self.signals.check()
                new = watcher.new_epochs()
                self.epochs += len(new)
                for epoch, metrics in new:
                    last = epoch
                    if not intermediate:
                        continue
                    value = metric_from(metrics, intermediate, str(run_dir / f"metrics_epoch_{epoch}.json"))
                    if self.store.report(trial, value, epoch):
                        self._stop(process, watcher, trial, epoch, "pruner", f"at epoch {epoch}")
                if new and code is None and not self.allowance.grant_epoch(trial, self.epochs):
                    # Unless that was its last epoch and it is about to end on its own.
                    if process.wait(timeout=self.poll_s) is None:
                        self._stop(process, watcher, trial, last, "budget", f"by the epochs budget after epoch {last}")
                if new:
                    self.store.set_user_attr(trial, vocabulary.EPOCHS, self.epochs)
                left = self.allowance.seconds_left()
                if left <= 0 and process.poll() is None:
                    self._stop(process, watcher, trial, last, "budget", "by the hours budget")
                if code is not None:
                    break
        finally:
            process.stop(self.grace_s)
            self.trained_until = time.time()
        self.allowance.release(trial, self.epochs)
        if code != 0:
            raise TrialFailed(f"the trainer exited with status {code}")
        try:
            return objective_value(run_dir, objective, self.spec.direction)
        except ValueError as error:
            raise TrialFailed(str(error)) from None

    def _stop(self, process: TrainingProcess, watcher: EpochWatcher, trial: optuna.Trial, epoch: int | None,
              by: str, why: str) -> NoReturn:
        """Stop the trainer; the epochs it finished meanwhile count as trained too."""
        process.stop(self.grace_s)
        self.trained_until = time.time()
        self.epochs += len(watcher.new_epochs())
        self._pruned(trial, epoch, by, why)

    def _record_time(self, trial: optuna.Trial) -> None:
        """The trial's training time, for the hours budget: the claim to the trainer's end."""
        end = self.trained_until if self.trained_until is not None else time.time()
        self.store.set_user_attr(trial, vocabulary.TRAIN_S, round(end - trial.datetime_start.timestamp(), 3))

    def _pruned(self, trial: optuna.Trial, epoch: int | None, by: str, why: str) -> NoReturn:
        if epoch is not None:
            self.store.set_user_attr(trial, vocabulary.PRUNED_AT_EPOCH, epoch)
        self.store.set_user_attr(trial, vocabulary.PRUNE_REASON, by)
        self.store.set_user_attr(trial, vocabulary.EPOCHS, self.epochs)
        raise optuna.TrialPruned(why)

    def _fail(self, trial: optuna.Trial, reason: str, directory: Path, requeue: bool = False) -> None:
        self.store.set_user_attr(trial, vocabulary.FAIL_REASON, reason[:1000])
        tail = log_tail(directory / "train.log")
        if tail:
            self.store.set_user_attr(trial, vocabulary.LOG_TAIL, tail)
        self.store.tell(trial, state=TrialState.FAIL)
        if requeue:
            self.store.requeue(trial)
