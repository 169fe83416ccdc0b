"""Bayesmark's MLP-adam on digits, trained epoch by epoch: the public benchmark of bench/search.py.

    launcher: {type: python, function: bench.mlp_digits:train}

Bayesmark (the benchmark of the NeurIPS 2020 black-box optimisation challenge) tunes scikit-learn's
`MLPClassifier(solver="adam")` on scikit-learn's data sets; its MLP-adam space is in SPACE below,
less `tol` and `validation_fraction`, which only steer scikit-learn's own early stopping. The data
is `sklearn.datasets.load_digits` (1797 8x8 images, 10 classes), which scikit-learn ships: nothing
is downloaded. Bayesmark scores one full fit by cross-validation; to give pruners something to
act on, this trainer makes it multi-fidelity instead: one `partial_fit` pass over a fixed
stratified 75% training split per epoch, validation accuracy on the other 25% after each,
written as `metrics_epoch_N.json` like any snakesweep trainer, `metrics.json` at the end.

Config keys: the SPACE names, `epochs` (27), `random_seed` (set per trial by the worker).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from snakesweep.trialfiles import write_epoch_metrics, write_final_metrics

SPACE = {
    "hidden_layer_sizes": {"type": "int", "low": 50, "high": 200},
    "alpha": {"type": "float", "low": 1e-5, "high": 1e1, "log": True},
    "batch_size": {"type": "int", "low": 10, "high": 250},
    "learning_rate_init": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "beta_1": {"type": "float", "low": 0.5, "high": 0.99},
    "beta_2": {"type": "float", "low": 0.9, "high": 0.999999},
    "epsilon": {"type": "float", "low": 1e-9, "high": 1e-6, "log": True},
}
JSONNET = "{\n%s\n  epochs: %%d,\n  random_seed: 0,\n}\n" % "\n".join(
    f"  {name}: std.parseJson(std.extVar('{name}'))," for name in SPACE)

_X, _Y = load_digits(return_X_y=True)
X_TRAIN, X_VALIDATION, Y_TRAIN, Y_VALIDATION = train_test_split(
    _X / 16.0, _Y, test_size=0.25, stratify=_Y, random_state=0)


def train(config: dict[str, Any], serialization_dir: str) -> None:
    out = Path(serialization_dir)
    model = MLPClassifier(
        hidden_layer_sizes=(int(config["hidden_layer_sizes"]),), solver="adam", alpha=float(config["alpha"]),
        batch_size=int(config["batch_size"]), learning_rate_init=float(config["learning_rate_init"]),
        beta_1=float(config["beta_1"]), beta_2=float(config["beta_2"]), epsilon=float(config["epsilon"]),
        random_state=int(config.get("random_seed", 0)) % 2**32, shuffle=True,
    )
    classes = np.arange(10)
    best = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for epoch in range(int(config.get("epochs", 27))):
            model.partial_fit(X_TRAIN, Y_TRAIN, classes=classes)
            accuracy = float(model.score(X_VALIDATION, Y_VALIDATION))
            best = max(best, accuracy)
            write_epoch_metrics(out, epoch, {"epoch": epoch, "validation_accuracy": accuracy,
                                             "training_loss": float(model.loss_)})
    write_final_metrics(out, {"best_validation_accuracy": best})
