"""A worker's signs of life and its handling of others' deaths: heartbeats, stale trials, signals."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from snakesweep import storage as storages
from snakesweep import trials as vocabulary
from snakesweep.errors import Interrupted
from snakesweep.optuna_api import StudyStore

log = logging.getLogger("snakesweep.worker")


class StopSignals:
    """Remember SIGINT, SIGTERM or SIGUSR1 (Slurm's notice before a time limit, with `--signal=USR1@...`)
    instead of raising at an arbitrary bytecode; the loops check it."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)

    def __init__(self) -> None:
        self.received: int | None = None

    def check(self) -> None:
        if self.received is not None:
            raise Interrupted(self.received)

    def check_soon(self, within_s: float = 1.0) -> None:
        """Check for up to `within_s` seconds: a signal sent to a whole job may reach the trainer first."""
        deadline = time.monotonic() + within_s
        while True:
            self.check()
            if time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    @contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, _frame: Any) -> None:
            self.received = signum

        previous = {s: signal.signal(s, handler) for s in self.SIGNALS}
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)


class Liveness:
    """Heartbeats for this worker's trial; failing and requeueing the trials of dead workers."""

    def __init__(self, store: StudyStore, worker: int, heartbeat_s: float, url: str,
                 before_requeue: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.worker = worker
        self.heartbeat_s = heartbeat_s
        self.url = url
        self.before_requeue = before_requeue
        self.silence = vocabulary.Silence(heartbeat_s)

    def recover_own_stale_trials(self) -> None:
        """Trials this worker index left RUNNING belong to a killed predecessor: fail and requeue them."""
        for trial in self.store.trials(states=(TrialState.RUNNING,)):
            if trial.user_attrs.get(vocabulary.WORKER) == self.worker and not vocabulary.is_surplus(trial):
                self._fail_stale(trial, "its worker was killed")

    def trials_after_stale_check(self) -> list[FrozenTrial]:
        """The study's trials, after failing and requeueing those whose worker is gone (the stale
        rule of trials.Silence, on every storage; it also covers a claim killed before its first beat)."""
        started = time.monotonic()
        trials = self.store.trials()
        stale = self.silence.stale(trials, started, time.monotonic())
        failed = False
        for trial in stale:
            # Judged on a fresh copy, read in line with the writers: a beat may have landed since.
            started = time.monotonic()
            fresh = self.store.frozen_after_writers(trial)
            if self.silence.confirmed(fresh, time.monotonic() - started):
                failed |= self._fail_stale(trial, f"no new heartbeat from its worker for {self.silence.after_s:g} s")
        return self.store.trials() if failed else trials

    def _fail_stale(self, trial: FrozenTrial, reason: str) -> bool:
        if not self.store.fail_stale(trial, reason, self.before_requeue):
            return False
        log.warning("trial %d: %s; its parameters are queued again", trial.number, reason)
        return True

    @contextmanager
    def heartbeat(self, trial: optuna.Trial) -> Iterator[None]:
        """Keep the trial alive while it trains: a beat at once, then one every heartbeat_s, from a
        thread of its own, so no storage call or wait of the worker's delays a beat."""
        stop = threading.Event()

        def loop() -> None:
            while True:
                try:
                    self.store.beat(trial)
                except optuna.exceptions.UpdateFinishedTrialError:
                    return  # told, or failed as stale by another worker: the worker learns it at its next write
                except Exception as error:  # a restarting server: the next beat will do
                    log.warning("heartbeat failed: %s", storages.mask_text(str(error), self.url))
                if stop.wait(self.heartbeat_s):
                    return

        thread = threading.Thread(target=loop, name="heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
