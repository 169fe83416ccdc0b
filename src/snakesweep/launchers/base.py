"""What every launcher shares: the registry, the started-process handle, and the forked child.

A trial's training always runs in its own session (so its own process group): stopping a trial
signals the whole group, so helpers the trainer spawned (data loader workers, a shell, a
distributed training's ranks) end with it.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from snakesweep.errors import UserError

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
"""Environment variables that cap the threads of OpenMP, MKL, OpenBLAS and numexpr."""

_POLL_S = 0.02
_SETTLE_S = 5.0

L = TypeVar("L", bound="type[Launcher]")


# -- the handle of a started training -------------------------------------------------------------
class TrainingProcess(ABC):
    """A started training run: the leader of its own session and process group.

    Exit codes follow `subprocess`: 0 is success, a negative code -N means killed by signal N.
    """

    pid: int

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._returncode: int | None = None
        self._stopped = False

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
            return self.popen.poll()
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


class ForkedProcess(TrainingProcess):
    """A training in a process forked from the worker (see `fork_training`)."""

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self._pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self._pidfd = os.pidfd_open(pid)

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

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def __del__(self) -> None:
        self._close_pidfd()


# -- launchers ------------------------------------------------------------------------------------
class Launcher(ABC):
    """Starts a trial's training. Chosen by `type` in the config's `launcher` section.

    Subclasses register with `@Launcher.register("name")`, list the config keys they read in
    `fields`, and build themselves from those keys in `from_spec`.
    """

    type_name: ClassVar[str]
    fields: ClassVar[tuple[str, ...]] = ()
    _registry: ClassVar[dict[str, type[Launcher]]] = {}

    @classmethod
    def register(cls, name: str) -> Callable[[L], L]:
        def add(subclass: L) -> L:
            if name in cls._registry and cls._registry[name] is not subclass:
                raise ValueError(f"launcher type {name!r} is already registered")
            subclass.type_name = name
            cls._registry[name] = subclass
            return subclass

        return add

    @classmethod
    def by_name(cls, name: str) -> type[Launcher]:
        return cls._registry[name]

    @classmethod
    def list_available(cls) -> list[str]:
        return sorted(cls._registry)

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: Mapping[str, Any], *, file: str | Path | None = None) -> Launcher:
        """Build from the keys of `fields` present in the config's `launcher` section."""

    def prepare(self) -> None:
        """Once per worker, before the first trial: check the setup and import what trials need."""

    @abstractmethod
    def start(
        self,
        config_path: Path,
        serialization_dir: Path,
        *,
        trial_number: int,
        log_path: Path,
        threads: int,
        env: Mapping[str, str],
    ) -> TrainingProcess:
        """Start training on the rendered config; stdout and stderr are appended to `log_path`."""


def thread_environment(threads: int) -> dict[str, str]:
    """The environment variables that cap a trial's threads."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, not {threads}")
    return {name: str(threads) for name in THREAD_VARIABLES}


def string_list(value: Any, *, field: str, file: str | Path | None, example: str) -> list[str]:
    """A config value that must be a list of strings."""
    if isinstance(value, str):
        raise UserError(
            f"is the string {value!r}, not a list", file=file, field=field, fix=f"write a list: {example}"
        )
    items = list(value) if isinstance(value, Iterable) and not isinstance(value, Mapping) else None
    if items is None or any(not isinstance(item, str) for item in items):
        raise UserError("must be a list of strings", file=file, field=field, fix=f"write a list: {example}")
    return items


@contextlib.contextmanager
def importable_cwd() -> Iterator[None]:
    """Modules in the current directory importable for the block, as AllenNLP's --include-package."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)


# -- forked trainings -----------------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1


def fork_training(
    target: Callable[[], int | None],
    *,
    log_path: Path,
    threads: int,
    env: Mapping[str, str],
) -> ForkedProcess:
    """Run `target()` in a child forked from this process, its own session, output to `log_path`.

    The child starts with what this process imported (allennlp, torch, the user's modules), default
    signal handlers, `threads` as its thread cap and `env` added to its environment. It exits 0 when
    `target` returns None or 0, with the returned code otherwise, and with 1 after writing the
    traceback to the log when `target` raises. It never returns into the caller's code.

    Started from the main thread, the child gets SIGTERM should this process die first, so a killed
    worker leaves no training behind.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    extra_env = {**thread_environment(threads), **dict(env)}
    parent = os.getpid()
    death_signal = threading.current_thread() is threading.main_thread()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()  # or the child would write the parent's buffered output again
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(ready_r)
            _default_signals()
            os.setsid()
            if death_signal:
                _die_with_parent(parent)
            os.write(ready_w, b"\0")
            os.close(ready_w)
            _redirect_output(log_path)
            os.environ.update(extra_env)
            _limit_torch_threads(threads)
            code = _run_target(target)
        except BaseException:
            with contextlib.suppress(BaseException):
                traceback.print_exc()
        finally:
            with contextlib.suppress(BaseException):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    os.close(ready_w)
    try:
        os.read(ready_r, 1)  # returns once the child leads its own group (or died trying)
    finally:
        os.close(ready_r)
    return ForkedProcess(pid)


def _run_target(target: Callable[[], int | None]) -> int:
    """Run the training as a script's main code would run: exit code, traceback, threads joined."""
    try:
        result = target()
    except SystemExit as exit_:
        code = _exit_code(exit_.code)
    except BaseException:
        traceback.print_exc()
        code = 1
    else:
        code = _exit_code(result)
    # An interpreter waits for non-daemon threads before it exits; os._exit would not.
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    return code


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _default_signals() -> None:
    """Undo the handlers the worker installed (it turns SIGTERM into an exception, for one)."""
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(ValueError, OSError, TypeError):
            handler = signal.getsignal(signum)
            if signum == signal.SIGINT:
                signal.signal(signum, signal.default_int_handler)
            elif signum in (signal.SIGTERM, signal.SIGCHLD) or callable(handler):
                signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _die_with_parent(parent: int) -> None:
    """Ask Linux for SIGTERM when the parent exits; exit at once if it is already gone."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _redirect_output(log_path: Path) -> None:
    """fds 1 and 2 to the log (appended), 0 from /dev/null; fresh Python streams and log handlers."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = sys.__stdin__ = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = sys.__stdout__ = _text_stream(1)
    sys.stderr = sys.__stderr__ = _text_stream(2)
    if faulthandler.is_enabled():
        faulthandler.enable(file=sys.stderr)
    faulthandler.cancel_dump_traceback_later()
    # Handlers inherited from the worker point at its streams and files: the trial logs to its own.
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(name)s - %(message)s"))
    logging.getLogger().addHandler(handler)


def _text_stream(fd: int) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )


def _limit_torch_threads(threads: int) -> None:
    """torch read its thread count when the worker imported it: set it again in the child."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
