"""What every test server shares: processes, ports, tags, waiting (the SQL servers' base is database.py).

Each server module (`mariadb.py`, `postgres.py`, `slurm.py`) starts its daemons from Debian's
packages (see `install-packages`) with data directories, sockets, logs and pid files under the
directory it is given, on free ports picked at run time, waits until they answer (bounded, with the
tail of the server log in the error), yields the connection details and, on exit, stops every
process it started by PID: SIGTERM (SIGINT for PostgreSQL's fast shutdown), a bounded wait, then
SIGKILL, also when the body raised.

Every process started here carries the environment variable `SNAKESWEEP_SERVICE_TAG=<unique id>`;
so do the Slurm jobs submitted with `SlurmInfo.env`. After the orderly stop, whatever still carries
the tag (a `slurmstepd` that outlived `slurmd`, a job's `sleep`, a PostgreSQL backend) is killed by
PID too. `tagged_processes(tag)` lists them, for teardown checks.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TAG_VARIABLE = "SNAKESWEEP_SERVICE_TAG"
DEFAULT_TIMEOUT = 60.0
LOCALHOST = "127.0.0.1"


class ServiceError(RuntimeError):
    """A server did not start or answer in time; the message ends with the tail of its log."""


# --------------------------------------------------------------------------------------------
# processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's choice)."""
    return _free_ports(1)[0]


def _free_ports(count: int) -> list[int]:
    """Distinct free ports: the sockets stay bound until all are chosen."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOCALHOST, 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _tail(path: Path | None, lines: int = 40) -> str:
    if path is None:
        return "(no log)"
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as error:
        return f"(cannot read {path}: {error})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (zombies do not count)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def tagged_processes(tag: str) -> list[tuple[int, str]]:
    """Live processes whose environment holds `SNAKESWEEP_SERVICE_TAG=tag`: (pid, command name)."""
    needle = f"{TAG_VARIABLE}={tag}".encode()
    own = {os.getpid(), os.getppid()}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in own:
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
            if needle not in environ or not process_alive(pid):
                continue
            with open(f"/proc/{pid}/comm") as handle:
                found.append((pid, handle.read().strip()))
        except OSError:
            continue
    return found


def _kill_tagged(tag: str, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, every live process carrying the tag (by PID)."""
    pids = [pid for pid, _ in tagged_processes(tag)]
    for sig, poll in ((signal.SIGTERM, 0.1), (signal.SIGKILL, 0.05)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if process_alive(pid)]
            time.sleep(poll)


try:  # resolved here, not in the forked child (no imports or locks between fork and exec)
    import ctypes

    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (ImportError, OSError, AttributeError):  # not Linux
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the process that started it dies (even by SIGKILL)."""
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG


@dataclass
class _Daemon:
    """One server process run in the foreground, its output in a log file."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    cwd: Path | None = None
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    popen: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        extra: dict = {}
        if self.user is not None and os.geteuid() == 0:
            entry = pwd.getpwnam(self.user)
            extra = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **extra,
            )

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        popen = self.popen
        if popen is None:
            return
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(self.stop_signal)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    popen.kill()
                popen.wait(10)
        # Anything the daemon left in its own session (children it did not reap).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)

    def fail(self, what: str) -> ServiceError:
        status = ""
        if self.popen is not None and self.popen.poll() is not None:
            status = f" ({self.name} exited with status {self.popen.returncode})"
        return ServiceError(f"{what}{status}; last lines of {self.log}:\n{_tail(self.log)}")


def _wait_for(check: Callable[[], bool], daemon: _Daemon, what: str, timeout: float) -> None:
    """Poll `check` until true; fail early when the daemon died, with its log's tail."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if not daemon.running():
            raise daemon.fail(f"{daemon.name} stopped before it was ready: {what}")
        if time.monotonic() > deadline:
            raise daemon.fail(f"{daemon.name} not ready after {timeout:.0f} s: {what}")
        time.sleep(0.1)


def _start_on_port(daemon: _Daemon, wait: Callable[[], None], port_index: int, render: Callable[[int], str],
                   on_new_port: Callable[[int], None], fixed: bool, attempts: int = 3) -> None:
    """Start and wait; when another process took the chosen port meanwhile, retry on a new one."""
    for attempt in range(attempts):
        daemon.start()
        try:
            wait()
            return
        except ServiceError:
            daemon.stop()
            clash = "Address already in use" in _tail(daemon.log, 15)
            if fixed or not clash or attempt == attempts - 1:
                raise
            port = free_port()
            daemon.argv[port_index] = render(port)
            on_new_port(port)


def _port_open(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, input: str | None = None,
         timeout: float = 30.0, user: str | None = None, check: bool = True,
         cwd: Path | None = None) -> subprocess.CompletedProcess:
    extra: dict = {}
    if user is not None and os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        extra = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    result = subprocess.run(list(argv), input=input, text=True, capture_output=True, env=env,
                            timeout=timeout, cwd=cwd, **extra)
    if check and result.returncode != 0:
        raise ServiceError(
            f"{Path(argv[0]).name} failed with status {result.returncode}:\n"
            f"{(result.stdout + result.stderr).strip()[-3000:]}"
        )
    return result


def _base_env(tag: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
    env[TAG_VARIABLE] = tag
    env.setdefault("LANG", "C.UTF-8")
    return env


def _new_tag(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


def _which(name: str, *extra_dirs: str) -> str | None:
    path = os.pathsep.join([*extra_dirs, os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])
    return shutil.which(name, path=path)


def _postgres_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def missing_binaries(kind: str) -> list[str]:
    """The programs `kind` ("mariadb", "postgres" or "slurm") needs and this machine lacks."""
    names = {
        "mariadb": ["mariadbd", "mariadb-install-db", "mariadb"],
        "slurm": ["munged", "slurmctld", "slurmd", "slurmdbd", "slurmstepd", "sbatch", "squeue",
                  "sacct", "sacctmgr", "scontrol", "sinfo", "scancel", "srun", "mariadbd"],
    }
    if kind == "postgres":
        bindir = _postgres_bindir()
        return [] if bindir else ["postgres (/usr/lib/postgresql/*/bin)"]
    return [name for name in names[kind] if _which(name) is None]


def _raise_if_missing(what: str, missing: list[str]) -> None:
    """ServiceError naming the programs `what` lacks (from `missing_binaries`), if any."""
    if missing:
        raise ServiceError(f"{what} is not installed (missing {', '.join(missing)}): "
                           "run tests/services/install-packages")
