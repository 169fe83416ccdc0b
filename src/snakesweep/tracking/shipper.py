"""The shipper: a process of its own that sends journals to MLflow, so that no step waits for MLflow.

    python -m snakesweep.tracking.shipper [--follow] [--log FILE]... JOURNAL...

--follow (a worker's): ship the journal as it grows until stdin closes, retrying with backoff while
MLflow does not answer; then ship what is left, unless MLflow is down, and exit at once. It writes
one byte to stdout once MLflow has taken the whole journal; at its end a worker waits only for a
shipper that said so. One still importing mlflow, or facing an outage, is stopped: select catches up.
Without it (the final steps): ship what is pending in each journal and exit, at the first outage
too: a later step catches up. One warning line per outage; an event MLflow refuses is skipped with
a warning. Progress is saved every few seconds and at the end of each pass over a journal.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import select
import signal
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from snakesweep.tracking.journal import Progress, pending, read_progress, save_progress, shipping
from snakesweep.tracking.target import Target

log = logging.getLogger("snakesweep.tracking")
POLL_S = 0.5
MAX_PAUSE_S = 30.0
SAVE_EVERY_S = 2.0
# MLflow's own HTTP retries would hold a shipper for minutes: ours are the outer loop. And its INFO lines.
ENV_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
                "MLFLOW_LOGGING_LEVEL": "WARNING"}
_GIST = re.compile(r"\[Errno -?\d+\] ([^'\")]+)|(Read timed out)|(Connection aborted)")
# MlflowException codes that mean "not now" rather than "never".
TRANSIENT = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED",
             "ENDPOINT_NOT_FOUND", "IO_ERROR"}


def is_outage(error: BaseException) -> bool:
    """MLflow down, unreachable or busy (a locked SQLite file), as opposed to an event it refuses."""
    if isinstance(error, ImportError):
        return True  # a broken install: keep the events for a shipper that can send them
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(error, MlflowException):
        return error.error_code in TRANSIENT
    return isinstance(error, (OSError, OperationalError, InterfaceError))


class Shipper:
    """Sends journals to MLflow; remembers whether MLflow is down, to warn once per outage."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str, str], Any] = {}
        self.down = False

    def ship(self, journal: Path) -> bool:
        """Send what is pending in `journal`; False when MLflow did not answer."""
        with shipping(journal) as ours:
            if not ours:
                return True  # another shipper is at it
            progress = read_progress(journal)
            saved, saved_at = progress.offset, time.monotonic()
            try:
                for offset, event in pending(journal, progress.offset):
                    if event is not None and not self._apply(event, progress, journal):
                        return False
                    progress.offset = offset
                    if time.monotonic() - saved_at > SAVE_EVERY_S:
                        save_progress(journal, progress)
                        saved, saved_at = offset, time.monotonic()
            finally:  # a killed shipper sends what it did since then again: harmless
                if progress.offset != saved:
                    save_progress(journal, progress)
        if self.down:
            log.info("MLflow answers again: the runs are caught up")
            self.down = False
        return True

    def _apply(self, event: dict[str, Any], progress: Progress, journal: Path) -> bool:
        if event["event"] == "open":
            progress.header = Target.from_dict(event).as_dict()
            return True
        target = Target.from_dict(progress.header)
        try:
            self._runs(target).apply(event)
        except Exception as error:
            text = target.mask(_first_line(error))
            if is_outage(error):
                if not self.down:
                    log.warning("MLflow at %s did not answer (%s); the sweep goes on, and its runs are logged "
                                "when MLflow answers again (pending in %s)", target.masked_uri(), text, journal.parent)
                self.down = True
                return False
            log.warning("MLflow refused the %s event of %s: %s; skipped", event["event"], journal.name, text)
        return True

    def _runs(self, target: Target) -> Any:
        from snakesweep.tracking.mlflow_runs import Runs  # imports mlflow: seconds

        key = (target.uri_template, target.experiment, target.study)
        if key not in self.runs:
            self.runs[key] = Runs(target)
        return self.runs[key]

    def follow(self, journal: Path, lifeline: BinaryIO, ready: BinaryIO) -> None:
        """Ship `journal` as it grows until `lifeline` (stdin) reaches its end; say on `ready` (stdout)
        when MLflow first took everything, so that the worker knows a last pass is worth waiting for."""
        pause = POLL_S
        said_ready = False
        while True:
            shipped = self.ship(journal)
            if shipped and not said_ready:
                ready.write(b"r")
                ready.flush()
                said_ready = True
            pause = POLL_S if shipped else min(max(2 * pause, 1.0), MAX_PAUSE_S)
            ready, _, _ = select.select([lifeline], [], [], pause)
            if ready and not os.read(lifeline.fileno(), 4096):
                if not self.down:
                    self.ship(journal)
                return

    def once(self, journals: list[Path]) -> None:
        for journal in journals:
            if journal.exists() and not self.ship(journal):
                return


def _first_line(error: BaseException) -> str:
    """The gist of an error: the system's words where a connection failed, else its first line, short."""
    text = str(error).strip()
    gist = _GIST.search(text)
    if gist:
        return next(part for part in gist.groups() if part)
    lines = text.splitlines()
    return lines[0][:300] if lines else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="snakesweep.tracking.shipper")
    parser.add_argument("--follow", action="store_true")
    parser.add_argument("--log", action="append", default=[])
    parser.add_argument("journals", nargs="+", type=Path)
    args = parser.parse_args(argv)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers += [logging.FileHandler(path, mode="a") for path in args.log]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        handlers=handlers, force=True)
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    # MLflow prints each run's URL, password included: nothing of MLflow's reaches stdout.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    ready = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    shipper = Shipper()
    if args.follow:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the worker too, which closes our stdin
        shipper.follow(args.journals[0], sys.stdin.buffer, ready)
    else:
        shipper.once(args.journals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
