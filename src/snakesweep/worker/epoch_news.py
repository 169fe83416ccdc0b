"""What wakes a trial's loop: the trainer's end, an epoch file appearing, a forked trainer waiting for its verdict.

A forked trainer (the `allennlp` and `python` launchers) waits at each epoch's end until the worker
answers (snakesweep.launchers.verdicts). Any other trainer (the `command` launcher, or one that
writes its epoch files without `trialfiles`) is not held: the run directory is watched with inotify
where Linux offers it, so the worker reads an epoch file as soon as it is closed or renamed into
place, and otherwise it looks every `timeout` passed to `wait`, as before.
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
import time
from pathlib import Path

from snakesweep.launchers import TrainingProcess
from snakesweep.trialfiles import EPOCH_PATTERN

_IN_CLOSE_WRITE = 0x08
_IN_MOVED_TO = 0x80
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; the name follows, padded with NULs
_NO_EXIT_FD_S = 0.02  # without a descriptor for the trainer's exit, look this often


class DirectoryWatch:
    """inotify on one directory: readable when a file there is closed after writing or renamed into it."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    @classmethod
    def open(cls, directory: Path) -> DirectoryWatch | None:
        """A watch on `directory`, or None where inotify is missing or refused (limits, other systems)."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        if libc.inotify_add_watch(fd, os.fsencode(directory), _IN_CLOSE_WRITE | _IN_MOVED_TO) < 0:
            os.close(fd)
            return None
        return cls(fd)

    def epoch_files_written(self) -> bool:
        """Read every pending event; whether one was an epoch file."""
        found = False
        while self.fd is not None:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset + _EVENT.size <= len(data):
                _, _, _, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size:offset + _EVENT.size + length].rstrip(b"\0")
                found = found or bool(EPOCH_PATTERN.match(name.decode(errors="replace")))
                offset += _EVENT.size + length
        return found

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class EpochNews:
    """Waits for news of a trial's run; made before its trainer starts, so no epoch file is missed."""

    def __init__(self, run_dir: Path) -> None:
        self.watch = DirectoryWatch.open(run_dir)
        self.process: TrainingProcess | None = None

    def follow(self, process: TrainingProcess) -> None:
        self.process = process

    @property
    def waiting(self) -> int:
        """Epochs whose trainer waits for the verdict (collected by the last `wait`)."""
        verdicts = self.process.verdicts if self.process else None
        return verdicts.waiting if verdicts is not None else 0

    def wait(self, timeout: float) -> int | None:
        """Up to `timeout` seconds, until the trainer ends or an epoch is written; its exit code or None."""
        assert self.process is not None
        process, verdicts = self.process, self.process.verdicts
        deadline = time.monotonic() + timeout
        while (code := process.poll()) is None and (remaining := deadline - time.monotonic()) > 0:
            if verdicts is not None:
                verdicts.collect()
                if verdicts.waiting:
                    break
            poller = select.poll()
            for fd in (process.exit_fd, verdicts and verdicts.fileno(), self.watch and self.watch.fd):
                if fd is not None:
                    poller.register(fd, select.POLLIN)
            if process.exit_fd is None:
                remaining = min(remaining, _NO_EXIT_FD_S)
            poller.poll(max(1, round(remaining * 1000)))
            if self.watch is not None and self.watch.epoch_files_written():
                break
        # Collected before the caller lists the epoch files, so every epoch answered has been read.
        if verdicts is not None:
            verdicts.collect()
        return code

    def go_on(self) -> None:
        """The epochs read are judged: a trainer that waits trains its next one."""
        if self.process is not None and self.process.verdicts is not None:
            self.process.verdicts.go_on()

    def ends_on_its_own(self, within_s: float) -> bool:
        """Let a waiting trainer go on; whether it ends within `within_s` without finishing another epoch.

        For a trainer refused its next epoch by the budget that may just have finished its last one.
        """
        self.go_on()
        deadline = time.monotonic() + within_s
        while (remaining := deadline - time.monotonic()) > 0:
            if self.wait(remaining) is not None:
                return True
            if self.waiting:  # it trained one more: stopped now, that epoch is never judged
                return False
        return False

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()
        if self.process is not None and self.process.verdicts is not None:
            self.process.verdicts.close()
