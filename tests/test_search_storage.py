"""Storage URLs, SQLite setup, masking and the one-line storage errors."""

from __future__ import annotations

import sqlite3

import optuna
import pytest
import sqlalchemy
from typer.testing import CliRunner

from spcl_search.cli import app
from spcl_search.errors import StorageError
from spcl_search.search import storage

SECRET = "s3cr3t-pw"


def test_mask_url_hides_the_password():
    masked = storage.mask_url(f"postgresql://alice:{SECRET}@db.example:5432/studies")
    assert SECRET not in masked and "alice" in masked and "***" in masked


def test_mask_url_hides_the_password_of_an_unparseable_url():
    assert SECRET not in storage.mask_url(f"postgresql://alice:{SECRET}@db:port/x y")


def test_default_url_is_a_sqlite_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(storage.ENV_VAR, raising=False)
    assert storage.resolve_url() == f"sqlite:///{tmp_path / 'spcl_search.db'}"


def test_environment_variable_gives_the_url(monkeypatch):
    monkeypatch.setenv(storage.ENV_VAR, "sqlite:///from-env.db")
    assert storage.resolve_url() == "sqlite:///from-env.db"
    assert storage.resolve_url("sqlite:///flag.db") == "sqlite:///flag.db"


def test_postgres_url_without_driver_gets_an_installed_one():
    url = storage.resolve_url("postgres://u@h/db")
    assert url.startswith("postgresql")
    driver = sqlalchemy.engine.make_url(url).get_dialect().driver
    assert driver in ("psycopg2", "psycopg")


def test_sqlite_storage_is_in_wal_mode(tmp_path):
    storage.open_storage(f"sqlite:///{tmp_path / 's.db'}")
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_in_a_missing_folder_is_a_storage_error(tmp_path):
    with pytest.raises(StorageError, match="does not exist"):
        storage.open_storage(f"sqlite:///{tmp_path / 'nope' / 's.db'}")


def test_malformed_url_is_a_storage_error_without_the_password():
    with pytest.raises(StorageError) as err:
        storage.open_storage(f"postgresql://alice:{SECRET}@db:notaport/x")
    assert SECRET not in str(err.value) and "\n" not in str(err.value)


def test_unknown_database_kind_is_a_storage_error():
    with pytest.raises(StorageError, match="unknown database"):
        storage.open_storage("nosuchdb://host/x")


def test_unreachable_server_is_a_storage_error_without_the_password():
    with pytest.raises(StorageError) as err:
        storage.open_storage(f"postgresql://alice:{SECRET}@127.0.0.1:1/studies")
    message = str(err.value)
    assert "cannot connect" in message and SECRET not in message and "\n" not in message


def _stamp(path, revision):
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def test_older_optuna_schema_says_to_upgrade(tmp_path):
    path = tmp_path / "old.db"
    storage.open_storage(f"sqlite:///{path}")
    _stamp(path, "v3.0.0.d")
    with pytest.raises(StorageError, match="optuna storage upgrade"):
        storage.open_storage(f"sqlite:///{path}")


def test_newer_optuna_schema_says_to_update_optuna(tmp_path):
    path = tmp_path / "new.db"
    storage.open_storage(f"sqlite:///{path}")
    _stamp(path, "v99.0.0.a")
    with pytest.raises(StorageError, match="pip install -U optuna"):
        storage.open_storage(f"sqlite:///{path}")


def test_grace_period_must_exceed_the_heartbeat_interval(tmp_path):
    with pytest.raises(StorageError, match="grace period"):
        storage.open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=10, grace_period=5)


def test_read_commands_do_not_create_a_database(tmp_path):
    with pytest.raises(StorageError, match="no study database"):
        storage.open_storage(f"sqlite:///{tmp_path / 'absent.db'}", heartbeat_interval=None, must_exist=True)
    assert not (tmp_path / "absent.db").exists()


def test_storage_has_heartbeat_and_retry_callback(tmp_path):
    rdb = storage.open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=2, grace_period=5)
    assert rdb.get_heartbeat_interval() == 2
    assert isinstance(rdb.get_heartbeat_stale_trial_callback(), optuna.storages.RetryHeartbeatStaleTrialCallback)


def test_cli_storage_error_is_one_line_without_password():
    result = CliRunner().invoke(app, ["status", "--storage", f"postgresql://alice:{SECRET}@127.0.0.1:1/x"])
    assert result.exit_code != 0
    assert isinstance(result.exception, StorageError)
    assert SECRET not in str(result.exception) and "\n" not in str(result.exception)


# ------------------------------------------------------------------ every form of password stays hidden

#: where a password can sit in a URL (the last: an unescaped '@' inside it, whose tail SQLAlchemy reads as the host)
PASSWORD_FORMS = {
    "userinfo": "postgresql://alice:{secret}@{host}/{db}",
    "query": "postgresql://alice@{host}/{db}?password={secret}",
    "sslpassword": "postgresql://alice@{host}/{db}?sslmode=prefer&sslpassword={secret}",
    "at_inside": "postgresql://alice:pre@{secret}@{host}/{db}",
    "slash_inside": "postgresql://alice:{secret}/x@{host}/{db}",
}


@pytest.mark.parametrize("form", PASSWORD_FORMS)
def test_mask_url_hides_a_password_wherever_it_sits(form):
    masked = storage.mask_url(PASSWORD_FORMS[form].format(secret=SECRET, host="db.example:5432", db="studies"))
    assert SECRET not in masked and "alice" in masked and "db.example" in masked and "***" in masked


@pytest.mark.parametrize("form", ["userinfo", "query", "at_inside", "slash_inside"])
def test_a_connection_error_never_shows_the_password(form):
    url = PASSWORD_FORMS[form].format(secret=SECRET, host="127.0.0.1:1", db="studies")
    result = CliRunner().invoke(app, ["status", "--storage", url])
    assert isinstance(result.exception, StorageError)
    assert SECRET not in str(result.exception) and SECRET not in result.output and "\n" not in str(result.exception)


def test_an_unescaped_at_inside_a_password_is_read_as_part_of_it():
    url = sqlalchemy.engine.make_url(storage.resolve_url("postgresql://alice:p@ss@db.example:5432/studies"))
    assert (url.password, url.host, url.port) == ("p@ss", "db.example", 5432)


def test_a_query_password_moves_into_the_userinfo_where_sqlalchemy_masks_it():
    url = sqlalchemy.engine.make_url(storage.resolve_url(f"postgresql://alice@db.example/studies?password={SECRET}"))
    assert url.password == SECRET and "password" not in url.query and SECRET not in repr(url)


@pytest.mark.postgres
@pytest.mark.parametrize("form", ["userinfo", "query", "at_inside"])
def test_run_prints_the_database_without_its_password(pg_url, form, tmp_path):
    parsed = sqlalchemy.engine.make_url(pg_url)  # trust authentication: any password connects
    url = PASSWORD_FORMS[form].format(secret=SECRET, host=f"{parsed.host}:{parsed.port or 5432}", db=parsed.database).replace(
        "alice", parsed.username or "postgres"
    )
    name = f"test-mask-{form}-{tmp_path.name[-8:]}"
    result = CliRunner().invoke(app, ["run", "--backbone", "mmgcn", "--study", name, "--storage", url, "--workers", "0"])
    try:
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output and ":***@" in result.output
    finally:
        optuna.delete_study(study_name=name, storage=storage.resolve_url(pg_url))
