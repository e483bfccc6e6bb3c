"""The study database misbehaves: it restarts under running workers, loses the study lock's connection,
answers a commit too late, or cannot be used at all (unreachable, malformed URL, newer Optuna schema).

Workers retry lost connections with capped exponential backoff until a deadline, logging one line per
retry with the password masked; the PostgreSQL tests restart the real server (``pg_ctlcluster``, as
root, as in CI) and always leave it running. Commands that cannot use a database say so in one line.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
import simulated
import sqlalchemy
from optuna.trial import TrialState
from pg_cluster import ensure_up, restart_postgres, skip_unless_restartable

from spcl_search.cli import main
from spcl_search.errors import StorageError
from spcl_search.search import retry
from spcl_search.search.lock import LockLost, lock_key, study_lock
from spcl_search.search.storage import open_storage, resolve_url
from spcl_search.search.study import open_study

SECRET = "s3cr3t-pw"
URL_WITH_SECRET = f"postgresql://alice:{SECRET}@db.example:5432/studies"


# ------------------------------------------------------------------------------- which errors retry


def _dbapi(cls, message, *, invalidated=False):
    return cls("SELECT 1", {}, Exception(message), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "message",
    [
        "terminating connection due to administrator command",
        "server closed the connection unexpectedly",
        'connection to server at "127.0.0.1", port 5432 failed: Connection refused',
        "FATAL:  the database system is starting up",
        "FATAL:  the database system is shutting down",
        "FATAL:  sorry, too many clients already",
        "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute",
    ],
)
def test_lost_or_refused_connections_are_transient(message):
    assert retry.is_transient(_dbapi(sqlalchemy.exc.OperationalError, message))


def test_an_error_optuna_wrapped_around_a_lost_connection_is_transient():
    try:
        try:
            raise _dbapi(sqlalchemy.exc.OperationalError, "anything", invalidated=True)
        except sqlalchemy.exc.OperationalError as exc:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc
    except optuna.exceptions.StorageInternalError as wrapped:
        assert retry.is_transient(wrapped)


@pytest.mark.parametrize(
    "error",
    [
        _dbapi(sqlalchemy.exc.OperationalError, 'FATAL:  password authentication failed for user "alice"'),
        _dbapi(sqlalchemy.exc.OperationalError, 'FATAL:  database "nope" does not exist'),
        _dbapi(sqlalchemy.exc.IntegrityError, "duplicate key value violates unique constraint"),
        _dbapi(sqlalchemy.exc.ProgrammingError, 'relation "trials" does not exist'),
        StorageError("lost the study database for 300 s"),
        ValueError("not a database error"),
    ],
)
def test_other_errors_are_not_transient(error):
    assert not retry.is_transient(error)


def test_a_lost_study_lock_is_transient():
    assert retry.is_transient(LockLost("the lock went with its connection"))


# ------------------------------------------------------------------------- how retries are paced


class FakeClock:
    """``time.monotonic`` and ``time.sleep`` for retry_call, without waiting."""

    def __init__(self):
        self.now, self.waits = 0.0, []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(retry.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(retry.time, "sleep", fake.sleep)
    return fake


def _flaky(failures, message="terminating connection due to administrator command"):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= failures:
            raise _dbapi(sqlalchemy.exc.OperationalError, message)
        return "done"

    return fn, calls


def test_a_transient_error_is_retried_until_the_call_succeeds(clock):
    fn, calls = _flaky(3)
    assert retry.retry_call(fn, what="reserve a trial", url=URL_WITH_SECRET) == "done"
    assert len(calls) == 4 and len(clock.waits) == 3


def test_waits_double_with_jitter_up_to_a_cap(clock):
    fn, _ = _flaky(12)
    retry.retry_call(fn, what="reserve a trial", url=URL_WITH_SECRET)
    for n, wait in enumerate(clock.waits):
        ceiling = min(retry.STORAGE_RETRY_MAX_WAIT, retry.STORAGE_RETRY_FIRST_WAIT * 2**n)
        assert ceiling / 2 <= wait <= ceiling
    assert max(clock.waits) > retry.STORAGE_RETRY_MAX_WAIT / 2


def test_each_retry_logs_one_line_with_the_password_masked(clock, caplog):
    fn, _ = _flaky(2)
    with caplog.at_level(logging.WARNING, logger="spcl_search.search.retry"):
        retry.retry_call(fn, what="reserve a trial", url=URL_WITH_SECRET)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    for line in warnings:
        assert "\n" not in line and SECRET not in line and "alice:***@db.example" in line
        assert "reserve a trial" in line and "terminating connection" in line


def test_after_the_deadline_the_error_is_one_line_saying_what_to_do(clock):
    fn, calls = _flaky(10**6)
    with pytest.raises(StorageError) as err:
        retry.retry_call(fn, what="reserve a trial", url=URL_WITH_SECRET, deadline=60)
    message = str(err.value)
    assert "\n" not in message and SECRET not in message
    assert "lost the study database" in message and "check that the server runs" in message
    assert clock.now <= 60 and len(calls) > 5


def test_a_non_transient_error_is_raised_at_once(clock):
    fn, calls = _flaky(1, message='FATAL:  password authentication failed for user "alice"')
    with pytest.raises(sqlalchemy.exc.OperationalError):
        retry.retry_call(fn, what="reserve a trial", url=URL_WITH_SECRET)
    assert len(calls) == 1 and clock.waits == []


def test_calls_within_a_critical_section_fail_at_once_so_it_is_redone_whole(clock):
    fn, calls = _flaky(1)
    with retry.paused(), pytest.raises(sqlalchemy.exc.OperationalError):
        retry.retry_call(fn, what="count the budget", url=URL_WITH_SECRET)
    assert len(calls) == 1


def test_a_state_change_whose_commit_answer_was_lost_is_not_an_error(tmp_path, monkeypatch):
    rdb = open_storage(f"sqlite:///{tmp_path / 'ack.db'}", heartbeat_interval=None)
    study = optuna.create_study(storage=rdb)
    trial = study.ask()
    original = optuna.storages.RDBStorage.set_trial_state_values
    answers = []

    def commit_then_lose_the_answer(self, trial_id, state, values=None):
        result = original(self, trial_id, state, values)
        answers.append(result)
        if len(answers) == 1:
            raise _dbapi(sqlalchemy.exc.OperationalError, "server closed the connection unexpectedly")
        return result

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_state_values", commit_then_lose_the_answer)
    monkeypatch.setattr(retry.time, "sleep", lambda s: None)
    assert rdb.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [1.0]) is True
    assert study.trials[0].state == TrialState.COMPLETE


# ------------------------------------------------------------------------- PostgreSQL, for real


@pytest.fixture
def restartable_pg(pg_url):
    """The PostgreSQL URL, when this process may restart that server (root, local cluster)."""
    skip_unless_restartable(pg_url)
    yield pg_url
    ensure_up(pg_url)  # never leave it down for the next test


@pytest.fixture
def pg_study(pg_url):
    name = f"test-reliability-{uuid.uuid4().hex[:10]}"
    yield name
    rdb = open_storage(pg_url, heartbeat_interval=None)
    if name in optuna.get_all_study_names(rdb):
        optuna.delete_study(study_name=name, storage=rdb)


@pytest.mark.postgres
def test_a_storage_call_waits_for_a_restarting_server(restartable_pg, caplog):
    rdb = open_storage(restartable_pg, heartbeat_interval=None)
    rdb.get_all_studies()  # the pool holds a connection the restart will kill
    restarter = threading.Thread(target=restart_postgres, args=(restartable_pg,))
    with caplog.at_level(logging.INFO, logger="spcl_search.search.retry"):
        restarter.start()
        try:
            deadline = time.monotonic() + 30
            while restarter.is_alive() and time.monotonic() < deadline:
                rdb.get_all_studies()
                time.sleep(0.05)
        finally:
            restarter.join()
        rdb.get_all_studies()
    assert any("unreachable" in r.getMessage() for r in caplog.records), "the restart was never noticed"


@pytest.fixture
def one_connection_url(pg_url):
    """The test database as a login role allowed one connection at a time: a server out of connection slots
    for that role, with PostgreSQL's own refusal (superusers, like the default test role, have no limit)."""
    role, password = f"spcl_one_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = sqlalchemy.create_engine(resolve_url(pg_url), isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    with admin.connect() as c:
        c.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' CONNECTION LIMIT 1"))
    url = sqlalchemy.engine.make_url(resolve_url(pg_url)).set(username=role, password=password)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(sqlalchemy.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"))
        c.execute(sqlalchemy.text(f"DROP ROLE {role}"))
    admin.dispose()


def _select_one(url):
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)

    def call():
        with engine.connect() as c:
            return c.execute(sqlalchemy.text("SELECT 1")).scalar()

    return call


@pytest.mark.postgres
def test_a_server_out_of_connections_is_waited_for_until_a_slot_frees(one_connection_url, caplog):
    holder = sqlalchemy.create_engine(one_connection_url, poolclass=sqlalchemy.pool.NullPool).connect()
    select_one, refusals = _select_one(one_connection_url), []

    def call():
        try:
            return select_one()
        except sqlalchemy.exc.OperationalError:
            refusals.append(1)
            holder.close()  # another client ends: its slot frees for the next try
            raise

    with caplog.at_level(logging.INFO, logger="spcl_search.search.retry"):
        assert retry.retry_call(call, what="reserve a trial", url=one_connection_url, deadline=30) == 1
    assert refusals == [1]
    assert any("too many connections" in r.getMessage() for r in caplog.records)


@pytest.mark.postgres
def test_a_server_that_stays_out_of_connections_is_one_line_naming_the_storage_proxy(one_connection_url):
    holder = sqlalchemy.create_engine(one_connection_url, poolclass=sqlalchemy.pool.NullPool).connect()
    try:
        with pytest.raises(StorageError) as err:
            retry.retry_call(_select_one(one_connection_url), what="reserve a trial", url=one_connection_url, deadline=1.0)
    finally:
        holder.close()
    message = str(err.value)
    assert "\n" not in message
    assert "too many connections for role" in message and "CONNECTION LIMIT" in message and "spcl-search storage-proxy" in message


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("FATAL:  sorry, too many clients already", "raise max_connections"),
        ("FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute", "raise max_connections"),
        ('FATAL:  too many connections for role "alice"', "ALTER ROLE / ALTER DATABASE"),
        ('FATAL:  too many connections for database "studies"', "ALTER ROLE / ALTER DATABASE"),
        ("server closed the connection unexpectedly", "check that the server runs"),
    ],
)
def test_the_advice_names_the_remedy_for_the_limit_that_was_reached(message, says):
    assert says in retry.advice(_dbapi(sqlalchemy.exc.OperationalError, message), "check that the server runs")


@pytest.mark.postgres
def test_a_worker_that_finds_no_free_connection_at_start_is_told_to_use_the_storage_proxy(one_connection_url):
    holder = sqlalchemy.create_engine(one_connection_url, poolclass=sqlalchemy.pool.NullPool).connect()
    try:
        with pytest.raises(StorageError) as err:
            open_storage(one_connection_url, heartbeat_interval=None)
    finally:
        holder.close()
    message = str(err.value)
    assert message.startswith("cannot connect to") and "\n" not in message
    assert "spcl-search storage-proxy" in message and "check that the server runs" not in message


@pytest.mark.postgres
def test_a_study_lock_lost_with_its_connection_is_reported_when_released(pg_url, pg_study):
    rdb = open_storage(pg_url, heartbeat_interval=None)
    key = lock_key(pg_study) & 0xFFFFFFFFFFFFFFFF
    killer = sqlalchemy.create_engine(resolve_url(pg_url))
    try:
        with pytest.raises(LockLost):
            with study_lock(rdb, pg_study):
                with killer.connect() as conn:  # what a server restart does to the lock's session
                    killed = conn.execute(
                        sqlalchemy.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND classid::bigint = :hi AND objid::bigint = :lo"
                        ),
                        {"hi": key >> 32, "lo": key & 0xFFFFFFFF},
                    ).scalars().all()
                    conn.commit()
                assert killed == [True]
        with study_lock(rdb, pg_study):  # nothing is left holding it
            pass
    finally:
        killer.dispose()


HEARTBEAT = ["--heartbeat-interval", "1", "--grace-period", "5"]


def _spawn_worker(url, name, log, seconds):
    cmd = [sys.executable, "-m", "spcl_search", "worker", "--study", name, "--storage", url, *HEARTBEAT]
    with log.open("w") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **simulated.env(seconds=seconds)})


@pytest.mark.slow
@pytest.mark.postgres
def test_four_workers_ride_out_a_postgres_restart_and_finish_exactly_the_budget(restartable_pg, pg_study, tmp_path):
    n = 24
    rdb = open_storage(restartable_pg, heartbeat_interval=1, grace_period=5)
    open_study(rdb, {"name": pg_study, "backbone": "mmgcn", "n_trials": n, "epochs": 4, "pruner": "none"})
    logs = [tmp_path / f"worker-{i}.log" for i in range(4)]
    procs = [_spawn_worker(restartable_pg, pg_study, log, seconds=0.25) for log in logs]
    try:
        study = optuna.load_study(study_name=pg_study, storage=rdb)
        deadline = time.monotonic() + 120
        while sum(t.state == TrialState.COMPLETE for t in study.get_trials()) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        restart_postgres(restartable_pg)
        codes = [p.wait(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outputs = [log.read_text() for log in logs]
    assert codes == [0, 0, 0, 0], outputs
    assert not any("Traceback" in out for out in outputs), outputs
    assert sum(out.count("unreachable while trying to") for out in outputs) >= 1, "no worker saw the restart"
    trials = optuna.load_study(study_name=pg_study, storage=rdb).trials
    states = Counter(t.state for t in trials)
    assert states[TrialState.COMPLETE] == n and states[TrialState.RUNNING] == 0
    lineages = Counter(t.system_attrs.get("failed_trial", t.number) for t in trials if t.state == TrialState.COMPLETE)
    assert set(lineages.values()) == {1}  # no setting completed twice


# ------------------------------------------------------------------- databases a command cannot use


def _status(capsys, storage):
    with pytest.raises(SystemExit) as exc:
        main(["status", "--storage", storage])
    return exc.value.code, capsys.readouterr().err


def _future_optuna_db(path: Path) -> None:
    """A SQLite study database stamped as a newer Optuna would leave it."""
    open_storage(f"sqlite:///{path}", heartbeat_interval=None)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'v99.0.0.a'")
        conn.execute("UPDATE version_info SET schema_version = 99, library_version = '99.0.0'")


@pytest.mark.parametrize(
    ("storage", "says"),
    [
        (f"postgresql://alice:{SECRET}@127.0.0.1:1/studies", "cannot connect to"),
        (f"postgresql://alice:{SECRET}@db:notaport/studies", "is not a database URL"),
        ("not a url at all", "is not a database URL"),
        ("nosuchdb://host/x", "names an unknown database"),
    ],
)
def test_status_with_a_url_it_cannot_use_prints_one_line_and_exits_2(capsys, storage, says):
    code, err = _status(capsys, storage)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert says in err and SECRET not in err and "Traceback" not in err


def test_status_on_a_newer_optuna_schema_says_to_update_optuna(tmp_path, capsys):
    _future_optuna_db(tmp_path / "future.db")
    code, err = _status(capsys, f"sqlite:///{tmp_path / 'future.db'}")
    assert code == 2 and err.count("\n") == 1
    assert "newer Optuna" in err and "pip install -U optuna" in err


@pytest.mark.parametrize("kind", ["text file", "directory"])
def test_status_on_something_that_is_not_a_database_prints_one_line(tmp_path, capsys, kind):
    target = tmp_path / "studies.db"
    if kind == "directory":
        target.mkdir()
    else:
        target.write_text("these are my notes\n")
    code, err = _status(capsys, f"sqlite:///{target}")
    assert code == 2 and err.count("\n") == 1 and "cannot open the SQLite database" in err


def test_a_real_status_process_on_a_newer_schema_exits_2_without_a_traceback(tmp_path):
    _future_optuna_db(tmp_path / "future.db")
    result = subprocess.run([sys.executable, "-m", "spcl_search", "status", "--storage", f"sqlite:///{tmp_path / 'future.db'}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "pip install -U optuna" in result.stderr


def test_a_database_error_no_retry_cured_is_one_line_at_the_cli(monkeypatch, capsys):
    def lost(*args, **kwargs):
        raise optuna.exceptions.StorageInternalError("commit failed") from _dbapi(
            sqlalchemy.exc.OperationalError, f"could not connect to postgresql://alice:{SECRET}@db/x")

    import spcl_search.search.status as status_mod

    monkeypatch.setattr(status_mod, "all_statuses", lost)
    code, err = _status(capsys, "sqlite:///:memory:")
    assert code == 2 and err.count("\n") == 1 and "study database failed" in err and SECRET not in err


@pytest.mark.postgres
def test_a_server_going_down_while_the_storage_opens_is_the_one_line_cannot_connect(pg_url, monkeypatch):
    def shutting_down(self):
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from _dbapi(
            sqlalchemy.exc.OperationalError, "FATAL:  the database system is shutting down")

    monkeypatch.setattr(optuna.storages._rdb.storage._VersionManager, "check_table_schema_compatibility", shutting_down)
    with pytest.raises(StorageError, match="cannot connect to .*the database system is shutting down; check that the server runs"):
        open_storage(pg_url, heartbeat_interval=None)


# --------------------------------------------------------------------- two specs, one study name

SPEC_A = 'name = "shared"\nbackbone = "mmgcn"\nepochs = 3\n'
SPEC_B = 'name = "shared"\nbackbone = "mmgcn"\nepochs = 4\nsampler = "random"\n'


def test_a_second_run_with_another_spec_on_the_same_study_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "a.toml").write_text(SPEC_A)
    (tmp_path / "b.toml").write_text(SPEC_B)
    storage = f"sqlite:///{tmp_path / 'runs.db'}"

    def run(spec):
        with pytest.raises(SystemExit) as exc:
            main(["run", "--spec", str(tmp_path / spec), "--storage", storage, "--workers", "0"])
        return exc.value.code or 0

    assert run("a.toml") == 0
    capsys.readouterr()
    assert run("b.toml") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "study 'shared'" in err and "has another spec" in err
    assert "epochs is 3 there but 4 here" in err and "sampler is 'tpe' there but 'random' here" in err
    assert re.search(r"new --study name", err)
    spec = optuna.load_study(study_name="shared", storage=open_storage(storage, heartbeat_interval=None)).user_attrs["spec"]
    assert spec["epochs"] == 3  # the first spec is untouched

