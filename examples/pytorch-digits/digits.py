"""The digits data split and the MLP, shared by train.py (train, validation) and evaluate.py (test).

The data is scikit-learn's 8x8 handwritten digits (`sklearn.datasets.load_digits`: 1797 images,
10 classes, shipped with scikit-learn, nothing to download). The split is fixed, stratified and
reproducible: the images of each class are shuffled with numpy's PCG64 generator seeded with
SPLIT_SEED; the first 20% of each class go to test, the next 20% to validation, the rest to train
(1079 / 359 / 359 images). It does not depend on any trial's seed, so every trial and every
retraining sees the same three parts. train.py only ever asks for "train" and "validation";
evaluate.py alone asks for "test", and first checks `test_split.json` against SPLIT and the
digest of the test indices, so a changed split fails instead of scoring on training images.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

SPLIT: dict[str, Any] = {
    "dataset": "sklearn.datasets.load_digits",
    "seed": 0,
    "test_fraction": 0.2,
    "validation_fraction": 0.2,
    "stratified": True,
}
PARTS = ("train", "validation", "test")


def split_indices() -> dict[str, np.ndarray]:
    """Sorted image indices of each part."""
    from sklearn.datasets import load_digits

    labels = load_digits().target
    rng = np.random.default_rng(SPLIT["seed"])
    parts: dict[str, list[int]] = {part: [] for part in PARTS}
    for label in range(10):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(len(members) * SPLIT["test_fraction"])
        n_validation = round(len(members) * SPLIT["validation_fraction"])
        parts["test"].extend(members[:n_test])
        parts["validation"].extend(members[n_test:n_test + n_validation])
        parts["train"].extend(members[n_test + n_validation:])
    return {part: np.sort(np.asarray(indices)) for part, indices in parts.items()}


def indices_digest(indices: np.ndarray) -> str:
    """sha256 of the comma-separated sorted indices: the fingerprint test_split.json records."""
    return hashlib.sha256(",".join(map(str, indices.tolist())).encode()).hexdigest()


def load_part(part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (scaled to [0, 1], flattened to 64 features) and labels of one part."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; one of {PARTS}")
    from sklearn.datasets import load_digits

    digits = load_digits()
    index = split_indices()[part]
    x = torch.tensor(digits.data[index] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target[index], dtype=torch.long)
    return x, y


def build_model(model: dict[str, Any]) -> torch.nn.Module:
    """An MLP from the config's `model` section: `hidden_size`, `num_layers` (1), `dropout`."""
    layers: list[torch.nn.Module] = []
    width = 64
    for _ in range(int(model.get("num_layers", 1))):
        layers += [torch.nn.Linear(width, int(model["hidden_size"])), torch.nn.ReLU(),
                   torch.nn.Dropout(float(model.get("dropout", 0.0)))]
        width = int(model["hidden_size"])
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)


def accuracy_and_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    return accuracy, loss
