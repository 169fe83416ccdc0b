"""Logging for the command and the workflow's steps: our lines, not the noise of imported libraries."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

# Warnings that AllenNLP's dependencies print at import on every run, about their own internals.
_IMPORT_NOISE = (
    ("ignore", {"category": FutureWarning}),
    ("ignore", {"message": "Failed to load image Python extension"}),
)


def setup_logging(log_file: str | Path | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        Path(log_file).write_text("")
        # Appending (O_APPEND): a process of the step's own (tracking's shipper) adds whole lines to it too.
        handlers.append(logging.FileHandler(log_file, mode="a"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        handlers=handlers, force=True)
    import optuna.logging  # its first use would reset its level to INFO and add a handler of its own

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    warnings.simplefilter("default", UserWarning)
    for action, options in _IMPORT_NOISE:
        warnings.filterwarnings(action, **options)
    logging.captureWarnings(True)


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's log lines and all warnings silenced for the block (what it says there is not the user's concern)."""
    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def log_tail(path: str | Path, lines: int = 40) -> str:
    """The last `lines` lines of a log (at most 4000 characters); empty when it cannot be read."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])[-4000:]
