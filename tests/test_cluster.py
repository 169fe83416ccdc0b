"""The sweep on a real Slurm cluster and real database servers (tests/services): GPUs, crashes, secrets.

Every Slurm run goes through the shipped profile, `snakemake --profile profiles/slurm`, with only
test-speed settings added on the command line (TEST_SETTINGS): what is tested is what users run.
The storage URL comes from config as `...:${DB_PASSWORD}@...`, the password from the environment.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from snakesweep import storage as storages
from snakesweep.config import load_config
from snakesweep.study import load_study
from snakesweep.trials import RESUMED_FROM_EPOCH
from snakesweep.trials import SURPLUS as ATTR_SURPLUS
from tests.services import servers
from tests.conftest import wait_until as _wait_until
from tests.workflow_project import ROOT, SNAKEFILE, make

pytestmark = pytest.mark.services

BIN = Path(sys.executable).parent
PROFILE = ROOT / "profiles" / "slurm"
# Test speed only, on top of the shipped profile: the first status check after 2 s instead of 20 s;
# squeue for status checks (it sees a job end at once; sacct, the default with slurmdbd, 1-3 s later,
# which with the plugin's growing check interval often costs a 22 s longer wait); 5 s for outputs to
# show up on this local file system; and the logs of successful jobs kept for the secrets check.
TEST_SETTINGS = ("--slurm-init-seconds-before-status-checks", "2", "--slurm-status-command", "squeue",
                 "--latency-wait", "5", "--slurm-keep-successful-logs")
NO_PRUNING = {"sampler": {"type": "RandomSampler", "attributes": {}}, "pruner": {"type": "NopPruner", "attributes": {}}}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


# ------------------------------------------------------------------------------------------ helpers


# Slurm and database queries: poll gently.
wait_until = functools.partial(_wait_until, timeout=120, poll=0.2)

def project(directory: Path, storage: str | None, **config: Any) -> Path:
    """tests/workflow_project's curve-trainer project, sized for a one-node cluster."""
    sections: dict[str, Any] = {
        "study": {"storage": storage, "n_trials": 4, "heartbeat_s": 2},
        "model": {"overrides": {"sleep_s": 0.3}},  # 3 epochs of 0.3 s: workers overlap
        "workers": {"count": 2, "mem_mb": 400, "runtime": 10, "poll_s": 0.1},
        "retrain": {"seeds": [1]},
    }
    for key, value in config.items():
        sections[key] = {**sections.get(key, {}), **value}
    return make(directory, **sections)


def environment(cluster: servers.SlurmInfo | None, secrets: dict[str, str] | None = None) -> dict[str, str]:
    """The cluster's client environment (SLURM_CONF, wrappers), the venv first, the repo importable."""
    env = dict(cluster.env) if cluster is not None else dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(secrets or {})
    return env


def slurm_argv(*args: str) -> list[str]:
    return [str(BIN / "snakemake"), "--snakefile", str(SNAKEFILE), "--profile", str(PROFILE), *TEST_SETTINGS, *args]


def run_slurm(directory: Path, env: dict[str, str], *args: str,
              timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(slurm_argv(*args), cwd=directory, env=env, capture_output=True, text=True, timeout=timeout)


def start_slurm(directory: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(slurm_argv(*args), cwd=directory, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def explain(directory: Path, output: str, cluster: servers.SlurmInfo | None = None) -> str:
    """Snakemake's output, the worker and Slurm logs: what a failed assertion shows."""
    parts = [output[-6000:]]
    logs = [*sorted(directory.glob("results/studies/*/logs/*.log")),
            *sorted(directory.glob(".snakemake/slurm_logs/**/*.log"))]
    for path in logs:
        parts.append(f"--- {path.relative_to(directory)}\n{path.read_text(errors='replace')[-1500:]}")
    if cluster is not None:
        parts.append(cluster.run("squeue", "--all", check=False).stdout)
        parts.append(cluster.logs(10))
    return "\n".join(parts)


def succeed(directory: Path, result: subprocess.CompletedProcess[str], cluster: servers.SlurmInfo | None) -> None:
    assert result.returncode == 0, explain(directory, result.stdout + result.stderr, cluster)



def study_trials(directory: Path, env: dict[str, str]) -> list[optuna.trial.FrozenTrial]:
    """The study's trials, surplus claims left out (the storage URL expanded with `env`)."""
    cwd = os.getcwd()
    os.chdir(directory)  # the config's paths are relative to the project, as for snakemake
    try:
        config = load_config("config/config.yaml")
        storage = storages.open_storage(storages.storage_url(config, env))
        trials = load_study(config, storage=storage).get_trials()
        if hasattr(storage, "engine"):
            storage.engine.dispose()
    finally:
        os.chdir(cwd)
    return [t for t in trials if not t.system_attrs.get(ATTR_SURPLUS)]


def finished(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state in FINISHED]


def trial_dirs(directory: Path) -> dict[int, Path]:
    return {int(p.name): p for p in directory.glob("results/studies/*/trials/*") if p.name.isdigit()}


def provenance_of(directory: Path) -> dict[int, dict[str, Any]]:
    return {n: json.loads((p / "provenance.json").read_text()) for n, p in trial_dirs(directory).items()
            if (p / "provenance.json").exists()}


def jobs_in(cluster: servers.SlurmInfo, directory: Path) -> dict[str, dict[str, str]]:
    """`scontrol show job` of every job submitted from `directory`: {job id: {field: value}}.

    Finished jobs stay listed for MinJobAge (300 s on the test cluster). Snakemake's Slurm executor
    writes `rule_<rule>_wildcards_<values>` into each job's Comment; a running GPU job's `GRES` field
    names the devices it holds, `gpu:1(IDX:0)`.
    """
    out = cluster.run("scontrol", "--details", "--oneliner", "show", "job", check=False).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\S+?)=(\S*)", line))
        if fields.get("WorkDir") and Path(fields["WorkDir"]) == directory:
            jobs[fields["JobId"]] = fields
    return jobs


def worker_jobs(cluster: servers.SlurmInfo, directory: Path) -> dict[str, dict[str, str]]:
    return {job: fields for job, fields in jobs_in(cluster, directory).items()
            if fields.get("Comment", "").startswith("rule_worker_")}


def gpu_index(job: dict[str, str]) -> str | None:
    match = re.search(r"IDX:([0-9,-]+)", job.get("GRES", ""))
    return match.group(1) if match else None


def sacct_tres(cluster: servers.SlurmInfo, job_ids: list[str]) -> dict[str, str]:
    """AllocTRES of finished jobs, from slurmdbd (which sees a job 1-3 s after it ends)."""
    def query() -> dict[str, str] | None:
        out = cluster.run("sacct", "--noheader", "--parsable2", "-X", "--format=JobID,State,AllocTRES",
                          "--jobs", ",".join(job_ids), check=False).stdout
        rows = {line.split("|")[0]: line.split("|")[2] for line in out.splitlines() if line}
        return rows if set(rows) >= set(job_ids) else None

    return wait_until(query, f"sacct shows jobs {job_ids}", timeout=30)


@contextmanager
def command_line_watch(secret: str) -> Iterator[list[str]]:
    """Sample every process's command line while the body runs; yields the ones that held `secret`."""
    found: list[str] = []
    stop = threading.Event()
    needle = secret.encode()

    def sample() -> None:
        while not stop.wait(0.1):
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as handle:
                        cmdline = handle.read()
                except OSError:
                    continue
                if needle in cmdline:
                    found.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:200])

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()


def files_holding(secret: str, *roots: Path) -> list[str]:
    needle = secret.encode()
    return [str(path) for root in roots for path in root.rglob("*")
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes()]


# ------------------------------------------------------------------------ the sweep on Slurm + RDB


@pytest.mark.parametrize("server", ["mariadb", "postgres"])
def test_the_sweep_on_slurm_gpus_with_a_database_whose_password_stays_secret(
        server: str, slurm_clean: servers.SlurmInfo, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The whole workflow through profiles/slurm; the password only ever in the environment."""
    cluster = slurm_clean
    database = request.getfixturevalue(f"{server}_database")
    password = database.password
    project(tmp_path, database.url_template)
    env = environment(cluster, database.env)
    # MySQL: every target, the report included; PostgreSQL: up to the test metrics (the report
    # reads the same storage through the same code).
    targets = [] if server == "mariadb" else ["results/best_params.json", "results/test_metrics.json"]

    running: dict[str, dict[str, str]] = {}
    with command_line_watch(password) as command_lines:
        process = start_slurm(tmp_path, env, *targets)
        while process.poll() is None:  # the worker jobs as Slurm shows them while they run
            running.update({job: fields for job, fields in worker_jobs(cluster, tmp_path).items()
                            if fields["JobState"] == "RUNNING"})
            time.sleep(0.5)
        output = process.stdout.read()
    assert process.returncode == 0, explain(tmp_path, output, cluster)

    results = tmp_path / "results"
    best = json.loads((results / "best_params.json").read_text())
    assert best["counts"]["complete"] + best["counts"]["pruned"] == 4
    assert best["storage"] == database.url_template.replace("sweeper:${DB_PASSWORD}", "***:***")
    test_metrics = json.loads((results / "test_metrics.json").read_text())
    assert set(test_metrics["seeds"]) == {"1"} and 0 < test_metrics["mean"]["accuracy"] <= 1
    if server == "mariadb":
        assert (results / "report" / "summary.html").exists()

    trials = study_trials(tmp_path, env)
    assert len(finished(trials)) == 4, "the total is exact"
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]

    # Each worker is a Slurm job that asked for one GPU, got it, and passed it to its trials.
    workers = worker_jobs(cluster, tmp_path)
    assert sorted(job["Comment"] for job in workers.values()) == ["rule_worker_wildcards_0", "rule_worker_wildcards_1"]
    assert set(running) == set(workers), "both worker jobs were seen RUNNING"
    assert all(job["TresPerJob"] == "gres:gpu:1" for job in workers.values()), workers
    allocated = sacct_tres(cluster, list(workers))
    assert all("gres/gpu=1" in tres for tres in allocated.values()), allocated
    provenance = provenance_of(tmp_path)
    assert set(provenance) >= {t.number for t in finished(trials)}
    for record in provenance.values():
        assert record["slurm_job_id"] in workers and record["cuda_visible_devices"] in ("0", "1"), record

    # The password: on no command line while the run lasted, in no file of the project (results,
    # Snakemake's logs and metadata, the Slurm job logs), in no log of the Slurm daemons or of the
    # database server. (Slurm's state directory does hold it: a job's environment is kept there.)
    assert not command_lines, command_lines
    assert password not in output
    assert list(tmp_path.glob(".snakemake/slurm_logs/rule_worker/*/*.log")), "job logs kept for this check"
    server_log = request.getfixturevalue(server).log
    assert not files_holding(password, tmp_path, cluster.log_dir, server_log.parent)


# ---------------------------------------------------------------------------------- GPUs and SQLite


def test_sqlite_on_slurm_is_refused_in_one_line_before_any_job_unless_allowed(
        slurm_clean: servers.SlurmInfo, tmp_path: Path) -> None:
    cluster = slurm_clean
    project(tmp_path, None)  # the default storage: sqlite:///results/optuna.db
    env = environment(cluster)

    result = run_slurm(tmp_path, env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert errors == [output.strip().splitlines()[-1]], output
    assert errors[0].startswith("snakesweep: error: config: study.storage: a cluster run with a SQLite storage")
    assert "OPTUNA_STORAGE" in errors[0] and "study.allow_sqlite_on_slurm: true" in errors[0]
    assert "Traceback" not in output
    assert not jobs_in(cluster, tmp_path), "no job was submitted"
    assert not (tmp_path / "results").exists(), "no study, no worker file, nothing under results/"

    project(tmp_path, None, study={"allow_sqlite_on_slurm": True})
    result = run_slurm(tmp_path, env, "create_study")  # past the check: a local job, no Slurm time
    succeed(tmp_path, result, cluster)
    assert list(tmp_path.glob("results/studies/*/study.json")) and (tmp_path / "results" / "optuna.db").exists()


def test_three_workers_on_two_gpus_the_third_waits_and_no_gpu_is_shared(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """A node with 4 CPUs and 2 GPUs, so only a GPU can be what the third one-GPU worker waits for.

    The storage is SQLite with `study.allow_sqlite_on_slurm`: one node, one file system.
    """
    from tests.services.fixtures import check_stopped, require

    require("slurm", needs_root=True)
    project(tmp_path, None, study={"allow_sqlite_on_slurm": True, "n_trials": 6}, workers={"count": 3})
    samples: list[tuple[dict[str, dict[str, str]], dict[str, str] | None]] = []

    def node_use(cluster: Any) -> dict[str, str]:
        line = cluster.run("scontrol", "--details", "--oneliner", "show", "node").stdout
        node = dict(re.findall(r"(\S+?)=(\S*)", line))
        return {key: node[key] for key in ("CPUAlloc", "CPUTot", "GresUsed")}

    with servers.slurm_cluster(tmp_path_factory.mktemp("slurm-4cpu"), gpus=2, cpus=4, with_dbd=False) as cluster:
        tag, pids = cluster.tag, list(cluster.pids().values())
        process = start_slurm(tmp_path, environment(cluster), "results/best_params.json")
        while process.poll() is None:
            # The jobs and the node are two queries: the node's use counts for this sample only when
            # it was the same before and after the jobs were read (a job may start in between).
            before = node_use(cluster)
            sample = worker_jobs(cluster, tmp_path)
            samples.append((sample, before if node_use(cluster) == before else None))
            time.sleep(0.3)
        output = process.stdout.read()
        assert process.returncode == 0, explain(tmp_path, output, cluster)
        jobs = worker_jobs(cluster, tmp_path)
    check_stopped("the 4-CPU test cluster", tag, pids)

    assert len(jobs) == 3 and all(job["TresPerJob"] == "gres:gpu:1" for job in jobs.values()), jobs
    # Two ran, each on its own GPU, while the third waited for Resources with CPUs to spare.
    waiting = [(sample, node) for sample, node in samples
               if sorted(job["JobState"] for job in sample.values()) == ["PENDING", "RUNNING", "RUNNING"]]
    assert waiting, "never two worker jobs running and one pending"
    assert any(node is not None for _, node in waiting), "the node's use never held still while one waited"
    pending_ids = set()
    for sample, node in waiting:
        (pending,) = [job for job in sample.values() if job["JobState"] == "PENDING"]
        pending_ids.add(pending["JobId"])
        assert pending["Reason"] == "Resources", pending
        if node is not None:
            assert int(node["CPUAlloc"]) < int(node["CPUTot"]) and node["GresUsed"].startswith("gpu:2"), node
    (third,) = pending_ids
    for sample, _ in samples:
        held = [gpu_index(job) for job in sample.values() if job["JobState"] == "RUNNING"]
        assert None not in held and len(held) == len(set(held)), f"a GPU held twice: {sample}"
    # The third started only when one of the first two had ended, on the GPU that one freed.
    seen = {job_id: gpu_index(job) for sample, _ in samples for job_id, job in sample.items()
            if job["JobState"] == "RUNNING"}
    assert set(seen) == set(jobs), "every worker job ran"
    first_two = [job for job in jobs.values() if job["JobId"] != third]
    assert jobs[third]["StartTime"] >= min(job["EndTime"] for job in first_two)

    trials = study_trials(tmp_path, {})
    assert len(finished(trials)) == 6 and not [t for t in trials if t.state == TrialState.RUNNING]
    provenance = provenance_of(tmp_path)
    for trial in finished(trials):
        record = provenance[trial.number]
        assert record["cuda_visible_devices"] == seen[record["slurm_job_id"]], (record, seen)
    for a in finished(trials):
        for b in finished(trials):
            overlap = (a.number < b.number and a.datetime_start < b.datetime_complete
                       and b.datetime_start < a.datetime_complete)
            if overlap and provenance[a.number]["slurm_job_id"] != provenance[b.number]["slurm_job_id"]:
                assert provenance[a.number]["cuda_visible_devices"] != provenance[b.number]["cuda_visible_devices"]


# ------------------------------------------------------------------------------ crashes and restarts


def test_a_worker_job_cancelled_mid_trial_is_submitted_again_and_its_trial_resumes(
        slurm_clean: servers.SlurmInfo, mariadb_database, tmp_path: Path) -> None:
    """`scancel` (what a preemption looks like to a job): the profile's `retries` submits the worker
    again, which continues the cancelled trial from its checkpoint, all in one snakemake command."""
    cluster = slurm_clean
    project(tmp_path, mariadb_database.url_template, study={"n_trials": 6},
            model={"overrides": {"sleep_s": 0.6, "epochs": 4}})  # 4 epochs of 0.6 s: time to cancel mid-trial
    (tmp_path / "config" / "optuna.json").write_text(json.dumps(NO_PRUNING))  # every trial completes
    env = environment(cluster, mariadb_database.env)

    process = start_slurm(tmp_path, env, "results/best_params.json")

    def a_trial_mid_way() -> tuple[int, dict[str, Any]] | None:
        for number, directory in trial_dirs(tmp_path).items():
            if (directory / "metrics_epoch_1.json").exists() and not (directory / "metrics.json").exists():
                return number, json.loads((directory / "provenance.json").read_text())
        return None

    try:
        number, record = wait_until(a_trial_mid_way, "a trial with two epochs done", timeout=300, poll=0.1)
        trainer_pid = int((trial_dirs(tmp_path)[number] / "pid").read_text())
        cluster.run("scancel", record["slurm_job_id"])
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, explain(tmp_path, output, cluster)
    assert f"SLURM-job '{record['slurm_job_id']}' failed" in output and "Trying to restart job" in output, output
    assert jobs_in(cluster, tmp_path)[record["slurm_job_id"]]["JobState"] == "CANCELLED"
    assert not servers.process_alive(trainer_pid)

    trials = study_trials(tmp_path, env)
    killed = [t for t in trials if t.number == number]
    assert [t.state for t in killed] == [TrialState.FAIL]
    # scancel sends SIGTERM first: the worker itself failed the trial and queued it again.
    assert killed[0].user_attrs["fail_reason"] == "worker interrupted by SIGTERM"
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == number]
    assert len(retried) == 1 and retried[0].params == killed[0].params and retried[0].state == TrialState.COMPLETE
    assert retried[0].user_attrs[RESUMED_FROM_EPOCH] >= 1 and sorted(retried[0].intermediate_values) == [0, 1, 2, 3]
    assert len(finished(trials)) == 6 and all(t.state == TrialState.COMPLETE for t in finished(trials))
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    best = json.loads((tmp_path / "results" / "best_params.json").read_text())
    assert best["counts"]["complete"] == 6


@pytest.mark.timeout(1800)
def test_a_worker_job_past_its_time_limit_is_signalled_and_its_trial_resumes_in_the_next_job(
        slurm_clean: servers.SlurmInfo, mariadb_database, tmp_path: Path) -> None:
    """Three-minute worker jobs and two trials of 24 epochs of 5 s, four minutes of training that no
    single job can hold however fast it starts: each job is told (SIGTERM 30 s
    before its limit here, not the profile's 120 s: Slurm acts on a tick of a minute, and sends it up
    to a minute early), its trial is queued again with its checkpoint, the job is submitted again,
    and the study ends with the exact total and a trial resumed, from one snakemake command.
    More retries than the profile's 3: on a busy machine a job spends much of its three minutes
    starting."""
    cluster = slurm_clean
    project(tmp_path, mariadb_database.url_template, study={"n_trials": 2},
            workers={"count": 1, "runtime": 3}, model={"overrides": {"sleep_s": 5, "epochs": 24}})
    (tmp_path / "config" / "optuna.json").write_text(json.dumps(NO_PRUNING))
    env = environment(cluster, mariadb_database.env)
    settings = ("--retries", "12", "--set-resources", "worker:gpu=1", "worker:slurm_extra='--signal=TERM@30'",
                "retrain:gpu=1")
    result = run_slurm(tmp_path, env, "results/best_params.json", *settings, timeout=1700)
    output = result.stdout + result.stderr
    succeed(tmp_path, result, cluster)

    job_logs = sorted(tmp_path.glob(".snakemake/slurm_logs/rule_worker/0/*.log"))
    assert len(job_logs) >= 2 and "Trying to restart job" in output, output[-3000:]
    told = [p for p in job_logs if "stopped by SIGTERM; the running trial was queued again" in p.read_text()]
    assert told, "a worker job was told before its end and queued its trial again"
    trials = study_trials(tmp_path, env)
    assert len(finished(trials)) == 2 and all(t.state == TrialState.COMPLETE for t in finished(trials))
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    resumed = [t for t in finished(trials) if t.user_attrs.get(RESUMED_FROM_EPOCH, 0) > 0]
    assert resumed, [t.user_attrs for t in trials]
    for trial in resumed:
        assert sorted(trial.intermediate_values) == list(range(24)), "one curve over the jobs"


def cli(directory: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`snakesweep ARGS --configfile config/config.yaml` in the project, as a job would run it; its
    output goes to a file there (`cli-ARGS.log`): many workers writing to pipes read one after the
    other would block on a full pipe."""
    log_path = directory / f"cli-{'-'.join(args)}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "snakesweep.cli", *args, "--configfile", "config/config.yaml"],
            cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    process.log_path = log_path  # type: ignore[attr-defined]
    return process


def finish(process: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str]:
    """Wait for a `cli` process: its exit status (-9 when killed after `timeout`) and its output."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return process.returncode, process.log_path.read_text()  # type: ignore[attr-defined]


@pytest.mark.parametrize("server", ["mariadb", "postgres"])
def test_database_restarts_mid_sweep_lose_and_duplicate_no_trial(
        server: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The contract: workers ride out restarts of the server (their storage calls retry while it is
    unreachable) and exit 0, and the study ends with exactly n_trials finished trials, none left
    RUNNING or WAITING; a trial failed by an outage is redone once, with the same parameters.

    Short trials keep the workers busy with the storage (claims, parameters, reports, pruning
    checks, heartbeats, tells), so the three restarts land at different points of a trial's cycle.
    """
    info = request.getfixturevalue(server)
    database = request.getfixturevalue(f"{server}_database")
    n_trials, restarts = 30, 3
    project(tmp_path, database.url_template, study={"n_trials": n_trials}, workers={"count": 4, "poll_s": 0.05},
            model={"overrides": {"sleep_s": 0.05}})
    env = environment(None, database.env)
    assert finish(cli(tmp_path, env, "create-study"))[0] == 0
    workers = [cli(tmp_path, env, "worker", "--worker", str(i)) for i in range(4)]

    def started() -> int:
        return len(trial_dirs(tmp_path))

    try:
        for restart in range(restarts):
            # A worker that exits early fails the checks below, with its output.
            wait_until(lambda: started() >= 3 + 6 * restart or any(w.poll() is not None for w in workers),
                       f"{3 + 6 * restart} trials started", timeout=120, poll=0.02)
            old_pid = info.pid
            info.restart()
            assert info.pid != old_pid
        restarted_at = started()
        results = [finish(worker, timeout=180) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for code, output in results:
        assert code == 0, output[-4000:]
    assert started() > restarted_at, "trials ran after the last restart"

    trials = study_trials(tmp_path, env)
    assert len(finished(trials)) == n_trials, "nothing lost, nothing duplicated"
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for failed in [t for t in trials if t.state == TrialState.FAIL]:
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == failed.number]
        assert len(retries) == 1 and retries[0].state in FINISHED, failed
        assert retries[0].params.items() >= failed.params.items(), (failed, retries[0])


def test_a_long_outage_stops_the_workers_with_one_line_and_the_next_run_finishes_the_study(
        mariadb: servers.MariaDBInfo, mariadb_database, tmp_path: Path) -> None:
    """A server down for longer than the workers wait (30 s): each worker ends with one line naming
    study.storage, exit status 1, no traceback; once the server is back, workers started again
    finish the study with the exact total, the trials cut off by the outage redone."""
    project(tmp_path, mariadb_database.url_template, study={"n_trials": 8}, model={"overrides": {"sleep_s": 0.3}})
    env = environment(None, mariadb_database.env)
    assert finish(cli(tmp_path, env, "create-study"))[0] == 0
    workers = [cli(tmp_path, env, "worker", "--worker", str(i)) for i in range(2)]
    try:
        wait_until(lambda: len(trial_dirs(tmp_path)) >= 2, "two trials started")
        mariadb.stop()
        results = [finish(worker, timeout=120) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        mariadb.start()
    for code, output in results:
        assert code == 1 and "Traceback" not in output, output[-3000:]
        assert output.strip().splitlines()[-1].startswith(
            "snakesweep: error: config: study.storage: the storage stayed unreachable for 30 s: "), output[-3000:]

    again = [cli(tmp_path, env, "worker", "--worker", str(i)) for i in range(2)]
    for code, output in [finish(worker) for worker in again]:
        assert code == 0, output[-3000:]
    trials = study_trials(tmp_path, env)
    assert len(finished(trials)) == 8
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    cut_off = [t for t in trials if t.state == TrialState.FAIL]
    assert cut_off, "the trials running at the outage were failed by the next run"
    for failed in cut_off:
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == failed.number]
        assert len(retries) == 1 and retries[0].params.items() >= failed.params.items(), (failed, retries)


# --------------------------------------------------------------------------------- many workers


@pytest.mark.parametrize("storage", ["sqlite", "mariadb"])
def test_sixteen_workers_on_trivial_trials_reach_the_exact_total_without_error(
        storage: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """16 worker processes, one-epoch trials that take no time: the storage is all that is timed.

    Prints the throughput (finished trials per second between the first trial's start and the
    last one's end); no assertion on it. Heartbeats every 30 s, not the 2 s that make a killed
    worker's retry quick in the other tests: nobody is killed here, and 16 processes on 2 busy
    cores starve one of CPU for more than 4 s, which no heartbeat rule can tell from death.
    """
    database = request.getfixturevalue("mariadb_database") if storage == "mariadb" else None
    n_trials = 64
    project(tmp_path, database.url_template if database else None, study={"n_trials": n_trials, "heartbeat_s": 30},
            model={"overrides": {"epochs": 1, "sleep_s": 0}}, workers={"count": 16, "poll_s": 0.05})
    (tmp_path / "config" / "optuna.json").write_text(json.dumps(NO_PRUNING))
    env = environment(None, database.env if database else None)
    assert finish(cli(tmp_path, env, "create-study"))[0] == 0
    started = time.monotonic()
    workers = [cli(tmp_path, env, "worker", "--worker", str(i)) for i in range(16)]
    try:
        results = [finish(worker, timeout=300) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    wall = time.monotonic() - started
    for code, output in results:
        assert code == 0 and "Traceback" not in output and "error" not in output.lower(), output[-3000:]

    trials = study_trials(tmp_path, env)
    done = finished(trials)
    assert len(done) == n_trials and all(t.state == TrialState.COMPLETE for t in done)
    others = [(t.number, t.state.name, t.user_attrs, t.system_attrs) for t in trials if t.state != TrialState.COMPLETE]
    assert not others, f"no failed, running or waiting trial: {others}"
    assert len({t.user_attrs["worker"] for t in done}) >= 8, "the trials were shared out"
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    print(f"\n{storage}: 16 workers, {n_trials} trivial trials: {n_trials / span:.1f} trials/s over {span:.1f} s "
          f"of trials ({wall:.1f} s with the workers' start)")
