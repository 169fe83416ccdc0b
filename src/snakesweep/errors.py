"""Errors a user can cause, reported as one line: where, what, and how to fix it."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A mistake in the user's files or environment, not a bug of ours.

    The command-line entry points print it as a single line and exit with status 1;
    tracebacks are kept for our own bugs.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.field = field
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.field) if part)
        text = f"{where}: {self.problem}" if where else self.problem
        return f"{text} ({self.fix})" if self.fix else text


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached a worker: its trial is stopped and queued again, then it exits."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def one_line(error: BaseException) -> tuple[str, int] | None:
    """How an error a user caused ends a command: one line and an exit code; None for our bugs.

    The only place that turns a UserError or an interrupt into words: the CLI, the workflow's
    steps and the Snakefile's early checks all print what this returns.
    """
    if isinstance(error, UserError):
        return f"error: {error}", 1
    if isinstance(error, Interrupted):
        return f"stopped by {error}; the running trial was queued again", 128 + error.signum
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", 130
    return None
