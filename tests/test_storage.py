import optuna
import pytest

from snakesweep import storage as storages
from snakesweep.config import validate_config
from snakesweep.errors import UserError


def config_with(url, results="results"):
    return validate_config({"study": {"storage": url}, "results": results})


def test_default_is_sqlite_under_results(tmp_path):
    url = storages.storage_url(config_with(None, str(tmp_path / "r")))
    assert url == f"sqlite:///{tmp_path}/r/optuna.db"
    assert storages.sqlite_path(url) == tmp_path / "r" / "optuna.db"


def test_environment_variables_are_expanded_and_the_password_masked():
    env = {"DB_PASSWORD": "s3cr@t:x", "OPTUNA_STORAGE": "mysql+pymysql://me:${DB_PASSWORD}@db:3306/sweeps"}
    url = storages.storage_url(config_with("${OPTUNA_STORAGE}"), env)
    assert url == "mysql+pymysql://me:s3cr@t:x@db:3306/sweeps"
    masked = storages.mask(url)
    assert "s3cr" not in masked
    assert masked == "mysql+pymysql://me:***@db:3306/sweeps"
    assert "s3cr" not in storages.mask_text(f"could not connect to {url} as me/s3cr@t:x", url)


def test_a_missing_variable_names_the_variable_not_a_value():
    with pytest.raises(UserError) as raised:
        storages.storage_url(config_with("postgresql://me:${DB_PASSWORD}@db/sweeps"), {})
    assert "DB_PASSWORD" in str(raised.value) and "study.storage" in str(raised.value)


def test_kinds():
    assert storages.kind("journal:results/j.log") == "journal"
    assert storages.kind("postgresql+psycopg2://a@b/c") == "postgresql"
    assert storages.kind("mysql+pymysql://a@b/c") == "mysql"
    assert storages.is_server("mysql://a@b/c") and not storages.is_server("sqlite:///x.db")


def test_journal_and_sqlite_storages_open_and_hold_a_study(tmp_path):
    for url in (f"journal:{tmp_path}/j/journal.log", f"sqlite:///{tmp_path}/s/optuna.db"):
        store = storages.open_storage(url, create_schema=True)
        study = optuna.create_study(storage=store, study_name="x")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        assert len(optuna.load_study(study_name="x", storage=storages.open_storage(url)).trials) == 2


def test_an_unreachable_server_is_one_masked_line():
    url = "postgresql+psycopg2://me:hunter2@127.0.0.1:1/sweeps"
    with pytest.raises(UserError) as raised:
        storages.open_storage(url)
    text = str(raised.value)
    assert "hunter2" not in text and "***" in text and "\n" not in text
