"""A one-node Slurm cluster on 127.0.0.1 for tests: `slurm_cluster(tmp, gpus=2)`.

    with slurm_cluster(tmp, gpus=2) as cluster:
        subprocess.run(["sbatch", "--gres=gpu:1", "--wrap", "echo $CUDA_VISIBLE_DEVICES"], env=cluster.env)
"""

from __future__ import annotations

import contextlib
import getpass
import os
import secrets
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.services.base import (DEFAULT_TIMEOUT, LOCALHOST, TAG_VARIABLE, ServiceError, _base_env, _Daemon,
                                 _free_ports, _kill_tagged, _new_tag, _port_open, _raise_if_missing, _run, _tail,
                                 _wait_for, _which, missing_binaries)
from tests.services.mariadb import MariaDBInfo, mariadb_server

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
    _raise_if_missing("Slurm", missing)
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
        f"""# one-node test cluster, written by tests/services/slurm.py
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

        def launch(name: str, *args: str) -> _Daemon:
            """Start the daemon `name`, its output in log_dir/NAME.out, and stop it when the cluster stops."""
            daemon = daemons[name] = _Daemon(name, [_which(name) or name, *args], log_dir / f"{name}.out", env)
            # Stops run in reverse order: jobs, slurmd, slurmctld, slurmdbd, MariaDB, munged, leftovers.
            stack.callback(daemon.stop)
            daemon.start()
            return daemon

        # munge: own key and socket.
        key = munge_dir / "munge.key"
        _write_munge_key(key)
        munged = launch("munged", "--foreground", "--force", f"--key-file={key}",
                        f"--socket={munge_socket}", f"--pid-file={munge_dir / 'munged.pid'}",
                        f"--seed-file={munge_dir / 'munged.seed'}", f"--log-file={log_dir / 'munged.log'}",
                        "--num-threads=4")
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
            slurmdbd = launch("slurmdbd", "-D", "-s")
            _wait_for(lambda: _port_open(dbd_port), slurmdbd, f"port {dbd_port} closed", timeout)
            _wait_for(lambda: info.run("sacctmgr", "-n", "list", "cluster", check=False).returncode == 0,
                      slurmdbd, "sacctmgr list cluster fails", timeout)
            info.run("sacctmgr", "-i", "add", "cluster", cluster_name, check=False)
            info.run("sacctmgr", "-i", "add", "account", account, f"Cluster={cluster_name}",
                     "Description=test", "Organization=test", check=False)
            info.run("sacctmgr", "-i", "add", "user", user, f"Account={account}", f"Cluster={cluster_name}",
                     f"DefaultAccount={account}", check=False)

        slurmctld = launch("slurmctld", "-D", "-i", "-f", str(conf))
        _wait_for(lambda: info.run("scontrol", "ping", check=False).stdout.count("UP") > 0,
                  slurmctld, "scontrol ping does not answer UP", timeout)

        slurmd = launch("slurmd", "-D", "-N", node, "-f", str(conf))
        stack.callback(_quietly, info.cancel_all, 15.0)  # runs before slurmd stops

        def node_idle() -> bool:
            out = info.run("sinfo", "--noheader", "--nodes", node, "--format=%T", check=False).stdout.strip()
            return out.startswith("idle")

        try:
            _wait_for(node_idle, slurmd, f"node {node} not idle in sinfo", timeout)
        except ServiceError as error:
            raise ServiceError(f"{error}\n{info.logs()}") from None
        yield info
