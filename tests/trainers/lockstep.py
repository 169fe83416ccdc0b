"""A trainer that starts each epoch only once its worker has recorded the one before.

    launcher function: tests.trainers.lockstep:train

It behaves as a trainer that waits for the worker's verdict at the end of every epoch: it never
trains past a decision of the pruner or of a budget, so what it trains does not depend on timing.
The learning curve is tests/trainers/curve.py's. Config keys: `lr`, `layers`, `epochs` (3),
`sleep_s` (0: seconds per epoch), `storage` (the study's storage URL), and `plateau` (none: from
this trial number on, every trial scores as trial `plateau` did; before it, trial n scores
`0.1 * (n + 1)`). The study and the trial number come from the serialization directory,
`<results>/studies/<study>/trials/<number>[/repeat-<k>]`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from snakesweep.storage import open_storage
from snakesweep.trialfiles import write_epoch_metrics, write_final_metrics
from tests.trainers.curve import score

POLL_S = 0.01


def train(config: dict[str, Any], serialization_dir: str) -> None:
    out = Path(serialization_dir)
    trial_dir = out.parent if out.name.startswith("repeat-") else out
    number = int(trial_dir.name)
    storage = open_storage(config["storage"])
    study_id = storage.get_study_id_from_name(trial_dir.parents[1].name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    before = recorded_epochs(storage, trial_id)  # by earlier repeats
    epochs = int(config.get("epochs", 3))
    best = -math.inf
    for epoch in range(epochs):
        time.sleep(float(config.get("sleep_s", 0)))
        value = score(config, epoch) if config.get("plateau") is None else 0.1 * (min(number, config["plateau"]) + 1)
        best = max(best, value)
        write_epoch_metrics(out, epoch, {"validation_accuracy": value, "epoch": epoch})
        if epoch + 1 < epochs:
            while recorded_epochs(storage, trial_id) < before + epoch + 1:
                time.sleep(POLL_S)
    write_final_metrics(out, {"best_validation_accuracy": best})


def recorded_epochs(storage: Any, trial_id: int) -> int:
    return int(storage.get_trial(trial_id).user_attrs.get("epochs") or 0)
