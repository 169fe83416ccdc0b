"""What the worker and the final steps report to tracking, and the journal that records it for MLflow."""

from __future__ import annotations

import logging
import math
import re
import select
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from snakesweep.tracking.journal import Journal, journals

log = logging.getLogger("snakesweep.tracking")
_NOT_IN_A_KEY = re.compile(r"[^\w./ :-]")
# The longest a step waits at its end for its shipper; what is left is shipped by a later step. A
# worker waits briefly (select catches up after the workers); the catch-up steps wait longer.
SHIPPER_WAIT_S = {"live": 15.0, "at_close": 120.0}


class Listener:
    """Tracking switched off: every report goes nowhere. JournalListener records them for MLflow."""

    def study_created(self, params: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        pass

    def trial_started(self, number: int, params: Mapping[str, Any], directory: Path, *, worker: int,
                      retry_of: int | None = None) -> None:
        pass

    def epoch(self, number: int, epoch: int, metrics: Mapping[str, Any], *, run_dir: Path, repeat: int = 0) -> None:
        pass

    def trial_finished(self, number: int, record: Mapping[str, Any]) -> None:
        pass

    def seed_tested(self, seed: int, params: Mapping[str, Any], metrics: Mapping[str, Any], model_dir: Path,
                    epochs: Mapping[int, Mapping[str, Any]]) -> None:
        pass

    def selected(self, summary: Mapping[str, Any], states: Mapping[int, str]) -> None:
        pass

    def tested(self, aggregate: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def numeric(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers among `metrics`, under keys MLflow accepts."""
    return {
        prefix + _NOT_IN_A_KEY.sub("_", str(key)): float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


class JournalListener(Listener):
    """Appends each report to the step's journal; a shipper process sends them to MLflow.

    ship: "live" starts the shipper at once and follows the journal (a worker); "at_close" ships every
    journal of the study when the step ends (select, test_metrics: a catch-up point); "never" leaves
    it to a later step (evaluate runs on compute nodes beside other seeds).
    """

    def __init__(self, journal: Journal, *, metric: str, ship: str) -> None:
        self.journal = journal
        self.metric = metric
        self.ship = ship
        self._resume: dict[int, tuple[Path, int]] = {}
        self._shipper = self._start_shipper([journal.path], follow=True) if ship == "live" else None

    def study_created(self, params: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        self.journal.write("study", params=dict(params), tags=dict(tags))

    def trial_started(self, number: int, params: Mapping[str, Any], directory: Path, *, worker: int,
                      retry_of: int | None = None) -> None:
        self._resume[number] = (directory, 0)
        self.journal.write("trial_started", number=number, params=dict(params), dir=str(directory.resolve()),
                           worker=worker, retry_of=retry_of)

    def epoch(self, number: int, epoch: int, metrics: Mapping[str, Any], *, run_dir: Path, repeat: int = 0) -> None:
        self._resume[number] = (run_dir, epoch + 1)
        prefix = f"repeat-{repeat}/" if repeat else ""
        self.journal.write("epoch", number=number, epoch=epoch, metrics=numeric(metrics, prefix))

    def trial_finished(self, number: int, record: Mapping[str, Any]) -> None:
        if number not in self._resume:
            return  # never started training: nothing was reported
        run_dir, epochs = self._resume.pop(number)
        value = record.get("value")
        self.journal.write(
            "trial_finished", number=number, state=record.get("state", "FAIL"), reason=record.get("reason"),
            metrics={**self._objectives(value), "duration_s": record.get("seconds", 0.0)},
            resume={"dir": str(run_dir.resolve()), "epoch": epochs},
        )

    def _objectives(self, value: float | Mapping[str, float] | None) -> dict[str, float]:
        """A trial's objective under its metric name; with several objectives, each under its own."""
        if value is None:
            return {}
        return numeric(value) if isinstance(value, Mapping) else {self.metric: value}

    def seed_tested(self, seed: int, params: Mapping[str, Any], metrics: Mapping[str, Any], model_dir: Path,
                    epochs: Mapping[int, Mapping[str, Any]]) -> None:
        self.journal.write("seed_tested", seed=seed, id=uuid.uuid4().hex, params=dict(params),
                           metrics=numeric(metrics, "test_"), dir=str(Path(model_dir).resolve()),
                           epochs={str(epoch): numeric(values) for epoch, values in epochs.items()})

    def selected(self, summary: Mapping[str, Any], states: Mapping[int, str]) -> None:
        counts = {f"trials_{name}": count for name, count in summary["counts"].items()}
        values = summary["values"] if "values" in summary else {summary["metric"]: summary["value"]}
        self.journal.write("selected", metrics={**{f"best_{k}": v for k, v in values.items()}, **counts},
                           tags={"best_trial": summary["trial"], "best_params": summary["params"],
                                 "n_trials": summary["n_trials"]},
                           states={str(number): state for number, state in states.items()})

    def tested(self, aggregate: Mapping[str, Any]) -> None:
        metrics = {**numeric(aggregate["mean"], "test_"), **numeric(aggregate["std"], "test_std_")}
        self.journal.write("tested", metrics=metrics)

    def close(self) -> None:
        self.journal.close()
        if self.ship == "at_close":
            self._shipper = self._start_shipper(journals(self.journal.path.parent), follow=False)
        if self._shipper is None:
            return
        if self._shipper.stdin is not None:
            self._shipper.stdin.close()  # the end of the journal: ship what is left, then exit
            if not select.select([self._shipper.stdout], [], [], 0)[0]:  # not ready: a later step ships
                self._shipper.terminate()
        try:
            self._shipper.wait(timeout=SHIPPER_WAIT_S[self.ship])
        except subprocess.TimeoutExpired:
            self._shipper.terminate()  # what it sent in its last pass is sent again later: harmless
            self._shipper.wait()
            log.info("MLflow logging took longer than %.0f s here; a later step logs the rest",
                     SHIPPER_WAIT_S[self.ship])
        if self._shipper.stdout is not None:
            self._shipper.stdout.close()

    @staticmethod
    def _start_shipper(paths: list[Path], *, follow: bool) -> subprocess.Popen[bytes]:
        # The shipper adds its lines to this step's log file, and inherits stderr.
        logs = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
        command = [sys.executable, "-m", "snakesweep.tracking.shipper", *(["--follow"] if follow else [])]
        for path in logs:
            command += ["--log", path]
        pipe = subprocess.PIPE if follow else subprocess.DEVNULL
        return subprocess.Popen([*command, *map(str, paths)], stdin=pipe, stdout=pipe)
