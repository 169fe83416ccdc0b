"""The end-of-epoch handshake of a forked training: at each epoch's end the trainer waits for its verdict.

A trainer forked from the worker with `wait_for_verdicts` gets one end of a socket pair made before
the fork. After it has written an epoch file (through `trialfiles.write_epoch_metrics`, or AllenNLP's
trainer through a callback), it sends a byte and blocks until the worker answers. The worker first
reads the epoch, reports it to the pruner and asks the budgets; "go on" is a byte back, and every
other verdict is the stop of the trainer's process group. So no epoch is trained past a decision.

The trainer never hangs on a worker that is gone: end of file (or any socket error) means go on,
without verdicts from then on, and the trainer already gets SIGTERM when its worker dies.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from snakesweep import trialfiles

_EPOCH_WRITTEN = b"e"
_GO_ON = b"g"


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """(the worker's end, the trainer's end), made before the fork."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


class Verdicts:
    """The worker's end: counts the epochs whose trainer waits, and tells it to go on."""

    def __init__(self, end: socket.socket) -> None:
        end.setblocking(False)
        self._end: socket.socket | None = end
        self.waiting = 0  # epochs written whose trainer waits for an answer

    def fileno(self) -> int | None:
        """Readable when the trainer has written an epoch (or is gone); None once closed."""
        return self._end.fileno() if self._end is not None else None

    def collect(self) -> None:
        """Count the epochs announced so far, without blocking; the trainer's end of file closes."""
        while self._end is not None:
            try:
                data = self._end.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            self.waiting += data.count(_EPOCH_WRITTEN)

    def go_on(self) -> None:
        """Let the trainer train the next epoch of every epoch collected."""
        if self.waiting and self._end is not None:
            try:
                self._end.sendall(_GO_ON * self.waiting)
            except OSError:  # the trainer is gone
                self.close()
        self.waiting = 0

    def close(self) -> None:
        if self._end is not None:
            self._end.close()
            self._end = None


class _TrainerEnd:
    """Installed as `trialfiles.after_epoch_written` in the forked trainer."""

    def __init__(self, end: socket.socket) -> None:
        self._end: socket.socket | None = end
        self._lock = threading.Lock()  # a trainer writing epochs from several threads waits for each in turn

    def __call__(self, epoch: int) -> None:
        with self._lock:
            if self._end is None:
                return
            try:
                self._end.sendall(_EPOCH_WRITTEN)
                answer = self._end.recv(1)
            except OSError:
                answer = b""
            if not answer:  # the worker closed its end: train on, as with a trainer that writes its own files
                with contextlib.suppress(OSError):
                    self._end.close()
                self._end = None


def wait_for_verdicts(end: socket.socket) -> None:
    """In the forked trainer: wait for the worker's verdict after each epoch file written."""
    trialfiles.after_epoch_written = _TrainerEnd(end)


def epoch_written(epoch: int) -> None:
    """For trainers that write epoch files without `trialfiles` (AllenNLP's): wait for the verdict."""
    hook = trialfiles.after_epoch_written
    if hook is not None:
        hook(epoch)
