"""The handle of a started training: the leader of its own session, stopped as a whole group.

A trial's training always runs in its own session (so its own process group): stopping a trial
signals the whole group, so helpers the trainer spawned (data loader workers, a shell, a
distributed training's ranks) end with it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snakesweep.launchers.verdicts import Verdicts

_POLL_S = 0.02
_SETTLE_S = 5.0


class TrainingProcess(ABC):
    """A started training run: the leader of its own session and process group.

    Exit codes follow `subprocess`: 0 is success, a negative code -N means killed by signal N.
    `verdicts`: the worker's end of the end-of-epoch handshake, when the trainer waits for one.
    """

    pid: int

    def __init__(self, pid: int, verdicts: Verdicts | None = None) -> None:
        self.pid = pid
        self.verdicts = verdicts
        self._returncode: int | None = None
        self._stopped = False
        self._pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self._pidfd = os.pidfd_open(pid)

    @property
    def exit_fd(self) -> int | None:
        """A descriptor that turns readable when the leader exits (None: not on this platform)."""
        return self._pidfd

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def __del__(self) -> None:
        self._close_pidfd()
        if getattr(self, "verdicts", None) is not None:
            self.verdicts.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pid={self.pid}, returncode={self._returncode})"

    @abstractmethod
    def _reap(self, timeout: float | None) -> int | None:
        """Wait up to `timeout` seconds (None: for ever) for the leader; its exit code or None."""

    def poll(self) -> int | None:
        """The exit code, or None while the leader runs."""
        if self._returncode is None:
            self._returncode = self._reap(0)
        return self._returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to `timeout` seconds (None: until it ends); the exit code, or None on timeout."""
        if self._returncode is None:
            self._returncode = self._reap(None if timeout is None else max(0.0, timeout))
        return self._returncode

    def stop(self, grace_s: float = 10.0) -> int | None:
        """End the whole process group: SIGTERM, up to `grace_s` seconds, then SIGKILL.

        Returns the leader's exit code. Helpers left in the group after the leader exited are
        ended too. Calling it again, or after the run ended, is harmless.
        """
        if self._stopped:
            return self.wait()
        deadline = time.monotonic() + max(0.0, grace_s)
        if self.poll() is None or self._group_alive():
            self._signal_group(signal.SIGTERM)
            self.wait(deadline - time.monotonic())
            while self._group_alive() and time.monotonic() < deadline:
                time.sleep(_POLL_S)
            if self.poll() is None or self._group_alive():
                self._signal_group(signal.SIGKILL)
                # SIGKILL is delivered asynchronously: give the members a moment to be gone.
                settle = time.monotonic() + _SETTLE_S
                while self._group_alive() and time.monotonic() < settle:
                    time.sleep(_POLL_S / 4)
        code = self.wait()
        self._stopped = True
        return code

    # The session was created by the child before start() returned, so the group id is the pid.
    # Linux keeps a group's id reserved while any member lives, even after the leader is reaped.
    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def _group_alive(self) -> bool:
        """Whether a process of the group still runs; zombies nobody reaped do not count."""
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return _live_members(self.pid)


def _live_members(pgid: int) -> bool:
    """Whether a non-zombie process has process group `pgid` (True where /proc cannot tell)."""
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after it.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


class PopenProcess(TrainingProcess):
    """A training started with `subprocess.Popen(..., start_new_session=True)`."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        super().__init__(popen.pid)
        self.popen = popen

    def _reap(self, timeout: float | None) -> int | None:
        if timeout == 0:
            code = self.popen.poll()
        else:
            try:
                code = self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
        if code is not None:
            self._close_pidfd()
        return code


class ForkedProcess(TrainingProcess):
    """A training in a process forked from the worker (see `fork_training`)."""

    def _reap(self, timeout: float | None) -> int | None:
        if timeout is None:
            return self._waitpid(0)
        deadline = time.monotonic() + timeout
        while True:
            code = self._waitpid(os.WNOHANG)
            remaining = deadline - time.monotonic()
            if code is not None or remaining <= 0:
                return code
            if self._pidfd is not None:
                poller = select.poll()
                poller.register(self._pidfd, select.POLLIN)  # readable once the child exits
                poller.poll(max(1, int(remaining * 1000)))
            else:
                time.sleep(min(_POLL_S, remaining))

    def _waitpid(self, options: int) -> int | None:
        try:
            pid, status = os.waitpid(self.pid, options)
        except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): the status is lost
            code = -1
        else:
            if pid == 0:
                return None
            code = os.waitstatus_to_exitcode(status)
        self._close_pidfd()
        return code
