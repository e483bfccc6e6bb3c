"""Study storage: which one, opened how, and errors a user can act on.

* The URL comes from ``--storage``, else ``$SPCL_SEARCH_STORAGE``, else a SQLite file
  ``spcl_search.db`` in the working directory.
* Its scheme picks the storage (:data:`spcl_search.search.urls.SCHEMES`): ``grpc://HOST:PORT`` is a storage
  proxy (``spcl-search storage-proxy``, :mod:`spcl_search.search.proxy`) in front of the database, any other URL a
  database (SQLite, PostgreSQL: :mod:`spcl_search.search.rdb`). Either is a
  :class:`~spcl_search.search.storage_api.StudyStorage`.
* Heartbeats are on: a trial whose worker died is failed after the grace period and retried as a new
  trial by :class:`~spcl_search.search.storage_api.RetryCallback` (Optuna's ``RetryHeartbeatStaleTrialCallback``).
* Passwords never appear in messages: URLs are shown through :func:`mask_url`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import optuna

from spcl_search.search.settings import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_RETRY, ENV_VAR, STORAGE_RETRY_DEADLINE
from spcl_search.search.storage_api import RUN_ATTRS, RetryCallback, StorageOptions, StudyStorage
from spcl_search.search.urls import mask_url, opener_of, resolve_url, sqlite_path

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "ENV_VAR",
    "RUN_ATTRS",
    "RetryCallback",
    "StudyStorage",
    "list_studies",
    "mask_url",
    "open_storage",
    "resolve_url",
    "sqlite_path",
    "study_exists",
]


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
    refuses to create a new SQLite file. Raises :class:`~spcl_search.errors.StorageError` with one line saying
    what to do; an unreachable server fails at once, while a connection lost later is retried for up to
    ``retry_deadline`` seconds (:mod:`spcl_search.search.retry`). ``pool`` is PostgreSQL's
    ``(pool_size, max_overflow)`` (default 2 and 2: a worker). Through a storage proxy (``grpc://``) the
    proxy's heartbeat interval and grace period apply.
    """
    resolved = resolve_url(url)
    options = StorageOptions(heartbeat_interval, grace_period, max_retry, must_exist, retry_deadline, pool)
    module, _, name = opener_of(resolved).partition(":")
    opener: Callable[[str, StorageOptions], StudyStorage] = getattr(importlib.import_module(module), name)
    return opener(resolved, options)


def list_studies(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of the studies in ``storage``, oldest first."""
    return list(optuna.get_all_study_names(storage))


def study_exists(storage: optuna.storages.BaseStorage, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True
