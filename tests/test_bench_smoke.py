"""Every benchmark of bench/ runs in its smoke size and prints its figures, so none of them rots.

Nothing here asserts anything about speed: the figures are for bench/README.md, not for CI.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

# script: a line of the table it prints (several: each must be there)
SCRIPTS = {
    "trial_start.py": "| ratio allennlp train / ours",
    "scaling.py": "| storage | N |",
    "search.py": "| asha / default",
    "dry_run.py": "| one-rule Snakefile, output present",
    "memory.py": "| launcher | RSS after 1 MiB",
    "budget.py": "| budget",
    "tracking.py": "| tracking | worker wall s",
    "warm_start.py": "cold: epochs (trials)",
    "resume.py": "| launcher | stopped in epoch",
    "disk.py": "| trials.keep_weights | trials",
    "verdict_lag.py": "| launcher | pruner",
    "peers_scaling.py": "| snakesweep / ray",
    "peers_search.py": ("### digits: target", "### allennlp: target", "| ray-asha / default"),
    "front.py": "| trials | spread | front |",
}


def run_bench(script: str, *args: str, env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout)
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{script} exited with {result.returncode}:\n{output}"
    return result.stdout


def test_every_bench_script_is_covered():
    assert set(SCRIPTS) == {p.name for p in (ROOT / "bench").glob("*.py")} - {"__init__.py", "common.py",
                                                                              "counting.py", "mlp_digits.py",
                                                                              "peer_runs.py"}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_bench_script_prints_its_figures_in_smoke_size(script, run_env):
    output = run_bench(script, env=run_env, timeout=850)  # a cap under pytest's 900 s: slow when busy
    expected = SCRIPTS[script]
    for line in (expected,) if isinstance(expected, str) else expected:
        assert line in output, output
    assert "size smoke" in output


@pytest.mark.services
def test_scaling_on_mysql_in_smoke_size(mariadb, run_env):
    # The URL names the password's variable: neither reaches a command line or the output.
    env = {**run_env, **mariadb.env, "BENCH_MYSQL_URL": mariadb.url_template}
    output = run_bench("scaling.py", "--storages", "mysql", "--mysql-url-env", "BENCH_MYSQL_URL", env=env)
    assert "| mysql " in output and "skipped" not in output, output
    assert mariadb.password not in output
