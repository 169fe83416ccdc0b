"""A tiny real PyTorch trainer: logistic regression on a fixed synthetic set.

    python tests/trainers/tiny_torch.py --config CONFIG --out SERIALIZATION_DIR [--name NAME]
    launcher function: tests.trainers.tiny_torch:train

Config keys: `epochs` (3), `lr` (0.5), `tag` (any value, echoed). Besides the metrics files it
writes `received.json`: the config, its `tag`, argv, torch's thread count and the thread
environment, for the tests to check what reached the trainer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from snakesweep.trialfiles import write_epoch_metrics, write_final_metrics

ENV_KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "SNAKESWEEP_TEST_EXTRA")


def train(config: dict[str, Any], serialization_dir: str, name: str | None = None) -> None:
    out = Path(serialization_dir)
    received = {
        "tag": config.get("tag"),
        "config": config,
        "name": name,
        "argv": sys.argv,
        "threads": torch.get_num_threads(),
        "env": {key: os.environ.get(key) for key in ENV_KEYS},
        "pid": os.getpid(),
    }
    (out / "received.json").write_text(json.dumps(received))
    print(f"torch threads: {torch.get_num_threads()}", flush=True)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=generator)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) > 0).float()
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=float(config.get("lr", 0.5)))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    best = 0.0
    for epoch in range(int(config.get("epochs", 3))):
        for _ in range(10):
            optimizer.zero_grad()
            loss = loss_fn(model(x).squeeze(1), y)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = ((model(x).squeeze(1) > 0).float() == y).float().mean().item()
        best = max(best, accuracy)
        metrics = {"epoch": epoch, "training_loss": loss.item(), "validation_accuracy": accuracy}
        write_epoch_metrics(out, epoch, metrics)
        print(f"epoch {epoch}: loss {loss.item():.4f} accuracy {accuracy:.3f}", flush=True)
    write_final_metrics(out, {"best_validation_accuracy": best, "validation_accuracy": accuracy})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--name")
    args = parser.parse_args()
    train(json.loads(Path(args.config).read_text()), args.out, name=args.name)


if __name__ == "__main__":
    main()
