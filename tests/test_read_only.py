"""The inspection commands only read: they work on a read-only results/ and create nothing in it.

Tests run as root, which ignores file modes; the commands run here as root without the capabilities
that override them (setpriv), so a read-only tree is read-only for them, as for another user.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.test_view import ENV, NO_PRUNING, ROOT, project, run_worker, start_worker

COMMANDS = (("status",), ("status", "--json"), ("trials",), ("best-params",))


def as_another_user() -> list[str]:
    """A command prefix under which file modes hold, even for root."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def snakesweep_reading(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*as_another_user(), sys.executable, "-m", "snakesweep.cli", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)


def tree(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory below `directory`: size and modification time."""
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*")}


def read_only(directory: Path, on: bool) -> None:
    subprocess.run(["chmod", "-R", "a-w" if on else "u+w", str(directory)], check=True)


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_the_inspection_commands_on_a_read_only_finished_sweep(tmp_path, storage):
    url = f"journal:{tmp_path}/results/journal.log" if storage == "journal" else None
    config_path = project(tmp_path, 3, storage=url, apart=True)
    run_worker(config_path)
    before = tree(tmp_path)
    read_only(tmp_path, True)
    try:
        denied = subprocess.run([*as_another_user(), "touch", str(tmp_path / "results" / "x")], capture_output=True)
        assert denied.returncode != 0, "the tree must be read-only for the commands"
        results = {args: snakesweep_reading(*args, "--configfile", str(config_path)) for args in COMMANDS}
    finally:
        read_only(tmp_path, False)
    for args, result in results.items():
        assert result.returncode == 0 and not result.stderr, f"{args}: {result.stderr}"
    assert "3/3 finished" in results[("status",)].stdout
    assert json.loads(results[("status", "--json")].stdout)["done"] is True
    assert len(results[("trials",)].stdout.splitlines()) == 1 + 3
    assert set(json.loads(results[("best-params",)].stdout)) == {"lr", "layers"}
    assert tree(tmp_path) == before


def test_the_inspection_commands_create_no_file_in_a_writable_results(tmp_path):
    config_path = project(tmp_path, 2, apart=True)
    run_worker(config_path)
    before = tree(tmp_path)
    for args in COMMANDS:
        result = snakesweep_reading(*args, "--configfile", str(config_path))
        assert result.returncode == 0, result.stderr
    assert tree(tmp_path) == before, "no -wal, -shm or lock file is left behind"


def test_status_of_another_users_running_sweep(tmp_path):
    """The workers write (their WAL files exist); the reader may not write anywhere in the tree."""
    config_path = project(tmp_path, 1, epochs=100_000, sleep_s=0.01, optuna_json=NO_PRUNING, apart=True)
    worker = start_worker(config_path)
    try:
        wait_until(lambda: list(tmp_path.glob("results/studies/*/trials/0/metrics_epoch_1.json")) or worker.poll(),
                   "the worker trains its first trial", timeout=120)
        assert worker.poll() is None, worker.communicate()[0]
        read_only(tmp_path, True)
        try:
            result = snakesweep_reading("status", "--configfile", str(config_path))
        finally:
            read_only(tmp_path, False)
    finally:
        worker.send_signal(signal.SIGINT)
        worker.communicate(timeout=120)
    assert result.returncode == 0, result.stderr
    assert "0/1 finished" in result.stdout and "running  worker 0: trial 0, " in result.stdout
