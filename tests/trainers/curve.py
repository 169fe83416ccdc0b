"""A trainer with no model: a learning curve computed from the config, for testing the worker.

    python tests/trainers/curve.py CONFIG SERIALIZATION_DIR
    python tests/trainers/curve.py --evaluate MODEL_DIR TEST_DATA OUTPUT
    launcher function: tests.trainers.curve:train

Config keys: `lr` and `layers` (the swept parameters: the curve peaks at lr=0.01, layers=2),
`epochs` (3), `sleep_s` (0: seconds per epoch), `crash` (true: raise after the first epoch),
`metric_key` (the per-epoch key, default validation_accuracy), `tag` (written to tag.json),
`diverge_at` (from this epoch on the metric is `diverge_to`: "nan" by default, or "inf").
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from snakesweep.trialfiles import write_epoch_metrics, write_final_metrics


def score(config: dict[str, Any], epoch: int) -> float:
    quality = 1.0 - abs(math.log10(float(config.get("lr", 0.01))) + 2) / 4 - abs(int(config.get("layers", 2)) - 2) / 8
    return round(quality * (epoch + 1) / (epoch + 2), 6)


def train(config: dict[str, Any], serialization_dir: str) -> None:
    out = Path(serialization_dir)
    (out / "pid").write_text(str(os.getpid()))
    if "tag" in config:
        (out / "tag.json").write_text(json.dumps(config["tag"]))
    key = config.get("metric_key", "validation_accuracy")
    best = -math.inf
    for epoch in range(int(config.get("epochs", 3))):
        time.sleep(float(config.get("sleep_s", 0)))
        value = score(config, epoch)
        if config.get("diverge_at") is not None and epoch >= config["diverge_at"]:
            value = float(config.get("diverge_to", "nan"))
        best = max(best, value)
        write_epoch_metrics(out, epoch, {key: value, "epoch": epoch})
        print(f"epoch {epoch}: {key} {value}", flush=True)
        if config.get("crash"):
            raise RuntimeError("the trainer crashed on purpose")
    write_final_metrics(out, {f"best_{key}": best})


def evaluate(model_dir: str, test_data: str, output: str) -> None:
    """`retrain.evaluate_command`: a "test accuracy" derived from the retrained run's config."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    lines = Path(test_data).read_text().count("\n")
    result = {"accuracy": score(config, 10) - 0.01, "examples": lines}
    Path(output).write_text(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "--evaluate":
        evaluate(*sys.argv[2:5])
    else:
        train(json.loads(Path(sys.argv[1]).read_text()), sys.argv[2])
