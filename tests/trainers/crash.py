"""A trainer that finishes one epoch, then raises.

    python tests/trainers/crash.py --config CONFIG --out SERIALIZATION_DIR
    launcher function: tests.trainers.crash:train
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from snakesweep.trialfiles import write_epoch_metrics

MESSAGE = "the crash trainer fails on purpose"


def _fail_deep_down() -> None:
    raise RuntimeError(MESSAGE)


def train(config: dict[str, Any], serialization_dir: str) -> None:
    write_epoch_metrics(Path(serialization_dir), 0, {"validation_accuracy": 0.5})
    print("epoch 0 done", flush=True)
    _fail_deep_down()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    train({}, args.out)


if __name__ == "__main__":
    main()
