"""The servers of tests/services start, answer, restart and stop: MariaDB, PostgreSQL, Slurm.

Real daemons on 127.0.0.1 (see tests/services/servers.py); `make test` installs their packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import optuna
import pytest

from tests.conftest import wait_until as conftest_wait_until
import sqlalchemy
import yaml

from tests.services import servers

pytestmark = pytest.mark.services

BIN = Path(sys.executable).parent


def expand(template: str, env: dict[str, str]) -> str:
    """What the workflow does with a storage URL from config: ${DB_PASSWORD} from the environment."""
    return template.replace("${DB_PASSWORD}", env["DB_PASSWORD"])


def command_lines_holding(secret: str) -> list[str]:
    """Command lines of live processes that show `secret` (none may)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if secret in cmdline:
                found.append(f"{entry}: {cmdline[:80]}")
    return found


def run_optuna_study(url: str, trials: int = 3) -> str:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name=name, direction="minimize")
    study.optimize(lambda trial: (trial.suggest_float("x", -1.0, 1.0)) ** 2, n_trials=trials)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == trials
    storage.engine.dispose()
    return name


def check_database_server(info: servers.MariaDBInfo | servers.PostgresInfo) -> None:
    env = {**os.environ, **info.env}
    url = expand(info.url_template, env)
    assert "${DB_PASSWORD}" in info.url_template and info.password not in info.url_template
    assert info.host == "127.0.0.1"

    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    engine.dispose()

    name = run_optuna_study(url)
    assert not command_lines_holding(info.password)

    old_pid = info.pid
    info.restart()
    assert info.pid != old_pid and info.port == int(url.rsplit(":", 1)[1].split("/")[0])

    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    engine.dispose()
    study = optuna.load_study(study_name=name, storage=url)
    assert len(study.trials) == 3


def test_mariadb_optuna_and_restart(mariadb: servers.MariaDBInfo) -> None:
    assert mariadb.url_template.startswith("mysql+pymysql://sweeper:${DB_PASSWORD}@127.0.0.1:")
    check_database_server(mariadb)


def test_postgres_optuna_and_restart(postgres: servers.PostgresInfo) -> None:
    assert postgres.url_template.startswith("postgresql+psycopg2://sweeper:${DB_PASSWORD}@127.0.0.1:")
    check_database_server(postgres)


def test_per_test_databases(mariadb_database, postgres_database) -> None:
    for database in (mariadb_database, postgres_database):
        run_optuna_study(expand(database.url_template, database.env), trials=1)


# ------------------------------------------------------------------------------------------- Slurm


def wait_until(check, what: str, timeout: float, cluster: servers.SlurmInfo):
    """Poll like tests.conftest.wait_until; on failure, show the queue and the daemons' logs."""

    def details() -> str:
        return f"squeue:\n{cluster.run('squeue', '--all', check=False).stdout}\n{cluster.logs(15)}"

    return conftest_wait_until(check, what, timeout=timeout, poll=0.2, details=details)


def job_states(cluster: servers.SlurmInfo, job_ids: list[str]) -> dict[str, str]:
    out = cluster.run("squeue", "--noheader", "--states=all", "--format=%i %T", "--jobs", ",".join(job_ids),
                      check=False).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def sbatch(cluster: servers.SlurmInfo, workdir: Path, script: str, *options: str) -> str:
    result = cluster.run("sbatch", "--parsable", f"--chdir={workdir}", f"--output={workdir}/%j.out",
                         *options, "--wrap", script)
    return result.stdout.strip().split(";")[0]


def test_slurm_gpu_job_sees_one_fake_gpu(slurm_clean: servers.SlurmInfo, tmp_path: Path) -> None:
    cluster = slurm_clean
    assert cluster.run("sinfo", "--noheader", "--format=%P %G %T").stdout.split() == ["gpu*", "gpu:2", "idle"]
    job = sbatch(cluster, tmp_path, "echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES", "--gres=gpu:1")
    wait_until(lambda: job_states(cluster, [job]).get(job) == "COMPLETED", f"job {job} COMPLETED", 60, cluster)
    output = (tmp_path / f"{job}.out").read_text()
    assert output.strip() in ("CUDA_VISIBLE_DEVICES=0", "CUDA_VISIBLE_DEVICES=1"), output

    def in_sacct():
        out = cluster.run("sacct", "--noheader", "--parsable2", "-X", "--format=State,AllocTRES", "--jobs", job,
                          check=False).stdout.strip()
        return out if out.startswith("COMPLETED|") else None

    assert "gres/gpu=1" in wait_until(in_sacct, f"sacct shows job {job} COMPLETED", 30, cluster)


def test_slurm_third_gpu_job_waits_then_cancel_and_sacct(slurm_clean: servers.SlurmInfo, tmp_path: Path) -> None:
    cluster = slurm_clean
    script = "echo $CUDA_VISIBLE_DEVICES > gpu-$SLURM_JOB_ID.txt; exec sleep 120"
    jobs = [sbatch(cluster, tmp_path, script, "--gpus=1", "--cpus-per-task=1", "--mem=100") for _ in range(3)]

    def two_running_one_pending():
        states = job_states(cluster, jobs)
        running = [job for job in jobs if states.get(job) == "RUNNING"]
        pending = [job for job in jobs if states.get(job) == "PENDING"]
        ready = len(running) == 2 and len(pending) == 1
        ready = ready and all((tmp_path / f"gpu-{job}.txt").exists() for job in running)
        return (running, pending) if ready else None

    running, pending = wait_until(two_running_one_pending, "two jobs RUNNING and one PENDING", 60, cluster)
    assert pending == [jobs[2]]
    gpus = sorted((tmp_path / f"gpu-{job}.txt").read_text().strip() for job in running)
    assert gpus == ["0", "1"], "the two running jobs must hold different GPUs"
    reason = cluster.run("squeue", "--noheader", "--format=%r", "--jobs", pending[0]).stdout.strip()
    assert reason == "Resources"

    cluster.run("scancel", *jobs)
    wait_until(lambda: set(job_states(cluster, jobs).values()) <= {"CANCELLED"} and job_states(cluster, jobs),
               "all three CANCELLED", 30, cluster)
    wait_until(lambda: not [p for p in servers.tagged_processes(cluster.tag) if p[1] == "sleep"],
               "the jobs' sleep processes gone", 30, cluster)

    def sacct_states():
        out = cluster.run("sacct", "--noheader", "--parsable2", "-X", "--format=JobID,State,AllocTRES",
                          "--jobs", ",".join(jobs), check=False).stdout
        rows = [line.split("|") for line in out.splitlines() if line]
        return rows if len(rows) == 3 and all(row[1].startswith("CANCELLED") for row in rows) else None

    rows = wait_until(sacct_states, "sacct shows the three cancelled jobs", 30, cluster)
    assert sum("gres/gpu=1" in row[2] for row in rows) == 2  # the pending one never got a GPU


# ----------------------------------------------------------------------------- Snakemake on Slurm

SNAKEFILE = """
rule all:
    input: expand("gpu_{i}.txt", i=range(2))

rule gpu:
    output: "gpu_{i}.txt"
    resources: gpu=1, runtime=5, mem_mb=500
    shell: "echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES > {output}; python -c 'import sys; print(sys.prefix)' >> {output}"
"""


def profile(**extra: object) -> dict:
    """The settings profiles/slurm/config.yaml is built from, plus test-only speed-ups."""
    return {
        "executor": "slurm",
        "jobs": 2,
        "default-resources": ["slurm_partition=gpu", "runtime=60", "mem_mb=1000"],
        "slurm-init-seconds-before-status-checks": 2,  # test speed-up; the default is 40
        "latency-wait": 5,
        "printshellcmds": True,
        **extra,
    }


def run_snakemake(cluster: servers.SlurmInfo, workdir: Path, settings: dict) -> None:
    (workdir / "Snakefile").write_text(textwrap.dedent(SNAKEFILE))
    (workdir / "profile").mkdir()
    (workdir / "profile" / "config.yaml").write_text(yaml.safe_dump(settings))
    env = dict(cluster.env)
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    argv = [str(BIN / "snakemake"), "--profile", str(workdir / "profile"), "--snakefile", str(workdir / "Snakefile")]
    try:
        result = subprocess.run(argv, env=env, cwd=workdir, capture_output=True, text=True, timeout=240)
        output, failed = result.stdout + result.stderr, result.returncode != 0
    except subprocess.TimeoutExpired as error:
        output, failed = f"timed out after {error.timeout} s\n{error.stdout or ''}{error.stderr or ''}", True
    if failed:
        logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in workdir.glob(".snakemake/slurm_logs/**/*.log"))
        pytest.fail(f"snakemake failed:\n{output[-6000:]}\nslurm logs:\n{logs}\n{cluster.logs(15)}")
    for i in range(2):
        lines = (workdir / f"gpu_{i}.txt").read_text().splitlines()
        assert lines[0] in ("CUDA_VISIBLE_DEVICES=0", "CUDA_VISIBLE_DEVICES=1"), lines
        assert lines[1] == sys.prefix, "the job's python must be the venv's"


def test_snakemake_slurm_executor_gpu_job(slurm_clean: servers.SlurmInfo, tmp_path: Path) -> None:
    settings = profile(**{"default-resources": [f"slurm_partition={slurm_clean.partition}",
                                                f"slurm_account={slurm_clean.account}", "runtime=60", "mem_mb=1000"]})
    run_snakemake(slurm_clean, tmp_path, settings)
    jobs = slurm_clean.run("sacct", "--noheader", "--parsable2", "-X", "--format=JobName,State,AllocTRES",
                           "--starttime", "now-1hour").stdout
    assert "gres/gpu=1" in jobs


def test_snakemake_slurm_executor_without_slurmdbd(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """No accounting: `squeue` as status command (MinJobAge 300 s >= 3 x the first check interval)."""
    from tests.services.fixtures import check_stopped, require

    require("slurm", needs_root=True)
    with servers.slurm_cluster(tmp_path_factory.mktemp("slurm-nodbd"), with_dbd=False) as cluster:
        tag, pids = cluster.tag, list(cluster.pids().values())
        assert cluster.run("sacct", check=False).returncode != 0  # accounting is off
        run_snakemake(cluster, tmp_path, profile(**{"slurm-status-command": "squeue"}))
    check_stopped("slurm without slurmdbd", tag, pids)
