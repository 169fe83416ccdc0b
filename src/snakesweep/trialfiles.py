"""The trial file protocol: `metrics_epoch_{n}.json` after each epoch, `metrics.json` at the end,
and, for a trainer that can resume, a checkpoint after each epoch in `checkpoints/epoch_{n}/`.

A trial is a serialization directory, as with `allennlp train`. Whatever trains in it writes these
files; the worker reads them to report to the pruner and to record the trial's value, and moves
the newest checkpoint of an interrupted trial into the directory of the trial that continues it.

Writers (`write_epoch_metrics`, `write_final_metrics`) replace files atomically, so a reader never
sees half a file. Readers still tolerate trainers that write in place: a partial or corrupt file
is skipped and read again on the next poll, never an error.

This module depends on nothing outside the standard library, so that any trainer can import it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "CHECKPOINTS", "CHECKPOINT_DIR_ENV", "EPOCH_PATTERN", "FINAL_NAME", "RESUME_EPOCH_ENV",
    "EpochWatcher", "SavedCheckpoint", "checkpoint_dir", "epoch_file", "find_checkpoints",
    "read_epoch_metrics", "read_final_metrics", "resume_checkpoint", "saving_checkpoint",
    "write_epoch_metrics", "write_final_metrics",
]

FINAL_NAME = "metrics.json"
EPOCH_PATTERN = re.compile(r"^metrics_epoch_(\d+)\.json$")

PathLike = str | os.PathLike[str]

# Called after each epoch file is written: a trainer forked by the worker waits there for its verdict.
after_epoch_written: Callable[[int], None] | None = None


def epoch_file(serialization_dir: PathLike, epoch: int) -> Path:
    """The path of epoch `epoch`'s metrics file."""
    return Path(serialization_dir) / f"metrics_epoch_{epoch}.json"


# -- writing ------------------------------------------------------------------------------------
def write_epoch_metrics(serialization_dir: PathLike, epoch: int, metrics: Mapping[str, Any]) -> Path:
    """Write `metrics_epoch_{epoch}.json` atomically; epochs count from 0, as in AllenNLP."""
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be an integer >= 0, not {epoch!r}")
    path = epoch_file(serialization_dir, epoch)
    _write_json_atomic(path, metrics)
    if after_epoch_written is not None:
        after_epoch_written(epoch)
    return path


def write_final_metrics(serialization_dir: PathLike, metrics: Mapping[str, Any]) -> Path:
    """Write `metrics.json` atomically."""
    path = Path(serialization_dir) / FINAL_NAME
    _write_json_atomic(path, metrics)
    return path


def _plain(value: Any) -> Any:
    """JSON fallback for numpy and torch scalars and arrays, without importing either."""
    for method in ("item", "tolist"):
        convert = getattr(value, method, None)
        if callable(convert):
            try:
                return convert()
            except (TypeError, ValueError):
                continue
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _write_json_atomic(path: Path, metrics: Mapping[str, Any]) -> None:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a mapping, not {type(metrics).__name__}")
    write_json(path, dict(metrics))


def write_json(path: PathLike, data: Any) -> None:
    """Temp file in the same directory, fsync, then os.replace: readers see all or nothing."""
    path = Path(path)
    tmp = stage_json(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def stage_json(path: PathLike, data: Any) -> Path:
    """Write `data` to a synced temp file beside `path` and return it; os.replace() publishes it.

    Several files that must appear together are all staged first, then replaced one after another.
    """
    path = Path(path)
    text = json.dumps(data, indent=2, default=_plain) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    # The leading dot and the suffix keep the temp file out of EPOCH_PATTERN.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; best effort (some file systems refuse directory fsync)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading ------------------------------------------------------------------------------------
def _read_json_object(path: PathLike) -> dict[str, Any] | None:
    """The JSON object in `path`, or None while it is missing, partial or not an object."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):  # missing, unreadable, half written (JSONDecodeError, bad UTF-8)
        return None
    return data if isinstance(data, dict) else None


def _epoch_entries(serialization_dir: PathLike) -> list[tuple[int, str]]:
    """(epoch, path) of every epoch file present, unsorted."""
    try:
        with os.scandir(serialization_dir) as entries:
            found = []
            for entry in entries:
                match = EPOCH_PATTERN.match(entry.name)
                if match:
                    found.append((int(match.group(1)), entry.path))
            return found
    except (FileNotFoundError, NotADirectoryError):
        return []


def read_epoch_metrics(serialization_dir: PathLike) -> dict[int, dict[str, Any]]:
    """All readable epoch files, by epoch, sorted; partial files are left out."""
    epochs = {}
    for epoch, path in sorted(_epoch_entries(serialization_dir)):
        metrics = _read_json_object(path)
        if metrics is not None:
            epochs[epoch] = metrics
    return epochs


def read_final_metrics(serialization_dir: PathLike) -> dict[str, Any] | None:
    """`metrics.json`, or None while it is missing or partial."""
    return _read_json_object(Path(serialization_dir) / FINAL_NAME)


class EpochWatcher:
    """Yields each epoch file once, as it appears.

    Each poll lists the directory; only epochs not yet returned are opened. An epoch file that
    cannot be parsed yet (a trainer writing in place) is tried again on the next poll. Epochs in
    `seen` (carried over from an interrupted run) are never returned.
    """

    def __init__(self, serialization_dir: PathLike, seen: Iterable[int] = ()) -> None:
        self.serialization_dir = Path(serialization_dir)
        self._seen: set[int] = set(seen)

    @property
    def seen(self) -> frozenset[int]:
        """Epochs already returned."""
        return frozenset(self._seen)

    def new_epochs(self) -> list[tuple[int, dict[str, Any]]]:
        """Epochs that appeared since the last call, sorted by epoch."""
        new = []
        for epoch, path in sorted(_epoch_entries(self.serialization_dir)):
            if epoch in self._seen:
                continue
            metrics = _read_json_object(path)
            if metrics is None:
                continue
            self._seen.add(epoch)
            new.append((epoch, metrics))
        return new


# -- checkpoints --------------------------------------------------------------------------------
CHECKPOINTS = "checkpoints"
CHECKPOINT_DIR_ENV = "SNAKESWEEP_CHECKPOINT_DIR"
RESUME_EPOCH_ENV = "SNAKESWEEP_RESUME_EPOCH"
MANIFEST = "snakesweep-checkpoint.json"
_CHECKPOINT_PATTERN = re.compile(r"^epoch_(\d+)$")


class SavedCheckpoint(NamedTuple):
    """A complete checkpoint: `epoch` is the last epoch it holds, so training continues at epoch + 1."""

    epoch: int
    directory: Path


def checkpoint_dir(serialization_dir: PathLike) -> Path:
    """Where a run's checkpoints go: `<serialization_dir>/checkpoints/epoch_<n>/`."""
    return Path(serialization_dir) / CHECKPOINTS


@contextmanager
def saving_checkpoint(serialization_dir: PathLike, epoch: int) -> Iterator[Path]:
    """A fresh directory to save epoch `epoch`'s state into, published whole when the block ends.

        with saving_checkpoint(out, epoch) as directory:
            torch.save(state, directory / "state.pt")

    Then the files are synced, a manifest of their sizes is written, the directory is renamed to
    `checkpoints/epoch_<epoch>` in one step, and older checkpoints are deleted. A trainer stopped
    inside the block leaves only a hidden staging directory, never a checkpoint that looks whole.
    """
    root = checkpoint_dir(serialization_dir)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".epoch_{epoch}.", dir=root))
    try:
        yield staging
        sizes = {}
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
            sizes[path.relative_to(staging).as_posix()] = path.stat().st_size
        write_json(staging / MANIFEST, {"epoch": epoch, "files": sizes})
        target = root / f"epoch_{epoch}"
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        _fsync_directory(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for other in root.iterdir():
        if other != target and _CHECKPOINT_PATTERN.match(other.name):
            shutil.rmtree(other, ignore_errors=True)


def _checkpoint_problem(directory: Path, epoch: int) -> str | None:
    """Why a checkpoint directory cannot be loaded, or None when it is whole."""
    manifest = _read_json_object(directory / MANIFEST)
    if manifest is None or manifest.get("epoch") != epoch or not isinstance(manifest.get("files"), dict):
        return f"{MANIFEST} missing or unreadable"
    for name, size in manifest["files"].items():
        try:
            actual = (directory / name).stat().st_size
        except OSError:
            return f"{name} missing"
        if actual != size:
            return f"{name} holds {actual} bytes, not {size}"
    return None


def find_checkpoints(serialization_dir: PathLike) -> tuple[SavedCheckpoint | None, list[str]]:
    """The newest complete checkpoint, and what is wrong with each newer one (damaged, never loaded)."""
    root = checkpoint_dir(serialization_dir)
    try:
        names = [(int(m.group(1)), p) for p in root.iterdir() if (m := _CHECKPOINT_PATTERN.match(p.name))]
    except (FileNotFoundError, NotADirectoryError):
        return None, []
    damaged = []
    for epoch, path in sorted(names, reverse=True):
        problem = _checkpoint_problem(path, epoch)
        if problem is None:
            return SavedCheckpoint(epoch, path), damaged
        damaged.append(f"{CHECKPOINTS}/{path.name}: {problem}")
    return None, damaged


def resume_checkpoint(serialization_dir: PathLike) -> SavedCheckpoint | None:
    """The checkpoint a trainer continues from (train from its epoch + 1), or None: start at epoch 0."""
    return find_checkpoints(serialization_dir)[0]
