"""A trainer with no model: a learning curve computed from the config, for testing the worker.

    python tests/trainers/curve.py CONFIG SERIALIZATION_DIR
    python tests/trainers/curve.py --evaluate MODEL_DIR TEST_DATA OUTPUT
    launcher function: tests.trainers.curve:train

Config keys: `lr` and `layers` (the swept parameters: the curve peaks at lr=0.01, layers=2),
`epochs` (3), `sleep_s` (0: seconds per epoch), `crash` (true: raise after the first epoch),
`metric_key` (the per-epoch key, default validation_accuracy), `tag` (written to tag.json),
`diverge_at` (from this epoch on the metric is `diverge_to`: "nan" by default, or "inf"),
`weights_mb` (0: megabytes of weights in each checkpoint and in the final `model.pt`),
`gate` (a path) and `gate_after` (1): after that many epochs, wait until the gate file exists,
so a test can hold a trial running for as long as it needs, however busy the machine.
`plain_json` (false): write the epoch files with plain `json`, not through `trialfiles` (no
end-of-epoch handshake with the worker).
`size_per_layer` (absent: no size): metrics.json also holds `parameters`, that times `layers`,
a second objective to trade accuracy against.

It resumes through the trial file protocol: a checkpoint after each epoch
(`trialfiles.saving_checkpoint`), and at the start the newest one (`trialfiles.resume_checkpoint`).
Each epoch it trains is announced in its log as `epoch N starts`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from snakesweep.trialfiles import resume_checkpoint, saving_checkpoint, write_epoch_metrics, write_final_metrics


def score(config: dict[str, Any], epoch: int) -> float:
    quality = 1.0 - abs(math.log10(float(config.get("lr", 0.01))) + 2) / 4 - abs(int(config.get("layers", 2)) - 2) / 8
    return round(quality * (epoch + 1) / (epoch + 2), 6)


def _weights(path: Path, megabytes: float) -> None:
    if megabytes:
        with open(path, "wb") as handle:
            handle.write(os.urandom(int(megabytes * 1_000_000)))


def train(config: dict[str, Any], serialization_dir: str) -> None:
    out = Path(serialization_dir)
    (out / "pid.tmp").write_text(str(os.getpid()))
    (out / "pid.tmp").replace(out / "pid")  # whoever sees the file sees the pid
    if "tag" in config:
        (out / "tag.json").write_text(json.dumps(config["tag"]))
    key = config.get("metric_key", "validation_accuracy")
    megabytes = float(config.get("weights_mb", 0))
    best, start = -math.inf, 0
    saved = resume_checkpoint(out)
    if saved is not None:
        best = json.loads((saved.directory / "state.json").read_text())["best"]
        start = saved.epoch + 1
        print(f"resuming after epoch {saved.epoch}", flush=True)
    for epoch in range(start, int(config.get("epochs", 3))):
        print(f"epoch {epoch} starts", flush=True)
        time.sleep(float(config.get("sleep_s", 0)))
        value = score(config, epoch)
        if config.get("diverge_at") is not None and epoch >= config["diverge_at"]:
            value = float(config.get("diverge_to", "nan"))
        best = max(best, value)
        if config.get("plain_json"):
            (out / f"metrics_epoch_{epoch}.tmp").write_text(json.dumps({key: value, "epoch": epoch}))
            (out / f"metrics_epoch_{epoch}.tmp").replace(out / f"metrics_epoch_{epoch}.json")
        else:
            write_epoch_metrics(out, epoch, {key: value, "epoch": epoch})
        with saving_checkpoint(out, epoch) as directory:
            (directory / "state.json").write_text(json.dumps({"best": best}))
            _weights(directory / "weights.pt", megabytes)
        print(f"epoch {epoch}: {key} {value}", flush=True)
        if config.get("crash"):
            raise RuntimeError("the trainer crashed on purpose")
        if "gate" in config and epoch + 1 == int(config.get("gate_after", 1)):
            while not Path(config["gate"]).exists():
                time.sleep(0.05)
    _weights(out / "model.pt", megabytes)
    size = {"parameters": int(config["size_per_layer"]) * int(config["layers"])} if "size_per_layer" in config else {}
    write_final_metrics(out, {f"best_{key}": best, **size})


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
