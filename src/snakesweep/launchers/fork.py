"""Trainings forked from the worker: a child in its own session, output to the trial's log."""

from __future__ import annotations

import contextlib
import faulthandler
import io
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

from snakesweep.launchers import verdicts
from snakesweep.launchers.process import ForkedProcess
from snakesweep.process_env import thread_environment

_PR_SET_PDEATHSIG = 1


def fork_training(
    target: Callable[[], int | None],
    *,
    log_path: Path,
    threads: int,
    env: Mapping[str, str],
    wait_for_verdicts: bool = False,
) -> ForkedProcess:
    """Run `target()` in a child forked from this process, its own session, output to `log_path`.

    The child starts with what this process imported (allennlp, torch, the user's modules), default
    signal handlers, `threads` as its thread cap and `env` added to its environment. It exits 0 when
    `target` returns None or 0, with the returned code otherwise, and with 1 after writing the
    traceback to the log when `target` raises. It never returns into the caller's code.

    Started from the main thread, the child gets SIGTERM should this process die first, so a killed
    worker leaves no training behind. With `wait_for_verdicts`, the child waits at each epoch's end
    until the caller answers through the process's `verdicts` (snakesweep.launchers.verdicts).
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    extra_env = {**thread_environment(threads), **dict(env)}
    parent = os.getpid()
    death_signal = threading.current_thread() is threading.main_thread()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()  # or the child would write the parent's buffered output again
    worker_end, trainer_end = verdicts.socket_pair() if wait_for_verdicts else (None, None)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(ready_r)
            if worker_end is not None and trainer_end is not None:
                worker_end.close()
                verdicts.wait_for_verdicts(trainer_end)
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
    if trainer_end is not None:
        trainer_end.close()
    try:
        os.read(ready_r, 1)  # returns once the child leads its own group (or died trying)
    finally:
        os.close(ready_r)
    return ForkedProcess(pid, verdicts.Verdicts(worker_end) if worker_end is not None else None)


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
