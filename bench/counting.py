"""Run a `snakesweep` command while counting the operations that reach the Optuna storage.

    python -m bench.counting COUNTS.json worker --configfile CONFIG --worker N

The worker is the real one (`snakesweep.cli.main`); the only addition is a counter around the
public methods of Optuna's storage backends (RDBStorage for SQLite, MySQL and PostgreSQL;
JournalStorage for the journal). A call counts once at the outermost level: a method that calls
another one of the same storage is one operation, and calls answered by Optuna's cache in front of
an RDBStorage never reach it and are not counted. At exit COUNTS.json holds the counts by method,
reads (`get_*`, `check_*`) and writes, the process's start and end times and its first claim
(creation of a trial), all as Unix times.
"""

from __future__ import annotations

import atexit
import functools
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage, JournalStorage, RDBStorage

_NOT_OPERATIONS = {"remove_session"}
# What Optuna's cache in front of an RDBStorage calls instead of the public methods.
_EXTRA = ("record_heartbeat", "_get_stale_trial_ids", "_get_trials", "_create_new_trial", "_set_trial_param",
          "_get_best_trial_id")

counts: Counter[str] = Counter()
first_call: dict[str, float] = {}
_depth = threading.local()
_lock = threading.Lock()


def _operations(cls: type) -> list[str]:
    names = [n for n in dir(BaseStorage) if not n.startswith("_") and n not in _NOT_OPERATIONS]
    names += [n for n in _EXTRA if hasattr(cls, n)]
    return [n for n in names if callable(getattr(cls, n, None))]


def _wrap(cls: type, name: str) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def counted(*args: Any, **kwargs: Any) -> Any:
        depth = getattr(_depth, "value", 0)
        if depth == 0:
            with _lock:
                counts[name] += 1
                first_call.setdefault(name, time.time())
        _depth.value = depth + 1
        try:
            return original(*args, **kwargs)
        finally:
            _depth.value = depth

    setattr(cls, name, counted)


def instrument() -> None:
    for cls in (RDBStorage, JournalStorage):
        for name in _operations(cls):
            _wrap(cls, name)


def summary(started: float) -> dict[str, Any]:
    reads = sum(n for name, n in counts.items() if name.startswith(("get_", "check_", "_get_")))
    claims = [first_call[n] for n in ("create_new_trial", "_create_new_trial") if n in first_call]
    return {"started": started, "ended": time.time(), "first_claim": min(claims, default=None),
            "total": sum(counts.values()), "reads": reads,
            "writes": sum(counts.values()) - reads, "by_method": dict(sorted(counts.items()))}


def main() -> int:
    out = Path(sys.argv[1])
    started = time.time()
    instrument()
    atexit.register(lambda: out.write_text(json.dumps(summary(started), indent=2) + "\n"))
    from snakesweep.cli import main as snakesweep_main

    return snakesweep_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
