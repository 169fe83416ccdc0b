"""Train an MLP on the digits' train part; score each epoch on the validation part.

    python examples/pytorch-digits/train.py --config CONFIG.json --out SERIALIZATION_DIR

CONFIG.json is the rendered model.jsonnet (the worker writes it into the trial's directory):

    {"model": {"hidden_size": 64, "num_layers": 1, "dropout": 0.1},
     "optimizer": {"type": "adam", "lr": 0.01},          # or {"type": "sgd", "lr": ..., "momentum": ...}
     "data_loader": {"batch_size": 64},
     "trainer": {"num_epochs": 12},
     "random_seed": 13}                                  # set per trial (and per repeat) by the worker

Into SERIALIZATION_DIR it writes, as `allennlp train` would: `metrics_epoch_N.json` after each
epoch (validation_accuracy, validation_loss, training_loss), and at the end `best.th` (the weights of
the epoch with the best validation accuracy, with the model section to rebuild it) and
`metrics.json` with best_validation_accuracy. The test part is never loaded here: evaluate.py scores it.
Threads: torch follows OMP_NUM_THREADS, which the launcher sets to the worker's thread count.

Resuming: after each epoch it saves its whole state (weights, optimizer, random generators, the
best epoch so far) with `snakesweep.trialfiles.saving_checkpoint`, and it starts from the newest
checkpoint `resume_checkpoint` finds in SERIALIZATION_DIR, where the worker put it when the trial
was interrupted (a preempted job, a time limit): the epochs done are not trained again.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from digits import accuracy_and_loss, build_model, load_part
from snakesweep.trialfiles import resume_checkpoint, saving_checkpoint, write_epoch_metrics, write_final_metrics


def make_optimizer(spec: dict, parameters) -> torch.optim.Optimizer:
    kind = spec.get("type", "adam")
    if kind == "adam":
        return torch.optim.Adam(parameters, lr=float(spec["lr"]))
    if kind == "sgd":
        return torch.optim.SGD(parameters, lr=float(spec["lr"]), momentum=float(spec.get("momentum", 0.0)))
    raise SystemExit(f"optimizer.type: unknown optimizer {kind!r}; use adam or sgd")


def train(config: dict, out: Path) -> dict:
    seed = int(config.get("random_seed", 13))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    x_train, y_train = load_part("train")
    x_val, y_val = load_part("validation")

    model = build_model(config["model"])
    optimizer = make_optimizer(config["optimizer"], model.parameters())
    batch_size = int(config["data_loader"]["batch_size"])
    num_epochs = int(config["trainer"]["num_epochs"])
    order = torch.Generator().manual_seed(seed)
    print(f"seed {seed}, torch threads {torch.get_num_threads()}, {len(x_train)} train and "
          f"{len(x_val)} validation images, {num_epochs} epochs", flush=True)

    best = {"best_epoch": -1, "best_validation_accuracy": -1.0}
    best_state = model.state_dict()
    start = 0
    saved = resume_checkpoint(out)
    if saved is not None:
        state = torch.load(saved.directory / "state.pt", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        order.set_state(state["order"])
        torch.set_rng_state(state["rng"])
        best, best_state, start = state["best"], state["best_state"], saved.epoch + 1
        print(f"resuming after epoch {saved.epoch}", flush=True)
    started = time.monotonic()
    for epoch in range(start, num_epochs):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(x_train), generator=order).split(batch_size):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        accuracy, val_loss = accuracy_and_loss(model, x_val, y_val)
        metrics = {"epoch": epoch, "training_loss": total / len(x_train),
                   "validation_loss": val_loss, "validation_accuracy": accuracy}
        if accuracy > best["best_validation_accuracy"]:
            best = {"best_epoch": epoch, "best_validation_accuracy": accuracy, "best_validation_loss": val_loss}
            best_state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        write_epoch_metrics(out, epoch, metrics)
        with saving_checkpoint(out, epoch) as directory:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "order": order.get_state(),
                        "rng": torch.get_rng_state(), "best": best, "best_state": best_state}, directory / "state.pt")
        print(f"epoch {epoch}: training_loss {metrics['training_loss']:.4f} "
              f"validation_accuracy {accuracy:.4f}", flush=True)
    torch.save({"model": config["model"], "state_dict": best_state}, out / "best.th")
    final = {**best, "training_epochs": num_epochs, "training_duration_s": round(time.monotonic() - started, 3)}
    write_final_metrics(out, final)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="the rendered config (JSON)")
    parser.add_argument("--out", required=True, type=Path, help="the serialization directory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    train(json.loads(args.config.read_text()), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
