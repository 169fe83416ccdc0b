"""Continuing an interrupted trial: its requeued copy takes the newest checkpoint an earlier attempt
left, if that checkpoint is whole and was trained on the same run, and carries over its epochs.

A requeued trial has a number of its own, and so a directory of its own; Optuna's retry callback
lists the attempts it continues (`retry_history`). They are searched newest first: an attempt
killed before it took its predecessor's checkpoint left that checkpoint where it was.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakesweep.launchers import Launcher
from snakesweep.launchers.checkpoints import Checkpoint
from snakesweep.paths import Paths
from snakesweep.render import apply_overrides
from snakesweep.trialfiles import epoch_file, read_epoch_metrics
from snakesweep.worker.weights import delete_weights

log = logging.getLogger("snakesweep.worker")


@dataclass(frozen=True)
class Run:
    """What a checkpoint must have been trained with to be loaded: the trial's params, the run's seed
    and rendered config."""

    params: Mapping[str, Any]
    seed: int
    config: Mapping[str, Any]


@dataclass(frozen=True)
class Resumed:
    epoch: int
    """The first epoch this run trains."""
    from_trial: int
    carried: dict[int, dict[str, Any]]
    """The metrics of the epochs before `epoch`, as the earlier attempt wrote them."""


class Resumer:
    def __init__(self, launcher: Launcher, paths: Paths, study: str, keep_weights: int) -> None:
        self.launcher = launcher
        self.paths = paths
        self.study = study
        self.keep_weights = keep_weights

    def resume(self, number: int, attempts: list[int], run_dir: Path, run_name: str, run: Run) -> Resumed | None:
        """Move the newest usable checkpoint of `attempts` (newest first) into `run_dir`; None: start at 0.

        A damaged checkpoint, or one trained with other params, seed or config, is never loaded:
        a warning says so. Whatever weights the earlier attempts still hold are deleted then (unless
        `trials.keep_weights` is -1): this attempt has taken what it can use.
        """
        resumed = None
        damaged = False
        searched = []
        for earlier in attempts:
            source = self.paths.trial_dir(self.study, earlier) / run_name
            if not source.is_dir():
                continue
            searched.append(source)
            search = self.launcher.find_checkpoint(source)
            for problem in search.damaged:
                damaged = True
                log.warning("trial %d: a checkpoint of trial %d is damaged and is not loaded: %s",
                            number, earlier, problem)
            if search.found is None:
                continue
            mismatch = _mismatch(source, self.paths.trial_dir(self.study, earlier), run, self.launcher)
            if mismatch:
                log.warning("trial %d: the checkpoint of trial %d was trained with another %s and is not "
                            "loaded; the trial starts over at epoch 0", number, earlier, mismatch)
                break
            resumed = self._take(number, earlier, source, run_dir, search.found)
            break
        else:
            if damaged:
                log.warning("trial %d: no whole checkpoint is left; the trial starts over at epoch 0", number)
        if self.keep_weights >= 0:
            for source in searched:
                delete_weights(self.launcher, source)
        return resumed

    def _take(self, number: int, earlier: int, source: Path, run_dir: Path, found: Checkpoint) -> Resumed | None:
        """Move the checkpoint's files into `run_dir` and copy the epoch files it covers."""
        try:
            for name in found.files:
                target = run_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source / name, target)
        except OSError as error:
            delete_weights(self.launcher, run_dir)
            log.warning("trial %d: the checkpoint of trial %d could not be moved (%s); the trial starts over "
                        "at epoch 0", number, earlier, error)
            return None
        carried = {e: m for e, m in read_epoch_metrics(source).items() if e < found.epoch}
        for epoch in carried:
            shutil.copy2(epoch_file(source, epoch), epoch_file(run_dir, epoch))
        log.info("trial %d continues trial %d at epoch %d", number, earlier, found.epoch)
        return Resumed(found.epoch, earlier, carried)


def _mismatch(source: Path, trial_dir: Path, run: Run, launcher: Launcher) -> str | None:
    """Which of params, seed and config differ from the run that wrote `source`; None when none does.

    The device keys are left out of the config comparison: a checkpoint moves between GPU and CPU.
    """
    old_params = _read_json(trial_dir / "params.json")
    if old_params != json.loads(json.dumps(run.params)):
        return "params.json"
    try:
        old_seed = int((source / "seed").read_text())
    except (OSError, ValueError):
        old_seed = None
    if old_seed != run.seed:
        return "seed"
    device = launcher.device_overrides()
    old_config = _read_json(source / "config.json")
    if old_config is None or apply_overrides(old_config, device) != apply_overrides(json.loads(json.dumps(run.config)), device):
        return "config.json"
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
