"""What the commands print and nothing else: no stray Optuna line, a closed pipe ends quietly, strict JSON."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from snakesweep import trials as vocabulary
from snakesweep.config import load_config
from snakesweep.paths import Paths
from snakesweep.study import load_study
from snakesweep.trialfiles import write_epoch_metrics
from tests.test_view import ENV, ROOT, project, run_worker, snakesweep
from tests.workflow_project import make, snakemake

STRAY = "A new study created in memory"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    path = project(tmp_path_factory.mktemp("finished"), 3)
    run_worker(path)
    return path


# -- Optuna's line about in-memory studies -------------------------------------------------------
@pytest.mark.slow
def test_snakemake_prints_no_optuna_line_while_it_reads_the_workflow(tmp_path):
    make(tmp_path)
    result = snakemake(tmp_path, "-n", env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    assert STRAY not in result.stdout + result.stderr


def test_drawing_a_sample_point_prints_nothing_whatever_the_logging():
    """With Optuna's own logging (INFO, its handler), as where nothing configured it: the Snakefile."""
    code = ("from snakesweep.config import load_config; from snakesweep.study import study_spec; "
            "from snakesweep.check import sample_point; "
            f"print(sample_point(study_spec(load_config({str(ROOT / 'config' / 'config.yaml')!r}))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize("command", [("check",), ("status",)])
def test_check_and_status_print_only_their_own_lines(finished, command):
    result = snakesweep(*command, "--configfile", str(finished))
    assert result.returncode == 0 and STRAY not in result.stdout + result.stderr, result.stdout + result.stderr


# -- a reader that has gone (`snakesweep status | head -1`) --------------------------------------
def into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe whose reading end is already closed: every write fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "snakesweep.cli", *args], cwd=ROOT, env=ENV, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("command", [
    ("status",), ("status", "--json"), ("trials",), ("trials", "--format", "csv"), ("best-params",), ("check",),
    ("render", "{model}", "--params", '{"lr": 0.01, "layers": 2}'), ("--help",),
])
def test_a_closed_pipe_ends_quietly(finished, command):
    model = str(finished.parent / "model.jsonnet")
    args = [arg.replace("{model}", model) for arg in command]
    if command[0] not in ("--help", "render"):
        args += ["--configfile", str(finished)]
    result = into_closed_pipe(*args)
    assert result.stderr == "", result.stderr
    # argparse ignores a failed write of its help and exits 0; everything else ends as SIGPIPE would end it.
    assert result.returncode == (0 if command == ("--help",) else 128 + signal.SIGPIPE)


def test_status_watch_into_head_ends_with_head(finished):
    """The shell's `snakesweep status --watch 1 | head -1`: the second refresh finds the pipe closed."""
    pipeline = (f"{sys.executable} -m snakesweep.cli status --watch 1 --configfile {finished} 2>err.txt | head -1; "
                "echo ${PIPESTATUS[0]} >rc.txt")
    directory = finished.parent
    result = subprocess.run(["bash", "-c", pipeline], cwd=directory, env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.startswith("study    ")
    assert (directory / "err.txt").read_text() == ""
    assert int((directory / "rc.txt").read_text()) == 128 + signal.SIGPIPE


# -- strict JSON ---------------------------------------------------------------------------------
def test_status_json_turns_nan_and_infinity_into_null(tmp_path):
    """A diverging run: a NaN metric in a running trial's epoch file, an infinite value told."""
    config_path = project(tmp_path, 4)
    config = load_config(config_path)
    study = load_study(config)
    done = study.ask()
    study.tell(done, math.inf)
    running = study.ask()
    running.set_user_attr(vocabulary.WORKER, 0)
    write_epoch_metrics(Paths.of(config).trial_dir(study.study_name, running.number), 0,
                        {"validation_accuracy": math.nan})

    result = snakesweep("status", "--json", "--configfile", str(config_path))
    assert result.returncode == 0, result.stderr

    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    state = json.loads(result.stdout, parse_constant=refuse)
    assert state["best"]["trial"] == done.number and state["best"]["value"] is None
    (shown,) = state["running"]
    assert shown["number"] == running.number and shown["epochs_done"] == 1 and shown["last_value"] is None


# -- trials --state ------------------------------------------------------------------------------
def test_an_unknown_trial_state_is_one_line_naming_the_states(finished):
    result = snakesweep("trials", "--state", "bogus", "--configfile", str(finished))
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "--state" in line and "'bogus'" in line
    assert all(state in line for state in ("complete", "pruned", "running", "waiting", "fail"))
    upper = snakesweep("trials", "--state", "COMPLETE", "--state", "pruned", "--configfile", str(finished))
    assert upper.returncode == 0 and len(upper.stdout.splitlines()) == 1 + 3
