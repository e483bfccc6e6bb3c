"""Study storage: which database, opened how, and errors a user can act on.

* The URL comes from ``--storage``, else ``$SPCL_SEARCH_STORAGE``, else a SQLite file
  ``spcl_search.db`` in the working directory.
* SQLite is switched to WAL and given a long busy timeout, so several local workers share it.
* PostgreSQL gets ``pool_pre_ping`` and a small connection pool (a cluster runs many workers).
* Heartbeats are on: a trial whose worker died is failed after the grace period and retried as a new
  trial by :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` (Optuna 5's name for
  ``RetryFailedTrialCallback``).
* Passwords never appear in messages: URLs are shown through :func:`mask_url`.
* The storage is a :class:`~spcl_search.search.retry.ResilientRDBStorage`: a call made while the
  database restarts waits for it (exponential backoff, a deadline) instead of failing.
* ``grpc://HOST:PORT`` is a storage proxy (``spcl-search storage-proxy``) in front of the database:
  a :class:`~spcl_search.search.proxy.ProxyStorage`, which holds no database connection itself.
"""

from __future__ import annotations

import copy
import random
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from spcl_search.errors import StorageError
from spcl_search.search.proxy import ProxyStorage, StudyStorage, is_proxy_url
from spcl_search.search.retry import ResilientRDBStorage, advice
from spcl_search.search.settings import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_RETRY, ENV_VAR, STORAGE_RETRY_DEADLINE
from spcl_search.search.urls import dialect, mask_url, resolve_url, short_error, sqlite_path

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "ENV_VAR",
    "RetryCallback",
    "list_studies",
    "mask_url",
    "open_storage",
    "resolve_url",
    "sqlite_path",
    "study_exists",
]

#: seconds a SQLite connection waits for a lock before "database is locked"
SQLITE_BUSY_TIMEOUT = 300.0
#: PostgreSQL pool per process: pool_size + max_overflow connections at most
PG_POOL_SIZE = 2
PG_MAX_OVERFLOW = 2


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


#: user attrs that describe one run of a trial (and why it failed): a retry starts without them
RUN_ATTRS = ("error", "fail_reason", "worker", "gpu", "oom", "packing", "trial_seconds", "pruned_at_step")


class RetryCallback(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a failed trial (a WAITING copy of its params), minus the failed run's attrs."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trial = copy.deepcopy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in RUN_ATTRS}
        super().__call__(study, trial)


def _tune_sqlite(engine: sqlalchemy.engine.Engine) -> None:
    """``synchronous=NORMAL`` on every connection: in WAL mode a commit then needs no fsync (a crash of
    the process loses nothing; a power cut may lose the last commits, never consistency)."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    sqlalchemy.event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened while Optuna set up the tables reconnect with the pragma


def open_storage(
    url: str | None = None,
    *,
    heartbeat_interval: int | None = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: int | None = DEFAULT_GRACE_PERIOD,
    max_retry: int | None = DEFAULT_MAX_RETRY,
    must_exist: bool = False,
    retry_deadline: float = STORAGE_RETRY_DEADLINE,
    pool: tuple[int, int] | None = None,
) -> StudyStorage:
    """Open (and create if needed) the study database at ``url`` (see :func:`resolve_url`).

    ``heartbeat_interval=None`` opens it without heartbeats (for read-only commands). ``must_exist``
    refuses to create a new SQLite file. Raises :class:`StorageError` with one line saying what to do;
    an unreachable server fails at once, while a connection lost later is retried for up to
    ``retry_deadline`` seconds (:mod:`spcl_search.search.retry`). ``pool`` is PostgreSQL's
    ``(pool_size, max_overflow)`` (default 2 and 2: a worker). Through a storage proxy (``grpc://``) the
    proxy's heartbeat interval and grace period apply.
    """
    resolved = resolve_url(url)
    if is_proxy_url(resolved):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            callback = RetryCallback(max_retry=max_retry)
        heartbeats = heartbeat_interval is not None
        return ProxyStorage(resolved, heartbeats=heartbeats, stale_trial_callback=callback, retry_deadline=retry_deadline)
    masked = mask_url(resolved)
    if heartbeat_interval is not None:
        if heartbeat_interval < 1 or grace_period is None or grace_period <= heartbeat_interval:
            raise StorageError(
                f"heartbeat interval {heartbeat_interval} s and grace period {grace_period} s: the grace period "
                "must be longer than the interval (e.g. 30 and 120)"
            )
    path = sqlite_path(resolved)
    if path is not None:
        _prepare_sqlite(path, masked, must_exist)
    kwargs: dict[str, Any] = {"engine_kwargs": _engine_kwargs(resolved, pool), "retry_deadline": retry_deadline}
    if heartbeat_interval is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryCallback(max_retry=max_retry)
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


def list_studies(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of the studies in ``storage``, oldest first."""
    return list(optuna.get_all_study_names(storage))


def study_exists(storage: optuna.storages.BaseStorage, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True
