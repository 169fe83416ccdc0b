"""A worker: runs trials until the study holds its budget of finished trials, counted over all workers.

Exactness without a lock: a worker claims a trial by creating it (trial numbers are handed out in
creation order by every storage), then counts the finished trials and the claims older than its
own. If those already fill the budget, its claim is surplus: it is closed at once, marked, and never
trained. A trial is trained only if every older claim could finish and the total would still not
exceed the budget, so the study never holds more finished trials than asked for.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from snakesweep import layout
from snakesweep import storage as storages
from snakesweep.errors import Interrupted, UserError
from snakesweep.launchers import Launcher, make_launcher
from snakesweep.objective import MetricMissing, metric_from, objective_value
from snakesweep.provenance import provenance
from snakesweep.render import render
from snakesweep.study import StudySpec, load_study, n_trials, study_spec
from snakesweep.trialfiles import EpochWatcher, write_json

log = logging.getLogger("snakesweep.worker")

ATTR_SURPLUS = "snakesweep:surplus"
ATTR_HEARTBEAT = "snakesweep:heartbeat"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
LOG_TAIL_LINES = 40


class TrialFailed(Exception):
    """The trainer crashed or left no usable metric: the trial fails, the worker goes on."""


@dataclass
class Counts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


def is_surplus(trial: FrozenTrial) -> bool:
    return bool(trial.system_attrs.get(ATTR_SURPLUS))


def count_trials(trials: list[FrozenTrial]) -> Counts:
    counts = Counts()
    for trial in trials:
        if is_surplus(trial):
            continue
        name = {
            TrialState.COMPLETE: "complete",
            TrialState.PRUNED: "pruned",
            TrialState.FAIL: "failed",
            TrialState.RUNNING: "running",
            TrialState.WAITING: "waiting",
        }[trial.state]
        setattr(counts, name, getattr(counts, name) + 1)
    return counts


def claim_is_surplus(number: int, trials: list[FrozenTrial], budget: int) -> bool:
    """True when the finished trials and the claims older than `number` already fill the budget."""
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    older_claims = sum(
        t.number < number and t.state in (TrialState.RUNNING, TrialState.WAITING) and not is_surplus(t)
        for t in trials
    )
    return finished + older_claims >= budget


def limit_threads(threads: int) -> None:
    """Cap BLAS/OpenMP threads before torch is imported, so N workers on N cores do not oversubscribe."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


def visible_gpu() -> bool:
    """Whether a GPU is visible, judged without initialising CUDA in a process that forks trials."""
    devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    if devices is not None:
        return devices.strip() not in ("", "-1")
    return Path("/proc/driver/nvidia/gpus").is_dir() and any(Path("/proc/driver/nvidia/gpus").iterdir())


def last_sign_of_life(trial: FrozenTrial) -> float:
    """When a running trial was last known alive: its newest heartbeat, or its claim.

    The claim counts too because a requeued trial inherits the failed one's system attributes,
    heartbeat included (Optuna's retry callback copies them): popped again, it would look stale
    until its new worker's first beat.
    """
    return max(trial.system_attrs.get(ATTR_HEARTBEAT, 0.0), trial.datetime_start.timestamp())


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])[-4000:]



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
        self.url = storages.storage_url(self.config)
        self.heartbeat_s = self.config["study"]["heartbeat_s"]
        self.storage: BaseStorage = storages.open_storage(self.url, heartbeat_s=self.heartbeat_s)
        self.study = load_study(self.config, self.spec, worker=self.index, storage=self.storage)
        self.launcher: Launcher = make_launcher(self.config["launcher"])
        self.ran: list[dict[str, Any]] = []
        self.signals = _StopSignals()

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run trials until the study holds `budget` finished trials; return the worker's summary."""
        # We drive heartbeats ourselves around ask/tell; Optuna warns as if we forgot them.
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used", UserWarning)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self._assign_gpu()
        limit_threads(self.threads)
        self.launcher.prepare()
        started = time.monotonic()
        time_limit = self.workers_cfg["time_limit_min"]
        consecutive_failures = 0
        with self.signals.installed():
            self._recover_own_stale_trials()
            while True:
                self.signals.check()
                trials = self._trials_after_stale_check()
                counts = count_trials(trials)
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
                record = self._run_one_trial()
                if record is None:
                    continue
                self.ran.append(record)
                if record["state"] == "FAIL":
                    consecutive_failures += 1
                    if consecutive_failures >= self.workers_cfg["max_failures"]:
                        raise UserError(
                            f"{consecutive_failures} trials in a row failed; the last: {record['reason']} "
                            f"(log: {record['log']})",
                            file="config",
                            field="workers.max_failures",
                            fix="fix the trainer or the config, then run again",
                        )
                else:
                    consecutive_failures = 0
        return self.summary()

    def summary(self) -> dict[str, Any]:
        counts = count_trials(self._safely(self.study.get_trials, deepcopy=False))
        return {
            "study": self.spec.name,
            "worker": self.index,
            "budget": self.budget,
            "finished": counts.finished,
            "counts": counts.__dict__,
            "trials": self.ran,
        }

    # -- one trial --------------------------------------------------------------------------
    def _run_one_trial(self) -> dict[str, Any] | None:
        trial = self._safely(self.study.ask)
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
        self._safely(self.storage.set_trial_system_attr, trial._trial_id, ATTR_HEARTBEAT, time.time())
        self._safely(trial.set_user_attr, "worker", self.index)
        if claim_is_surplus(trial.number, self._safely(self.study.get_trials, deepcopy=False), self.budget):
            self._safely(self.storage.set_trial_system_attr, trial._trial_id, ATTR_SURPLUS, True)
            self._tell(trial, state=TrialState.FAIL)
            return None
        started = time.monotonic()
        directory = layout.trial_dir(self.config, self.spec.name, trial.number)
        record: dict[str, Any] = {"number": trial.number, "log": str(directory / "train.log")}
        with self._heartbeat(trial._trial_id):
            try:
                value = self._train(trial, directory)
            except optuna.TrialPruned as pruned:
                self._tell(trial, state=TrialState.PRUNED)
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
                self._fail(trial, f"worker interrupted by {interrupted}", directory, retry=True)
                raise
            else:
                self._tell(trial, value)
                record.update(state="COMPLETE", value=value)
        record["seconds"] = round(time.monotonic() - started, 2)
        record["params"] = trial.params
        self._log_finished(record)
        return record

    def _train(self, trial: optuna.Trial, directory: Path) -> float:
        params = self._suggest(trial)
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        original = self._safely(self.storage.get_trial_system_attrs, trial._trial_id).get("failed_trial", trial.number)
        base_seed = self.config["study"]["seed"] * 100_003 + original * 101
        write_json(directory / "params.json", params)
        write_json(directory / "provenance.json", provenance(trial=trial.number, worker=self.index))
        repeats = self.config["study"]["repeats"]
        values = []
        for repeat in range(repeats):
            run_dir = directory if repeats == 1 else directory / f"repeat-{repeat}"
            run_dir.mkdir(exist_ok=True)
            seed = base_seed + repeat
            (run_dir / "seed").write_text(f"{seed}\n")
            config_path = run_dir / "config.json"
            write_json(config_path, self._render(params, seed))
            values.append(self._train_once(trial, config_path, run_dir, prune=repeat == 0))
        return sum(values) / len(values)

    def _suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample the trial's parameters, riding out an outage like any other storage call.

        A retry must not sample again a parameter whose write reached the server before the
        connection broke (its row exists; a second insert would be refused): Optuna answers from
        its cached copy of the trial, so that copy is brought up to date first.
        """
        first = True

        def attempt() -> dict[str, Any]:
            nonlocal first
            if not first:
                stored = self.storage.get_trial(trial._trial_id)
                trial._cached_frozen_trial.params.update(stored.params)
                trial._cached_frozen_trial.distributions.update(stored.distributions)
            first = False
            return self.spec.space.suggest(trial)

        return self._safely(attempt)

    def _render(self, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
        model = self.config["model"]
        overrides = {key: seed for key in model["seed_keys"]}
        if self.config["launcher"]["type"] == "allennlp" and "trainer.cuda_device" not in model["overrides"]:
            overrides["trainer.cuda_device"] = 0 if visible_gpu() else -1
        overrides.update(model["overrides"])
        return render(model["config"], params, style=model["style"], overrides=overrides, strict=model["strict"])

    def _train_once(self, trial: optuna.Trial, config_path: Path, run_dir: Path, prune: bool) -> float:
        log_path = run_dir / "train.log"
        objective = self.config["objective"]
        intermediate = objective["intermediate"]
        process = self.launcher.start(
            config_path, run_dir, trial_number=trial.number, log_path=log_path, threads=self.threads, env={}
        )
        watcher = EpochWatcher(run_dir)
        epochs = 0
        try:
            while True:
                code = process.wait(timeout=self.workers_cfg["poll_s"])
                self.signals.check()
                for epoch, metrics in watcher.new_epochs():
                    epochs += 1
                    if not (prune and intermediate):
                        continue
                    where = str(run_dir / f"metrics_epoch_{epoch}.json")
                    self._safely(trial.report, metric_from(metrics, intermediate, where), epoch)
                    if self._safely(trial.should_prune):
                        process.stop(self.config["launcher"]["grace_s"])
                        self._safely(trial.set_user_attr, "pruned_at_epoch", epoch)
                        self._safely(trial.set_user_attr, "epochs", epochs)
                        raise optuna.TrialPruned(f"at epoch {epoch}")
                if code is not None:
                    break
        finally:
            process.stop(self.config["launcher"]["grace_s"])
        self._safely(trial.set_user_attr, "epochs", trial.user_attrs.get("epochs", 0) + epochs)
        if code != 0:
            raise TrialFailed(f"the trainer exited with status {code}")
        try:
            return objective_value(run_dir, objective, self.spec.direction)
        except ValueError as error:
            raise TrialFailed(str(error)) from None

    def _fail(self, trial: optuna.Trial, reason: str, directory: Path, retry: bool = False) -> None:
        self._safely(trial.set_user_attr, "fail_reason", reason[:1000])
        tail = log_tail(directory / "train.log")
        if tail:
            self._safely(trial.set_user_attr, "log_tail", tail)
        self._tell(trial, state=TrialState.FAIL)
        if retry:
            self._retry(self._safely(self.study._storage.get_trial, trial._trial_id))

    def _tell(self, trial: optuna.Trial, *args: Any, **kwargs: Any) -> None:
        # skip_if_finished: a tell retried after a lost connection may have gone through already.
        self._safely(self.study.tell, trial, *args, skip_if_finished=True, **kwargs)

    def _safely(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        """A storage call that outlives a server restart of up to twice the heartbeat interval."""
        return storages.through_outages(call, *args, within_s=max(30.0, 2.0 * self.heartbeat_s), **kwargs)

    def _retry(self, frozen: FrozenTrial) -> None:
        """Queue the same parameters again: a killed or interrupted trial is redone, not lost."""
        self._safely(storages.retry_callback(), self.study, frozen)

    # -- crashes ----------------------------------------------------------------------------
    def _recover_own_stale_trials(self) -> None:
        """Trials this worker index left RUNNING belong to a killed predecessor: fail and requeue them."""
        for trial in self._safely(self.study.get_trials, deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("worker") == self.index and not is_surplus(trial):
                self._fail_stale(trial, "its worker was killed")

    def _fail_stale(self, trial: FrozenTrial, reason: str) -> None:
        try:
            self._safely(self.storage.set_trial_user_attr, trial._trial_id, "fail_reason", reason)
            failed = self._safely(self.storage.set_trial_state_values, trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            failed = False  # another worker (or a heartbeat check) got there first
        if failed:
            log.warning("trial %d: %s; its parameters are queued again", trial.number, reason)
            self._retry(self._safely(self.study._storage.get_trial, trial._trial_id))

    def _trials_after_stale_check(self) -> list[FrozenTrial]:
        """Fail and requeue trials whose worker is gone: Optuna's RDB heartbeats, then our own
        heartbeat attribute on every storage (it also covers a claim killed before its first beat)."""
        if isinstance(self.storage, RDBStorage):
            self._safely(optuna.storages.fail_stale_trials, self.study)
        trials = self._safely(self.study.get_trials, deepcopy=False)
        deadline = time.time() - 2 * self.heartbeat_s
        stale = [
            t for t in trials
            if t.state == TrialState.RUNNING and not is_surplus(t) and last_sign_of_life(t) < deadline
        ]
        for trial in stale:
            self._fail_stale(trial, "its worker stopped sending heartbeats")
        return self._safely(self.study.get_trials, deepcopy=False) if stale else trials

    @contextmanager
    def _heartbeat(self, trial_id: int) -> Iterator[None]:
        """Keep the trial alive while it trains: RDB heartbeats, or a timestamp attribute elsewhere."""
        stop = threading.Event()

        def beat() -> None:
            if isinstance(self.storage, RDBStorage):
                self.storage.record_heartbeat(trial_id)
            self.storage.set_trial_system_attr(trial_id, ATTR_HEARTBEAT, time.time())

        def loop() -> None:
            while not stop.wait(self.heartbeat_s):
                try:
                    beat()
                except Exception as error:  # a restarting server: the next beat will do
                    log.warning("heartbeat failed: %s", storages.mask_text(str(error), self.url))

        self._safely(beat)
        thread = threading.Thread(target=loop, name="heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # -- reporting --------------------------------------------------------------------------
    def _assign_gpu(self) -> None:
        gpu_ids = self.workers_cfg["gpu_ids"]
        if gpu_ids and (os.environ.get("SLURM_JOB_GPUS") or os.environ.get("SLURM_STEP_GPUS")):
            log.warning("workers.gpu_ids is ignored: Slurm assigned this job its GPU (CUDA_VISIBLE_DEVICES=%s)",
                        os.environ.get("CUDA_VISIBLE_DEVICES"))
            return
        if gpu_ids:
            os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_ids[self.index % len(gpu_ids)])

    def _log_finished(self, record: Mapping[str, Any]) -> None:
        trials = self._safely(self.study.get_trials, deepcopy=False)  # one read for the best and the counts
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        pick = max if self.spec.direction == "maximize" else min
        best = pick(complete, key=lambda t: t.value) if complete else None
        best_text = f"best {best.value:.6g} (trial {best.number})" if best else "best -"
        counts = count_trials(trials)
        value = f" value {record['value']:.6g}" if "value" in record else ""
        reason = f" ({record['reason']})" if record.get("reason") else ""
        log.info(
            "trial %d %s%s%s params %s in %.1fs; %s; finished %d/%d",
            record["number"], record["state"], value, reason, json.dumps(record["params"]),
            record["seconds"], best_text, counts.finished, self.budget,
        )


class _StopSignals:
    """Remember SIGINT/SIGTERM instead of raising at an arbitrary bytecode; the loops check it."""

    def __init__(self) -> None:
        self.received: int | None = None

    def check(self) -> None:
        if self.received is not None:
            raise Interrupted(self.received)

    @contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, _frame: Any) -> None:
            self.received = signum

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)


def run_worker(config: Mapping[str, Any], index: int, *, threads: int | None = None,
               summary_path: str | Path | None = None) -> dict[str, Any]:
    """Entry point of the workflow's worker rule and of `snakesweep worker`."""
    summary = Worker(config, index, threads).run()
    if summary_path is not None:
        path = Path(summary_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, summary)
    return summary
