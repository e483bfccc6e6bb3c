"""The study database (SQLite, PostgreSQL) as a :class:`~spcl_search.search.storage_api.StudyStorage`.

* SQLite is switched to WAL and given a long busy timeout, so several local workers share it.
* PostgreSQL gets ``pool_pre_ping`` and a small connection pool (a cluster runs many workers).
* Heartbeats are on: a trial whose worker died is failed after the grace period and retried as a new
  trial by :class:`~spcl_search.search.storage_api.RetryCallback`.
* Each storage call rides out a database restart (:mod:`spcl_search.search.retry`: exponential backoff, a
  deadline) instead of failing; the study lock is the database's own (:func:`spcl_search.search.lock.database_lock`).
* Passwords never appear in messages: URLs are shown through :func:`~spcl_search.search.urls.mask_url`.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

from spcl_search.errors import StorageError
from spcl_search.search import optuna_internals as internals
from spcl_search.search.lock import database_lock
from spcl_search.search.retry import advice
from spcl_search.search.settings import STORAGE_RETRY_DEADLINE
from spcl_search.search.storage_api import StorageOptions, StudyStorage, retry_in_place, set_state_idempotently
from spcl_search.search.urls import dialect, mask_url, short_error, sqlite_path

#: seconds a SQLite connection waits for a lock before "database is locked"
SQLITE_BUSY_TIMEOUT = 300.0
#: PostgreSQL pool per process: pool_size + max_overflow connections at most
PG_POOL_SIZE = 2
PG_MAX_OVERFLOW = 2


class ResilientRDBStorage(optuna.storages.RDBStorage, StudyStorage):
    """An :class:`optuna.storages.RDBStorage` whose calls ride out a database restart (see the module)."""

    #: seconds a call keeps retrying before it raises StorageError
    retry_deadline: float = STORAGE_RETRY_DEADLINE

    def __init__(self, url: str, *args: Any, retry_deadline: float = STORAGE_RETRY_DEADLINE, **kwargs: Any) -> None:
        self.retry_deadline = retry_deadline
        super().__init__(url, *args, **kwargs)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        base = optuna.storages.RDBStorage
        return set_state_idempotently(
            self, lambda: base.set_trial_state_values(self, trial_id, state, values), lambda: base.get_trial(self, trial_id).state, state
        )

    def study_lock(self, study_name: str) -> contextlib.AbstractContextManager[None]:
        """The database's lock of ``study_name``: PostgreSQL's advisory lock, a file lock beside a SQLite file."""
        return database_lock(self, study_name)

    def stale_trial_ids(self, study_id: int) -> list[int]:
        return internals.stale_trial_ids(self, study_id)

    def orphan_trial_ids(self, study_id: int, older_than: float) -> list[int]:
        return internals.orphan_trial_ids(self, study_id, older_than)

    def set_trial_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """One multi-row upsert on PostgreSQL and SQLite, one ``set_trial_user_attr`` per key elsewhere."""
        if not internals.upsert_trial_user_attrs(self, trial_id, attrs):
            for key, value in attrs.items():
                self.set_trial_user_attr(trial_id, key, value)


retry_in_place(ResilientRDBStorage, (*internals.RETRIED_METHODS, "stale_trial_ids", "orphan_trial_ids", "set_trial_user_attrs"))


def _engine_kwargs(url: str, pool: tuple[int, int] | None = None) -> dict[str, object]:
    backend = dialect(url)
    if backend == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    if backend == "postgresql":
        size, overflow = pool or (PG_POOL_SIZE, PG_MAX_OVERFLOW)
        return {
            "pool_pre_ping": True,
            "pool_size": size,
            "max_overflow": overflow,
            "pool_recycle": 1800,
            "connect_args": {"connect_timeout": 10, "application_name": "spcl-search"},
        }
    return {"pool_pre_ping": True}


def _prepare_sqlite(path: Path, masked: str, must_exist: bool) -> None:
    if must_exist and not path.exists():
        raise StorageError(f"no study database at {masked}; start a study with `spcl-search run` or pass --storage")
    if not path.parent.is_dir():
        raise StorageError(f"cannot create the SQLite database {masked}: folder {path.parent} does not exist")
    try:
        conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT)
        try:
            # WAL lets readers and one writer work at once; it is a property of the file, set once.
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot open the SQLite database {masked}: {exc}; check the path and its permissions") from None


def _tune_sqlite(engine: sqlalchemy.engine.Engine) -> None:
    """``synchronous=NORMAL`` on every connection: in WAL mode a commit then needs no fsync (a crash of
    the process loses nothing; a power cut may lose the last commits, never consistency)."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    sqlalchemy.event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened while Optuna set up the tables reconnect with the pragma


def open_database(resolved: str, options: StorageOptions) -> ResilientRDBStorage:
    """Open (and create if needed) the database at the resolved URL ``resolved`` (see
    :func:`spcl_search.search.storage.open_storage`). An unreachable server fails at once with one line."""
    masked = mask_url(resolved)
    heartbeat_interval, grace_period = options.heartbeat_interval, options.grace_period
    if heartbeat_interval is not None:
        if heartbeat_interval < 1 or grace_period is None or grace_period <= heartbeat_interval:
            raise StorageError(
                f"heartbeat interval {heartbeat_interval} s and grace period {grace_period} s: the grace period "
                "must be longer than the interval (e.g. 30 and 120)"
            )
    path = sqlite_path(resolved)
    if path is not None:
        _prepare_sqlite(path, masked, options.must_exist)
    kwargs: dict[str, Any] = {"engine_kwargs": _engine_kwargs(resolved, options.pool), "retry_deadline": options.retry_deadline}
    if heartbeat_interval is not None:
        retry = options.retry_callback()
        kwargs.update(heartbeat_interval=heartbeat_interval, grace_period=grace_period, heartbeat_stale_trial_callback=retry)
    for attempt in range(6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                rdb = ResilientRDBStorage(resolved, **kwargs)
            if path is not None:
                _tune_sqlite(rdb.engine)
            return rdb
        except ImportError:
            raise StorageError(f"no database driver for {masked}: install one (pip install psycopg2-binary for PostgreSQL)") from None
        except sqlalchemy.exc.NoSuchModuleError:
            raise StorageError(f"storage URL {masked} names an unknown database; use sqlite:///FILE or postgresql://USER@HOST/DB") from None
        except sqlalchemy.exc.ArgumentError as exc:
            raise StorageError(f"storage URL {masked} is invalid: {short_error(exc, resolved)}") from None
        except (sqlalchemy.exc.OperationalError, optuna.exceptions.StorageInternalError) as exc:
            cause = exc if isinstance(exc, sqlalchemy.exc.OperationalError) else exc.__cause__
            if not isinstance(cause, sqlalchemy.exc.OperationalError):
                raise
            if path is None:
                what_to_do = advice(cause, "check that the server runs and the host, port, user, password and database are right")
                raise StorageError(f"cannot connect to {masked}: {short_error(cause, resolved)}; {what_to_do}") from None
            raise StorageError(f"cannot open the SQLite database {masked}: {short_error(cause, resolved)}") from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            # several workers creating the tables of a fresh database at once: try again shortly
            if attempt == 5:
                raise StorageError(f"cannot set up the Optuna tables in {masked}: {short_error(exc, resolved)}") from None
            time.sleep(0.2 + random.random())
        except RuntimeError as exc:
            if "compatible with the table schema" in str(exc):
                if "pip install" in str(exc):
                    raise StorageError(
                        f"the database {masked} was set up by a newer Optuna than this one ({optuna.__version__}); "
                        "run `pip install -U optuna` in this environment, or use another --storage"
                    ) from None
                password = " (with the real password)" if "***" in masked else ""
                raise StorageError(
                    f"the database {masked} has an older Optuna schema than this Optuna {optuna.__version__} uses; back it up "
                    f"and run `optuna storage upgrade --storage '{masked}'`{password}, or use another --storage"
                ) from None
            raise
    raise AssertionError("unreachable")  # pragma: no cover
