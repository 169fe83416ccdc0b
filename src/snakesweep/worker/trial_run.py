"""One trial, from claim to verdict: sample, render, resume or train (with repeats), watch the epochs,
prune, tell."""

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
from snakesweep.launchers import Launcher, TrainingProcess
from snakesweep.objective import MetricMissing, epoch_check, metric_from, objective_values
from snakesweep.optuna_api import StudyStore
from snakesweep.paths import Paths, run_dir
from snakesweep.provenance import provenance
from snakesweep.render import render
from snakesweep.study import StudySpec, reports_to_pruner
from snakesweep.tracking import Listener
from snakesweep.logs import log_tail
from snakesweep.trialfiles import EpochWatcher, epoch_file, write_json
from snakesweep.worker.allowance import Allowance
from snakesweep.worker.epoch_news import EpochNews
from snakesweep.worker.liveness import Liveness, StopSignals
from snakesweep.worker.resume import Resumed, Resumer, Run
from snakesweep.worker.weights import WeightKeeper

log = logging.getLogger("snakesweep.worker")


class TrialFailed(Exception):
    """The trainer crashed or left no usable metric: the trial fails, the worker goes on."""


class TrialRun:
    """Runs one trial of the study for a worker; `run()` returns the trial's record, or None."""

    def __init__(self, config: Mapping[str, Any], spec: StudySpec, store: StudyStore, launcher: Launcher,
                 liveness: Liveness, signals: StopSignals, allowance: Allowance, weights: WeightKeeper, *,
                 worker: int, threads: int, tracker: Listener | None = None) -> None:
        self.config = config
        self.spec = spec
        self.store = store
        self.launcher = launcher
        self.liveness = liveness
        self.signals = signals
        self.weights = weights
        self.worker = worker
        self.threads = threads
        self.allowance = allowance
        self.tracker = tracker or Listener()
        self.epochs = 0  # trained by the current trial, over its repeats (not those carried over)
        self.trained_until: float | None = None  # when its trainer ended
        self.paths = Paths.of(config)
        self.poll_s = config["workers"]["poll_s"]
        self.grace_s = config["launcher"]["grace_s"]
        self.resumer = Resumer(launcher, self.paths, spec.name, config["trials"]["keep_weights"])

    def run(self) -> dict[str, Any] | None:
        trial = self.store.ask()
        try:
            # Beats from the claim on: a worker starved of CPU on its way to training is not taken for dead.
            with self.liveness.heartbeat(trial):
                return self._claim_and_train(trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker took this trial for stale (its heartbeats were late: a suspended
            # machine, a long outage) and failed and requeued it; the requeued copy will be trained.
            log.warning("trial %d was failed by another worker, which found its heartbeat late; "
                        "it is queued again", trial.number)
            return None

    def _claim_and_train(self, trial: optuna.Trial) -> dict[str, Any] | None:
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
            record.update(state="FAIL", reason=str(error))
            raise
        except storages.StorageUnreachable:
            record.update(state="FAIL", reason="the storage stayed unreachable")
            raise  # the trial cannot be told; the next run finds it stale and redoes it
        except UserError as error:
            self._fail(trial, str(error), directory)
            record.update(state="FAIL", reason=str(error))
        except Interrupted as interrupted:
            record.update(state="FAIL", reason=f"worker interrupted by {interrupted}")
            self.store.set_system_attr(trial, vocabulary.INTERRUPTED, str(interrupted))
            self._fail(trial, record["reason"], directory, requeue=True)
            raise
        else:
            if self.spec.several:
                self.store.tell(trial, value)
                record.update(state="COMPLETE", value=dict(zip(self.spec.metrics, value)))
            else:
                self.store.tell(trial, value[0])
                record.update(state="COMPLETE", value=value[0])
        finally:
            record["seconds"] = round(time.monotonic() - started, 2)
            self.tracker.trial_finished(trial.number, record)
        record["params"] = trial.params
        return record

    def _timed_train(self, trial: optuna.Trial, directory: Path) -> list[float]:
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

    def _train(self, trial: optuna.Trial, directory: Path) -> list[float]:
        """The trial's value of each objective: over `study.repeats`, the mean of each."""
        params = self.store.suggest(trial, self.spec.space.suggest)
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        system_attrs = self.store.system_attrs(trial)
        original = system_attrs.get(vocabulary.FAILED_TRIAL, trial.number)
        attempts = vocabulary.earlier_attempts(system_attrs)
        base_seed = self.config["study"]["seed"] * 100_003 + original * 101
        write_json(directory / "params.json", params)
        record = provenance(trial=trial.number, worker=self.worker)
        write_json(directory / "provenance.json", record)
        self.tracker.trial_started(trial.number, params, directory, worker=self.worker,
                                   retry_of=original if original != trial.number else None)
        repeats = self.config["study"]["repeats"]
        values = []
        for repeat in range(repeats):
            if repeat and not self.allowance.grant_epoch(trial, self.epochs):
                self._pruned(trial, None, "budget", "by the epochs budget before its next repeat")
            if repeat and self.allowance.seconds_left() <= 0:
                self._pruned(trial, None, "budget", "by the hours budget before its next repeat")
            run = run_dir(directory, repeat, repeats)
            run.mkdir(exist_ok=True)
            seed = base_seed + repeat
            (run / "seed").write_text(f"{seed}\n")
            config = self.render(params, seed)
            write_json(run / "config.json", config)
            resumed = None
            if attempts:
                resumed = self.resumer.resume(trial.number, attempts, run, str(run.relative_to(directory)),
                                              Run(params, seed, config))
            if resumed is not None:  # with repeats: where the last run that had a checkpoint continued
                self.store.set_user_attr(trial, vocabulary.RESUMED_FROM_EPOCH, resumed.epoch)
                record.update(resumed_from_epoch=resumed.epoch, resumed_from_trial=resumed.from_trial)
                write_json(directory / "provenance.json", record)
            values.append(self._train_once(trial, run / "config.json", run, repeat, resumed))
        return [sum(column) / len(column) for column in zip(*values)]

    def render(self, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
        """The trial's config: the Jsonnet with its params, then the seed, the device and model.overrides."""
        model = self.config["model"]
        overrides = self.launcher.run_overrides(seed, model["seed_keys"], model["overrides"])
        overrides.update(model["overrides"])
        return render(model["config"], params, style=model["style"], overrides=overrides, strict=model["strict"])

    def _train_once(self, trial: optuna.Trial, config_path: Path, run_dir: Path, repeat: int,
                    resumed: Resumed | None) -> list[float]:
        """Train one run, reporting each epoch; between epochs, the pruner and the budgets may stop it."""
        objective = self.config["objective"]
        prune = repeat == 0 and reports_to_pruner(self.spec, self.config)  # the pruner follows the first run
        intermediate = objective["intermediate"] if prune else None
        check = epoch_check(objective, report=prune, final_key_in_epochs=self.launcher.final_key_in_epoch_files,
                            metrics=self.spec.metrics)
        carried = resumed.carried if resumed else {}
        if intermediate:  # the pruner sees one curve: the epochs carried over first, as if just trained
            for epoch, metrics in sorted(carried.items()):
                if self._report(trial, intermediate, metrics, epoch, run_dir):
                    self._pruned(trial, epoch, "pruner", f"at epoch {epoch}")
        news = EpochNews(run_dir)  # watching before the trainer starts
        try:
            process = self.launcher.start(config_path, run_dir, trial_number=trial.number,
                                          log_path=run_dir / "train.log", threads=self.threads, env={},
                                          resume_epoch=resumed.epoch if resumed else 0, wait_for_verdicts=True)
        except BaseException:
            news.close()
            raise
        news.follow(process)
        watcher = EpochWatcher(run_dir, seen=carried)
        last: int | None = None
        left = self.allowance.seconds_left()
        try:
            while True:
                code = news.wait(max(0.0, min(self.poll_s, left)))  # wake when the hours run out
                self.signals.check()
                new = watcher.new_epochs()
                trained = self.epochs + len(new)  # all the trainer finished by now, for the budgets
                for epoch, metrics in new:
                    self.epochs += 1
                    last = epoch
                    self.tracker.epoch(trial.number, epoch, metrics, run_dir=run_dir, repeat=repeat)
                    try:
                        check(metrics, str(epoch_file(run_dir, epoch)))
                    except ValueError as error:  # NaN, inf, not a number: the trainer is stopped below
                        # Its epochs end at the one that diverged: those after it are no results.
                        self.store.set_user_attr(trial, vocabulary.EPOCHS, self.epochs)
                        raise TrialFailed(str(error)) from None
                    if intermediate and self._report(trial, intermediate, metrics, epoch, run_dir):
                        self.epochs = trained
                        self._stop(process, watcher, trial, epoch, "pruner", f"at epoch {epoch}")
                if new and code is None and not self.allowance.grant_epoch(trial, self.epochs):
                    # Unless that was its last epoch and it is about to end on its own.
                    if not news.ends_on_its_own(self.poll_s):
                        self._stop(process, watcher, trial, last, "budget", f"by the epochs budget after epoch {last}")
                # Judged by the pruner and the epochs budget: a trainer waiting at its epoch's end trains
                # the next one while the count below is written (the hours budget may still stop it).
                news.go_on()
                if new:
                    self.store.set_user_attr(trial, vocabulary.EPOCHS, self.epochs)
                left = self.allowance.seconds_left()
                if left <= 0 and process.poll() is None:
                    self._stop(process, watcher, trial, last, "budget", "by the hours budget")
                if code is not None:
                    break
            if code < 0:  # killed by a signal: one that reached this worker too (a job's end) comes first
                self.signals.check_soon()
        finally:
            process.stop(self.grace_s)
            news.close()
            self.trained_until = time.time()
        self.allowance.release(trial, self.epochs)
        if code != 0:
            raise TrialFailed(f"the trainer exited with status {code}")
        try:
            return objective_values(run_dir, objective, self.spec.metrics, self.spec.directions)
        except ValueError as error:
            raise TrialFailed(str(error)) from None

    def _report(self, trial: optuna.Trial, key: str, metrics: Mapping[str, Any], epoch: int, run_dir: Path) -> bool:
        """Report one epoch to the pruner; whether it stops the trial there."""
        return self.store.report(trial, metric_from(metrics, key, str(epoch_file(run_dir, epoch))), epoch)

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
        if not requeue:
            self.store.set_system_attr(trial, vocabulary.GAVE_UP, True)
        self.store.tell(trial, state=TrialState.FAIL)
        if requeue:
            self.weights.before_requeue(trial.number)
            self.store.requeue(trial, always=True)
