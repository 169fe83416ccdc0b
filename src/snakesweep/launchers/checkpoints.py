"""What a launcher knows of its runs' files: which hold weights, and which checkpoint a run continues from.

The defaults here follow the trial file protocol (`snakesweep.trialfiles`) that the `command` and
`python` launchers document: checkpoints in `checkpoints/epoch_<n>/`, written by
`saving_checkpoint`, and weights in files named `*.th`, `*.pt`, `*.pth`, `*.ckpt`, `*.safetensors`
or `*.bin`. A launcher whose trainer has a layout of its own (AllenNLP) overrides them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from snakesweep.trialfiles import CHECKPOINT_DIR_ENV, CHECKPOINTS, RESUME_EPOCH_ENV, checkpoint_dir, find_checkpoints

WEIGHT_SUFFIXES = (".th", ".pt", ".pth", ".ckpt", ".safetensors", ".bin")


@dataclass(frozen=True)
class Checkpoint:
    """What a run needs to continue: `files` (relative to its directory) and the epoch it continues at."""

    epoch: int
    files: tuple[str, ...]


@dataclass
class CheckpointSearch:
    """The newest checkpoint a run can continue from, and the newer ones found damaged (never loaded)."""

    found: Checkpoint | None = None
    damaged: list[str] = field(default_factory=list)


def protocol_weights(run_dir: Path) -> list[Path]:
    """Each checkpoint directory (staging ones too), and every file with a weight suffix elsewhere."""
    run_dir = Path(run_dir)
    checkpoints = checkpoint_dir(run_dir)
    found = sorted(checkpoints.iterdir()) if checkpoints.is_dir() else []
    for root, dirs, files in os.walk(run_dir):
        if root == str(run_dir) and CHECKPOINTS in dirs:
            dirs.remove(CHECKPOINTS)
        found += [Path(root) / name for name in sorted(files) if Path(name).suffix in WEIGHT_SUFFIXES]
    return found


def protocol_checkpoint(run_dir: Path) -> CheckpointSearch:
    """The newest whole `checkpoints/epoch_<n>`: the run continues at epoch n + 1."""
    saved, damaged = find_checkpoints(run_dir)
    if saved is None:
        return CheckpointSearch(None, damaged)
    relative = saved.directory.relative_to(Path(run_dir)).as_posix()
    return CheckpointSearch(Checkpoint(saved.epoch + 1, (relative,)), damaged)


def protocol_env(serialization_dir: Path, resume_epoch: int) -> dict[str, str]:
    """What a trainer is told: where its checkpoints go, and the epoch it starts at (0: from scratch)."""
    return {CHECKPOINT_DIR_ENV: str(checkpoint_dir(Path(serialization_dir).absolute())),
            RESUME_EPOCH_ENV: str(resume_epoch)}
