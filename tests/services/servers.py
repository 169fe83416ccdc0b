"""Real MariaDB, PostgreSQL and Slurm servers for tests, started on 127.0.0.1 under a temporary directory.

Each context manager starts its daemons from Debian's packages (see `install-packages`) with data
directories, sockets, logs and pid files under the directory it is given, on free ports picked at
run time, waits until they answer (bounded, with the tail of the server log in the error), yields
the connection details and, on exit, stops every process it started by PID: SIGTERM (SIGINT for
PostgreSQL's fast shutdown), a bounded wait, then SIGKILL, also when the body raised.

Every process started here carries the environment variable `SNAKESWEEP_SERVICE_TAG=<unique id>`;
so do the Slurm jobs submitted with `SlurmInfo.env`. After the orderly stop, whatever still carries
the tag (a `slurmstepd` that outlived `slurmd`, a job's `sleep`, a PostgreSQL backend) is killed by
PID too. `tagged_processes(tag)` lists them, for teardown checks.

    with mariadb_server(tmp) as db:
        env = {**os.environ, **db.env}          # DB_PASSWORD
        url = db.url_template                   # mysql+pymysql://sweeper:${DB_PASSWORD}@127.0.0.1:PORT/sweeps
        db.restart()

    with slurm_cluster(tmp, gpus=2) as cluster:
        subprocess.run(["sbatch", "--gres=gpu:1", "--wrap", "echo $CUDA_VISIBLE_DEVICES"], env=cluster.env)
"""

from __future__ import annotations

import contextlib
import getpass
import glob
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TAG_VARIABLE = "SNAKESWEEP_SERVICE_TAG"
DEFAULT_TIMEOUT = 60.0
LOCALHOST = "127.0.0.1"

__all__ = [
    "TAG_VARIABLE",
    "MariaDBInfo",
    "PostgresInfo",
    "ServiceError",
    "SlurmInfo",
    "free_port",
    "mariadb_server",
    "missing_binaries",
    "process_alive",
    "postgres_server",
    "slurm_cluster",
    "tagged_processes",
]


class ServiceError(RuntimeError):
    """A server did not start or answer in time; the message ends with the tail of its log."""


# --------------------------------------------------------------------------------------------
# processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


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
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if process_alive(pid)]
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if process_alive(pid)]
        time.sleep(0.05)


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


# --------------------------------------------------------------------------------------------
# MariaDB


@dataclass
class MariaDBInfo:
    """A running MariaDB: a database and a user with a random password; `restart()` keeps port and data."""

    host: str
    port: int
    database: str
    user: str
    password: str
    socket: Path
    datadir: Path
    log: Path
    admin_defaults: Path  # client option file: root over the UNIX socket, no password
    tag: str
    _daemon: _Daemon = field(repr=False)
    _timeout: float = field(default=DEFAULT_TIMEOUT, repr=False)

    @property
    def url_template(self) -> str:
        """`mysql+pymysql://USER:${DB_PASSWORD}@127.0.0.1:PORT/DB`: the password comes from the environment."""
        return f"mysql+pymysql://{self.user}:${{DB_PASSWORD}}@{self.host}:{self.port}/{self.database}"

    def url(self, database: str | None = None) -> str:
        """The URL with the password in it, for in-process use only (never print or log it)."""
        return f"mysql+pymysql://{self.user}:{self.password}@{self.host}:{self.port}/{database or self.database}"

    @property
    def env(self) -> dict[str, str]:
        """Variables for processes that expand `url_template`."""
        return {"DB_PASSWORD": self.password}

    @property
    def pid(self) -> int | None:
        return self._daemon.pid

    def sql(self, statements: str, database: str | None = None) -> str:
        """Run SQL as the server's root over its UNIX socket (statements on stdin); returns stdout."""
        argv = [_which("mariadb") or "mariadb", f"--defaults-extra-file={self.admin_defaults}",
                "--batch", "--skip-column-names"]
        if database:
            argv.append(database)
        return _run(argv, input=statements, env=_base_env(self.tag)).stdout

    def create_database(self, name: str, user: str | None = None, password: str | None = None) -> None:
        """A database (utf8mb4) with all privileges for `user` (default: this server's user)."""
        user = user or self.user
        password = password if password is not None else (self.password if user == self.user else secrets.token_hex(16))
        statements = [f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;"]
        for host in ("%", "localhost"):
            statements.append(f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{password}';")
            statements.append(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{user}'@'{host}';")
        statements.append("FLUSH PRIVILEGES;")
        self.sql("\n".join(statements))

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS `{name}`;")

    def stop(self) -> None:
        self._daemon.stop()

    def start(self) -> None:
        """Start the same data directory again on the same port (after `stop()`)."""
        if self._daemon.running():
            return
        self._daemon.start()
        _wait_mariadb(self, self._timeout)

    def restart(self) -> None:
        self.stop()
        self.start()


def _mariadb_ping(info: MariaDBInfo) -> bool:
    if not info.socket.exists() or not _port_open(info.port):
        return False
    admin = _which("mariadb-admin") or _which("mysqladmin") or "mariadb-admin"
    result = subprocess.run([admin, f"--defaults-extra-file={info.admin_defaults}", "--connect-timeout=2", "ping"],
                            capture_output=True, text=True, env=_base_env(info.tag), timeout=15)
    return result.returncode == 0


def _wait_mariadb(info: MariaDBInfo, timeout: float) -> None:
    _wait_for(lambda: _mariadb_ping(info), info._daemon, f"no answer on {info.socket} and port {info.port}", timeout)


@contextlib.contextmanager
def mariadb_server(tmp: str | os.PathLike, *, database: str = "sweeps", user: str = "sweeper",
                   password: str | None = None, port: int | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> Iterator[MariaDBInfo]:
    """A private MariaDB under `tmp/mariadb`, on 127.0.0.1:`port` (default: a free one).

    The server runs as root (`--user=root`); root logs in over the UNIX socket only. `database` and
    `user` (from any host, password `password`, default random hex) are created.
    """
    missing = missing_binaries("mariadb")
    if missing:
        raise ServiceError(f"MariaDB is not installed (missing {', '.join(missing)}): run tests/services/install-packages")
    base = Path(tmp).resolve() / "mariadb"
    datadir, rundir, tmpdir = base / "data", base / "run", base / "tmp"
    for directory in (datadir, rundir, tmpdir):
        directory.mkdir(parents=True, exist_ok=True)
    tag = _new_tag("mariadb")
    env = _base_env(tag)
    log = base / "mariadbd.log"
    sock = rundir / "mysqld.sock"
    fixed_port = port is not None
    port = port or free_port()
    admin = base / "admin.cnf"
    admin.write_text(f"[client]\nuser=root\nsocket={sock}\n")
    admin.chmod(0o600)

    if not (datadir / "mysql").is_dir():
        _run([_which("mariadb-install-db") or "mariadb-install-db", "--no-defaults", "--user=root",
              f"--datadir={datadir}", "--auth-root-authentication-method=socket", "--skip-test-db",
              "--skip-name-resolve", f"--tmpdir={tmpdir}"],
             env=env, timeout=max(timeout, 120))

    mariadbd = _which("mariadbd") or "/usr/sbin/mariadbd"
    argv = [
        mariadbd, "--no-defaults", "--user=root", f"--datadir={datadir}", f"--socket={sock}",
        f"--port={port}", f"--bind-address={LOCALHOST}", f"--pid-file={rundir / 'mariadbd.pid'}",
        f"--tmpdir={tmpdir}", "--skip-name-resolve", "--skip-log-bin", "--max-connections=500",
        "--character-set-server=utf8mb4", "--collation-server=utf8mb4_bin",
        "--innodb-buffer-pool-size=512M", "--innodb-log-file-size=48M",
        "--innodb-flush-log-at-trx-commit=2", "--innodb-lock-wait-timeout=900",
        "--skip-innodb-doublewrite", "--performance-schema=OFF",
    ]
    daemon = _Daemon("mariadbd", argv, log, env)
    password = password or secrets.token_hex(16)
    info = MariaDBInfo(host=LOCALHOST, port=port, database=database, user=user, password=password,
                       socket=sock, datadir=datadir, log=log, admin_defaults=admin, tag=tag,
                       _daemon=daemon, _timeout=timeout)
    try:
        _start_on_port(daemon, lambda: _wait_mariadb(info, timeout), argv.index(f"--port={port}"),
                       lambda new: f"--port={new}", lambda new: setattr(info, "port", new), fixed_port)
        info.create_database(database, user, password)
        yield info
    finally:
        daemon.stop()
        _kill_tagged(tag)


# --------------------------------------------------------------------------------------------
# PostgreSQL


@dataclass
class PostgresInfo:
    """A running PostgreSQL: a database owned by a user with a random password."""

    host: str
    port: int
    database: str
    user: str
    password: str
    socket_dir: Path
    datadir: Path
    log: Path
    os_user: str  # the unprivileged account the server runs as
    tag: str
    _daemon: _Daemon = field(repr=False)
    _bindir: Path = field(repr=False)
    _timeout: float = field(default=DEFAULT_TIMEOUT, repr=False)

    @property
    def url_template(self) -> str:
        """`postgresql+psycopg2://USER:${DB_PASSWORD}@127.0.0.1:PORT/DB`."""
        return f"postgresql+psycopg2://{self.user}:${{DB_PASSWORD}}@{self.host}:{self.port}/{self.database}"

    def url(self, database: str | None = None) -> str:
        """The URL with the password in it, for in-process use only (never print or log it)."""
        return f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}/{database or self.database}"

    @property
    def env(self) -> dict[str, str]:
        return {"DB_PASSWORD": self.password}

    @property
    def pid(self) -> int | None:
        return self._daemon.pid

    def sql(self, statements: str, database: str = "postgres") -> str:
        """Run SQL as the superuser `postgres` over the UNIX socket (trust; statements on stdin)."""
        argv = [str(self._bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
                "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d", database]
        return _run(argv, input=statements, env=_base_env(self.tag)).stdout

    def create_database(self, name: str, user: str | None = None, password: str | None = None) -> None:
        """A database owned by `user` (default: this server's user), created if missing."""
        user = user or self.user
        password = password if password is not None else (self.password if user == self.user else secrets.token_hex(16))
        exists = self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{user}';").strip()
        verb = "ALTER" if exists else "CREATE"
        self.sql(f"{verb} ROLE \"{user}\" LOGIN PASSWORD '{password}';")
        if not self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';").strip():
            self.sql(f"CREATE DATABASE \"{name}\" OWNER \"{user}\" ENCODING 'UTF8' TEMPLATE template0;")

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE);")

    def stop(self) -> None:
        self._daemon.stop()

    def start(self) -> None:
        if self._daemon.running():
            return
        self._daemon.start()
        _wait_postgres(self, self._timeout)

    def restart(self) -> None:
        self.stop()
        self.start()


def _reachable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether every directory above `path` lets `uid` pass (the x bit for it)."""
    groups = {gid, *(g.gr_gid for g in grp.getgrall() if pwd.getpwuid(uid).pw_name in g.gr_mem)}
    for directory in [path, *path.parents]:
        try:
            st = directory.stat()
        except OSError:
            return False
        if st.st_uid == uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return False
    return True


_PRIVATE_PREFIX = "snakesweep-postgres-"


def _remove_orphaned_private_dirs() -> None:
    """Private data dirs left by a test run that was killed (its owner.pid no longer alive)."""
    for directory in Path(tempfile.gettempdir()).glob(f"{_PRIVATE_PREFIX}*"):
        try:
            owner = int((directory / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if not process_alive(owner):
            shutil.rmtree(directory, ignore_errors=True)


def _postgres_os_user() -> str:
    if os.geteuid() != 0:
        return getpass.getuser()
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ServiceError("no unprivileged account (postgres or nobody) to run PostgreSQL as")


def _postgres_ready(info: PostgresInfo) -> bool:
    if not _port_open(info.port):
        return False
    result = subprocess.run([str(info._bindir / "pg_isready"), "-q", "-h", LOCALHOST, "-p", str(info.port), "-t", "2"],
                            capture_output=True, env=_base_env(info.tag), timeout=15)
    return result.returncode == 0


def _wait_postgres(info: PostgresInfo, timeout: float) -> None:
    _wait_for(lambda: _postgres_ready(info), info._daemon, f"no answer on port {info.port}", timeout)


@contextlib.contextmanager
def postgres_server(tmp: str | os.PathLike, *, database: str = "sweeps", user: str = "sweeper",
                    password: str | None = None, port: int | None = None,
                    timeout: float = DEFAULT_TIMEOUT) -> Iterator[PostgresInfo]:
    """A private PostgreSQL under `tmp/postgres`, on 127.0.0.1:`port` (default: a free one).

    initdb and the server run as the `postgres` system account (initdb refuses root). When that
    account cannot reach `tmp` (pytest's base temp directory is mode 0700), the data directory goes
    to a private directory under the system temp dir instead, linked as `tmp/postgres/data` and
    removed on exit; the log stays at `tmp/postgres/postgres.log`.
    """
    bindir = _postgres_bindir()
    if bindir is None:
        raise ServiceError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin): run tests/services/install-packages")
    base = Path(tmp).resolve() / "postgres"
    base.mkdir(parents=True, exist_ok=True)
    os_user = _postgres_os_user()
    entry = pwd.getpwnam(os_user)
    tag = _new_tag("postgres")
    env = _base_env(tag)
    env["HOME"] = entry.pw_dir if os.path.isdir(entry.pw_dir) else "/"
    private: Path | None = None
    if _reachable_by(base, entry.pw_uid, entry.pw_gid):
        home = base
    else:
        _remove_orphaned_private_dirs()
        private = Path(tempfile.mkdtemp(prefix=_PRIVATE_PREFIX))
        (private / "owner.pid").write_text(str(os.getpid()))
        home = private
        link = base / "data"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(private / "data")
    datadir, rundir = home / "data", home / "run"
    log = base / "postgres.log"
    fixed_port = port is not None
    port = port or free_port()
    tmp_dirs = [datadir, rundir]
    if private is not None:
        os.chown(private, entry.pw_uid, entry.pw_gid)
    for directory in tmp_dirs:
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        directory.chmod(0o700)

    try:
        if not (datadir / "PG_VERSION").exists():
            _run([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                 env=env, user=os_user, cwd=home, timeout=max(timeout, 120))
        argv = [
            str(bindir / "postgres"), "-D", str(datadir), "-p", str(port),
            "-c", f"listen_addresses={LOCALHOST}", "-c", f"unix_socket_directories={rundir}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "shared_buffers=64MB", "-c", "max_connections=300", "-c", "logging_collector=off",
            "-c", "log_min_messages=warning", "-c", "password_encryption=scram-sha-256",
        ]
        daemon = _Daemon("postgres", argv, log, env, cwd=home, user=os_user, stop_signal=signal.SIGINT)
        password = password or secrets.token_hex(16)
        info = PostgresInfo(host=LOCALHOST, port=port, database=database, user=user, password=password,
                            socket_dir=rundir, datadir=datadir, log=log, os_user=os_user, tag=tag,
                            _daemon=daemon, _bindir=bindir, _timeout=timeout)
        try:
            _start_on_port(daemon, lambda: _wait_postgres(info, timeout), argv.index("-p") + 1, str,
                           lambda new: setattr(info, "port", new), fixed_port)
            info.create_database(database, user, password)
            yield info
        finally:
            daemon.stop()
            _kill_tagged(tag)
    finally:
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Slurm

SLURM_CLIENTS = ("sbatch", "srun", "salloc", "squeue", "sacct", "scancel", "sinfo", "scontrol",
                 "sacctmgr", "sshare", "sstat", "sprio", "sreport", "sdiag", "strigger", "sattach")


@dataclass
class SlurmInfo:
    """A running one-node Slurm cluster with fake GPUs; pass `env` to every client command."""

    cluster_name: str
    node: str
    partition: str
    account: str | None  # None without slurmdbd
    cpus: int
    memory_mb: int
    gpus: int
    gpu_devices: list[Path]
    conf: Path
    bin_dir: Path  # wrappers of the client commands that pin SLURM_CONF
    log_dir: Path
    env: dict[str, str]  # the full environment for client commands and jobs
    extra_env: dict[str, str]  # only what `env` adds to os.environ
    munge_socket: Path
    with_dbd: bool
    tag: str
    daemons: dict[str, _Daemon] = field(repr=False, default_factory=dict)
    mariadb: MariaDBInfo | None = field(repr=False, default=None)

    def run(self, *argv: str, check: bool = True, timeout: float = 30.0, input: str | None = None,
            cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
        """Run a client command (`sbatch`, `squeue`, ...) against this cluster."""
        return _run(argv, env=self.env, check=check, timeout=timeout, input=input,
                    cwd=Path(cwd) if cwd else None)

    def logs(self, lines: int = 30) -> str:
        """The tails of every daemon log, for failure messages."""
        return "\n".join(f"--- {d.log}\n{_tail(d.log, lines)}" for d in self.daemons.values())

    def pids(self) -> dict[str, int | None]:
        return {name: daemon.pid for name, daemon in self.daemons.items()}

    def cancel_all(self, timeout: float = 30.0) -> None:
        """scancel every job and wait (bounded) until the queue is empty."""
        self.run("scancel", "--full", "--user", getpass.getuser(), check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run("squeue", "--noheader", "--format=%i", check=False)
            if out.returncode != 0 or not out.stdout.strip():
                return
            time.sleep(0.3)


def _quietly(function: Callable, *args: object) -> None:
    with contextlib.suppress(Exception):
        function(*args)


def _machine_memory_mb() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 4096


def _write_wrappers(bin_dir: Path, conf: Path) -> None:
    """Client commands that find this cluster's slurm.conf even where SLURM_CONF was dropped.

    The Slurm executor's job step (snakemake-executor-plugin-slurm-jobstep) removes every SLURM_*
    variable before its nested `srun`, SLURM_CONF included; PATH survives, so the wrappers do.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in SLURM_CLIENTS:
        real = _which(name)
        if real is None:
            continue
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nSLURM_CONF="{conf}"\nexport SLURM_CONF\nexec "{real}" "$@"\n')
        wrapper.chmod(0o755)


def _make_gpu_devices(dev_dir: Path, count: int) -> list[Path]:
    """Character devices nvidia0..N-1 (major 195, as the real ones); plain files where mknod is denied."""
    dev_dir.mkdir(parents=True, exist_ok=True)
    devices = []
    for index in range(count):
        path = dev_dir / f"nvidia{index}"
        if not path.exists():
            try:
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(195, index))
            except PermissionError:
                path.touch(0o666)
        devices.append(path)
    return devices


def _write_munge_key(path: Path) -> None:
    path.write_bytes(secrets.token_bytes(1024))
    path.chmod(0o400)


@contextlib.contextmanager
def slurm_cluster(tmp: str | os.PathLike, *, gpus: int = 2, cpus: int = 2, with_dbd: bool = True,
                  mariadb: MariaDBInfo | None = None, partition: str = "gpu", memory_mb: int | None = None,
                  cluster_name: str = "sweeptest", account: str = "sweeps",
                  timeout: float = DEFAULT_TIMEOUT) -> Iterator[SlurmInfo]:
    """A one-node Slurm cluster under `tmp/slurm`: munged, slurmdbd (optional), slurmctld, slurmd.

    Node `localhost` (127.0.0.1) with `cpus` CPUs, `memory_mb` (default: 90 % of the machine) and
    `gpus` fake GPUs (gres.conf with AutoDetect=off over character devices under tmp), in one
    default partition `partition`; select/cons_tres, so `--gpus=1` / `--gres=gpu:1` allocate one
    GPU and set CUDA_VISIBLE_DEVICES. With `with_dbd`, slurmdbd stores accounting in `mariadb`
    (a private MariaDB is started when None), so `sacct` works, and the account `account` holds
    the current user. The daemons run as root here (SlurmUser=root). MinJobAge=300, so finished
    jobs stay visible to `squeue` for five minutes.
    """
    missing = missing_binaries("slurm")
    if not with_dbd or mariadb is not None:
        missing = [name for name in missing if name != "mariadbd"]
    if missing:
        raise ServiceError(f"Slurm is not installed (missing {', '.join(missing)}): run tests/services/install-packages")
    base = Path(tmp).resolve() / "slurm"
    etc, log_dir, run_dir = base / "etc", base / "log", base / "run"
    state, spool, munge_dir = base / "state", base / "spool", base / "munge"
    for directory in (etc, log_dir, run_dir, state, spool, munge_dir):
        directory.mkdir(parents=True, exist_ok=True)
    munge_dir.chmod(0o755)
    tag = _new_tag("slurm")
    user = getpass.getuser()
    node = "localhost"
    memory_mb = memory_mb or int(_machine_memory_mb() * 0.9)
    ctld_port, slurmd_port, dbd_port = _free_ports(3)
    munge_socket = munge_dir / "munge.socket"
    conf = etc / "slurm.conf"
    bin_dir = base / "bin"
    gpu_devices = _make_gpu_devices(base / "dev", gpus)

    env = _base_env(tag)
    env["SLURM_CONF"] = str(conf)
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "/usr/bin:/bin")])
    extra_env = {"SLURM_CONF": str(conf), "PATH": env["PATH"], TAG_VARIABLE: tag}

    auth = f"AuthType=auth/munge\nAuthInfo=socket={munge_socket}\n"
    accounting = (
        f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost={LOCALHOST}\n"
        f"AccountingStoragePort={dbd_port}\nAccountingStorageTRES=gres/gpu\n"
        # Connections to slurmdbd take their MUNGE socket from here, not from AuthInfo.
        f"AccountingStoragePass={munge_socket}\n"
        if with_dbd else "AccountingStorageType=accounting_storage/none\n"
    )
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    conf.write_text(
        f"""# one-node test cluster, written by tests/services/servers.py
ClusterName={cluster_name}
SlurmctldHost={node}({LOCALHOST})
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser=root
{auth}CredType=cred/munge
StateSaveLocation={state}
SlurmdSpoolDir={spool}
SlurmctldPidFile={run_dir}/slurmctld.pid
SlurmdPidFile={run_dir}/slurmd.pid
SlurmctldLogFile={log_dir}/slurmctld.log
SlurmdLogFile={log_dir}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/builtin
GresTypes=gpu
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
Waittime=0
MessageTimeout=20
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
PlugStackConfig={etc}/plugstack.conf
{accounting}DefMemPerCPU={max(256, min(2048, memory_mb // max(cpus, 1) // 2))}
NodeName={node} NodeAddr={LOCALHOST} NodeHostname={node} CPUs={cpus} RealMemory={memory_mb}{gres} State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""
    )
    (etc / "plugstack.conf").write_text("")
    gres_lines = ["AutoDetect=off"]
    if gpus:
        gres_lines.append(f"NodeName={node} Name=gpu File={base / 'dev'}/nvidia[0-{gpus - 1}]")
    (etc / "gres.conf").write_text("\n".join(gres_lines) + "\n")
    _write_wrappers(bin_dir, conf)

    daemons: dict[str, _Daemon] = {}
    info = SlurmInfo(cluster_name=cluster_name, node=node, partition=partition, account=account if with_dbd else None,
                     cpus=cpus, memory_mb=memory_mb, gpus=gpus, gpu_devices=gpu_devices, conf=conf,
                     bin_dir=bin_dir, log_dir=log_dir, env=env, extra_env=extra_env, munge_socket=munge_socket,
                     with_dbd=with_dbd, tag=tag, daemons=daemons)

    with contextlib.ExitStack() as stack:
        # Registered first, runs last: whatever still carries the tag (slurmstepd, job processes).
        stack.callback(_kill_tagged, tag)

        # munge: own key and socket.
        key = munge_dir / "munge.key"
        _write_munge_key(key)
        munged = _Daemon("munged", [
            _which("munged") or "munged", "--foreground", "--force", f"--key-file={key}",
            f"--socket={munge_socket}", f"--pid-file={munge_dir / 'munged.pid'}",
            f"--seed-file={munge_dir / 'munged.seed'}", f"--log-file={log_dir / 'munged.log'}",
            "--num-threads=4",
        ], log_dir / "munged.out", env)
        daemons["munged"] = munged
        # Stops run in reverse order: jobs, slurmd, slurmctld, slurmdbd, MariaDB, munged, leftovers.
        stack.callback(munged.stop)
        munged.start()
        _wait_for(lambda: munge_socket.exists(), munged, f"no socket {munge_socket}", timeout)

        if with_dbd:
            if mariadb is None:
                mariadb = stack.enter_context(mariadb_server(base, database="slurm_acct_db", user="slurm",
                                                             timeout=timeout))
                storage_user, storage_pass, storage_db = mariadb.user, mariadb.password, mariadb.database
            else:
                storage_user, storage_pass, storage_db = "slurm", secrets.token_hex(16), f"slurm_acct_{tag[-12:]}"
                mariadb.create_database(storage_db, storage_user, storage_pass)
                stack.callback(_quietly, mariadb.drop_database, storage_db)  # after slurmdbd stopped
            info.mariadb = mariadb
            dbd_conf = etc / "slurmdbd.conf"
            dbd_conf.write_text(
                f"""{auth}DbdHost={node}
DbdAddr={LOCALHOST}
DbdPort={dbd_port}
SlurmUser={user}
LogFile={log_dir}/slurmdbd.log
PidFile={run_dir}/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost={LOCALHOST}
StoragePort={mariadb.port}
StorageUser={storage_user}
StoragePass={storage_pass}
StorageLoc={storage_db}
"""
            )
            dbd_conf.chmod(0o600)
            slurmdbd = _Daemon("slurmdbd", [_which("slurmdbd") or "slurmdbd", "-D", "-s"], log_dir / "slurmdbd.out", env)
            daemons["slurmdbd"] = slurmdbd
            stack.callback(slurmdbd.stop)
            slurmdbd.start()
            _wait_for(lambda: _port_open(dbd_port), slurmdbd, f"port {dbd_port} closed", timeout)
            _wait_for(lambda: info.run("sacctmgr", "-n", "list", "cluster", check=False).returncode == 0,
                      slurmdbd, "sacctmgr list cluster fails", timeout)
            info.run("sacctmgr", "-i", "add", "cluster", cluster_name, check=False)
            info.run("sacctmgr", "-i", "add", "account", account, f"Cluster={cluster_name}",
                     "Description=test", "Organization=test", check=False)
            info.run("sacctmgr", "-i", "add", "user", user, f"Account={account}", f"Cluster={cluster_name}",
                     f"DefaultAccount={account}", check=False)

        slurmctld = _Daemon("slurmctld", [_which("slurmctld") or "slurmctld", "-D", "-i", "-f", str(conf)],
                            log_dir / "slurmctld.out", env)
        daemons["slurmctld"] = slurmctld
        stack.callback(slurmctld.stop)
        slurmctld.start()
        _wait_for(lambda: info.run("scontrol", "ping", check=False).stdout.count("UP") > 0,
                  slurmctld, "scontrol ping does not answer UP", timeout)

        slurmd = _Daemon("slurmd", [_which("slurmd") or "slurmd", "-D", "-N", node, "-f", str(conf)],
                         log_dir / "slurmd.out", env)
        daemons["slurmd"] = slurmd
        stack.callback(slurmd.stop)
        stack.callback(_quietly, info.cancel_all, 15.0)
        slurmd.start()

        def node_idle() -> bool:
            out = info.run("sinfo", "--noheader", "--nodes", node, "--format=%T", check=False).stdout.strip()
            return out.startswith("idle")

        try:
            _wait_for(node_idle, slurmd, f"node {node} not idle in sinfo", timeout)
        except ServiceError as error:
            raise ServiceError(f"{error}\n{info.logs()}") from None
        yield info
