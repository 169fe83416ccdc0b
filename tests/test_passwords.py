"""A database password holding `@`, `:` and `/`, against real MariaDB and PostgreSQL servers.

The whole workflow runs with it, written out in the config and through `${DB_PASSWORD}`; neither
the password, nor any piece of it, nor the user name shows in what the commands print or in any
file of the run (the config itself aside).
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import quote

import pytest

from tests.workflow_project import make, snakemake

pytestmark = [pytest.mark.services, pytest.mark.slow]


@dataclass(frozen=True)
class Account:
    scheme: str
    port: int
    database: str
    user: str
    password: str

    def url(self, password: str) -> str:
        return f"{self.scheme}://{self.user}:{password}@127.0.0.1:{self.port}/{self.database}"

    @property
    def masked(self) -> str:
        return self.url("***").replace(f"//{self.user}:", "//***:")

    def secrets(self) -> set[str]:
        """The password, its pieces between `@`, `:` and `/`, its encoded form, the user name."""
        return {self.password, quote(self.password, safe=""), self.user, *re.split(r"[@:/]", self.password)}


@pytest.fixture(params=["mariadb", "postgres"])
def account(request: pytest.FixtureRequest) -> Account:
    """A database of the test's own, and a user of its own whose password holds `@`, `:` and `/`."""
    kind = request.param
    server = request.getfixturevalue(kind)
    database = request.getfixturevalue(f"{kind}_database")
    user = f"u{secrets.token_hex(5)}"
    password = f"{secrets.token_hex(5)}@{secrets.token_hex(5)}:{secrets.token_hex(5)}/{secrets.token_hex(5)}"
    server.create_database(database.name, user=user, password=password)
    if kind == "postgres":  # the new user owns the database, so it may create Optuna's tables
        server.sql(f'ALTER DATABASE "{database.name}" OWNER TO "{user}";')
    return Account(server.scheme, server.port, database.name, user, password)


def leaks(text: str | bytes, account: Account) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return sorted(secret for secret in account.secrets() if secret.encode() in data)


@pytest.mark.parametrize("written", ["out", "through ${DB_PASSWORD}"])
def test_the_workflow_with_at_colon_and_slash_in_the_password(tmp_path, account, run_env, written):
    url = account.url(account.password if written == "out" else "${DB_PASSWORD}")
    make(tmp_path, study={"storage": url, "n_trials": 2}, workers={"count": 1}, retrain={"seeds": [1]})
    env = {**run_env, "DB_PASSWORD": account.password}

    def snakesweep(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "snakesweep.cli", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    printed = []
    check = snakesweep("check")
    printed.append(check.stdout + check.stderr)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"ok    storage: {account.masked}" in check.stdout

    run = snakemake(tmp_path, env=env)
    printed.append(run.stdout + run.stderr)
    assert run.returncode == 0, run.stderr[-3000:]

    for args in (("status",), ("status", "--json"), ("trials",), ("best-params",)):
        result = snakesweep(*args)
        printed.append(result.stdout + result.stderr)
        assert result.returncode == 0, result.stderr
    status = printed[-4]
    assert "2/2 finished" in status and f"storage  {account.masked}" in status

    results = tmp_path / "results"
    assert json.loads((results / "best_params.json").read_text())["storage"] == account.masked
    assert json.loads((results / "report" / "summary.json").read_text())["storage"] == account.masked
    (log,) = results.glob("studies/*/logs/create_study.log")
    assert account.masked in log.read_text()
    for text in printed:
        assert not leaks(text, account)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(tmp_path / "config")]
    leaking = {str(p.relative_to(tmp_path)): found for p in files if (found := leaks(p.read_bytes(), account))}
    assert not leaking


def test_the_inspection_commands_open_a_server_read_only(account):
    """What status, trials and best-params open cannot write, even by mistake."""
    import optuna

    from snakesweep import storage as storages

    url = account.url(quote(account.password, safe=""))
    optuna.create_study(storage=storages.open_storage(url, create_schema=True), study_name="written")
    reader = storages.open_storage(url, read_only=True)
    assert [s.study_name for s in reader.get_all_studies()] == ["written"]
    with pytest.raises(Exception) as raised:
        optuna.create_study(storage=reader, study_name="refused")
    reason = f"{raised.value} {raised.value.__cause__}"
    assert re.search(r"read.only", reason, re.I), reason
    reader.engine.dispose()
