"""Journals: what each step reported for MLflow, one JSON event a line, and how far each was shipped.

A step appends to its own journal (`<study>/tracking/<writer>.jsonl`, a rerun of the step appends to
the same one) and never waits for MLflow; a shipper sends the lines to MLflow in order and records
the offset it reached in `<writer>.shipped`. What an outage left unsent stays in the journal for
the next shipper. Each run of a step starts with an `open` line naming the tracking target.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakesweep.trialfiles import write_json

# Shipped in this order when a step catches up on every journal: the study, its trials, the final steps.
WRITER_ORDER = ("create_study", "worker", "select", "evaluate", "test_metrics")


def now_ms() -> int:
    return int(time.time() * 1000)


class Journal:
    """Appends events to one writer's journal; each line is flushed at once, so a crash loses none."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")
        self.write("open", **header)

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "at": now_ms(), **fields}, default=str)
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class Progress:
    """How far a journal was shipped, and the `open` line in force there."""

    offset: int = 0
    header: dict[str, Any] = field(default_factory=dict)


def progress_path(journal: Path) -> Path:
    return journal.with_suffix(".shipped")


def read_progress(journal: Path) -> Progress:
    try:
        data = json.loads(progress_path(journal).read_text())
    except (OSError, ValueError):
        return Progress()
    return Progress(int(data.get("offset", 0)), dict(data.get("header") or {}))


def save_progress(journal: Path, progress: Progress) -> None:
    write_json(progress_path(journal), {"offset": progress.offset, "header": progress.header})


def pending(journal: Path, offset: int) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(offset after the line, event) for each complete line from `offset`; None for a corrupt line."""
    with open(journal, "rb") as handle:
        handle.seek(offset)
        for line in handle:
            if not line.endswith(b"\n"):
                return  # being written: the next pass reads it
            offset += len(line)
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            yield offset, event if isinstance(event, dict) else None


def has_pending(journal: Path) -> bool:
    try:
        return journal.stat().st_size > read_progress(journal).offset
    except OSError:
        return False


def journals(tracking_dir: Path) -> list[Path]:
    """Every journal of a study, in WRITER_ORDER."""

    def rank(path: Path) -> tuple[int, str]:
        kind = path.stem.split("-", 1)[0]
        return (WRITER_ORDER.index(kind) if kind in WRITER_ORDER else len(WRITER_ORDER), path.stem)

    return sorted(tracking_dir.glob("*.jsonl"), key=rank)


@contextlib.contextmanager
def shipping(journal: Path) -> Iterator[bool]:
    """Hold the right to ship `journal` (True), or learn that another shipper holds it (False)."""
    with open(journal, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        except OSError:  # a file system without locks: ship anyway, the events are idempotent
            pass
        yield True
