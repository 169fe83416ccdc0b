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
    assert url == "mysql+pymysql://me:s3cr%40t%3Ax@db:3306/sweeps"  # percent-encoded for the driver
    masked = storages.mask(url)
    assert "s3cr" not in masked
    assert masked == "mysql+pymysql://***:***@db:3306/sweeps"
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


# -- a password holding "@", ":" and "/" ---------------------------------------------------------
ODD_PASSWORD = "pa@ss:wo/rd@tail-of-pw"


@pytest.mark.parametrize("written", ["out", "through ${DB_PASSWORD}"])
def test_a_password_with_at_colon_and_slash_reaches_the_driver_whole(written):
    from sqlalchemy.engine import make_url

    password = ODD_PASSWORD if written == "out" else "${DB_PASSWORD}"
    config = config_with(f"mysql+pymysql://sweeper:{password}@127.0.0.1:3306/sweeps")
    url = storages.storage_url(config, {"DB_PASSWORD": ODD_PASSWORD})
    parsed = make_url(url)  # what the driver gets
    assert (parsed.username, parsed.password, parsed.host, parsed.port, parsed.database) == (
        "sweeper", ODD_PASSWORD, "127.0.0.1", 3306, "sweeps")
    assert storages.mask(url) == "mysql+pymysql://***:***@127.0.0.1:3306/sweeps"


def test_an_encoded_password_is_read_as_the_drivers_read_it():
    from sqlalchemy.engine import make_url

    url = storages.storage_url(config_with("postgresql://sweeper:pa%40ss%2Fx@db/sweeps"))
    assert make_url(url).password == "pa@ss/x" and make_url(url).host == "db"
    assert storages.storage_url(config_with("sqlite:////tmp/a@b/optuna.db")) == "sqlite:////tmp/a@b/optuna.db"


def test_a_password_from_the_environment_is_taken_as_it_is():
    from sqlalchemy.engine import make_url

    url = storages.storage_url(config_with("postgresql://sweeper:${DB_PASSWORD}@db/sweeps"),
                               {"DB_PASSWORD": "50%41off@x"})
    assert make_url(url).password == "50%41off@x" and make_url(url).host == "db"


def test_masking_hides_every_part_of_the_user_info():
    url = storages.storage_url(config_with("postgresql+psycopg2://sweeper:${DB_PASSWORD}@db.example.org/sweeps"),
                               {"DB_PASSWORD": ODD_PASSWORD})
    driver_error = (f'connection to server at "db.example.org" failed: password authentication failed for user '
                    f'"sweeper" (password {ODD_PASSWORD}, url {url})')
    text = storages.mask_text(driver_error, url)
    for part in ("sweeper", "pa@ss", "wo/rd", "tail-of-pw", "pa%40ss"):
        assert part not in text and part not in storages.mask(url)
    assert 'user "***"' in text and "db.example.org" in text


def test_the_tail_of_a_password_is_never_taken_for_the_host():
    pytest.importorskip("pymysql")
    url = storages.storage_url(config_with("mysql+pymysql://sweeper:pa@ss@tail-of-pw.invalid@127.0.0.1:1/x"))
    with pytest.raises(UserError) as raised:
        storages.open_storage(url)
    text = str(raised.value)
    assert "'127.0.0.1'" in text and "Connection refused" in text  # not a DNS lookup of tail-of-pw.invalid
    assert "tail-of-pw" not in text and "pa@ss" not in text and "sweeper" not in text


def test_an_unreachable_mysql_server_says_so_not_optunas_commit_error():
    pytest.importorskip("pymysql")
    url = "mysql+pymysql://me:hunter2@127.0.0.1:1/sweeps"
    with pytest.raises(UserError) as raised:
        storages.open_storage(url)
    text = str(raised.value)
    assert text.startswith("config: study.storage: cannot open the storage mysql+pymysql://***:***@127.0.0.1:1/")
    assert "Can't connect to MySQL server on '127.0.0.1'" in text and "server is up" in text
    assert "commit" not in text and "\n" not in text and "hunter2" not in text


def test_a_worker_that_gives_up_on_the_server_names_no_user():
    import sqlalchemy

    url = storages.storage_url(config_with("postgresql://sweeper:${DB_PASSWORD}@db/sweeps"), {"DB_PASSWORD": "pw"})

    def refused() -> None:
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception('password authentication failed for user '
                                                                        '"sweeper" (pw)'))

    with pytest.raises(storages.StorageUnreachable) as raised:
        storages.through_outages(refused, within_s=0, url=url)
    assert 'user "***" (***)' in str(raised.value) and "sweeper" not in str(raised.value)
