"""A lock per study, shared by every worker process on every machine that uses the same database.

Workers take it for the few milliseconds in which they create a study or reserve a trial slot, so that
"count the trials, then start one" is atomic and a study gets exactly its budget of trials.

* PostgreSQL: a session advisory lock (``pg_advisory_lock``) on a key derived from the study name; it
  is released when the holder's connection closes, so a killed worker never leaves it held.
* SQLite: ``flock`` on ``<database>.lock`` next to the database file (SQLite is for one machine).
* Anything else (in-memory SQLite, Optuna's InMemoryStorage): a lock within this process.
* Through a storage proxy (``grpc://``): a lease the proxy grants, which takes the database's lock above
  (:mod:`spcl_search.search.proxy_server`).

Storage calls made while the lock is held do not retry in place (:func:`spcl_search.search.retry.paused`):
if the database restarts, the PostgreSQL lock is gone with its connection and another worker may take
it, so the critical section must be redone from the start. Releasing the lock checks that it was still
held; if not, :class:`LockLost` is raised after the section ran, so the caller can check its work.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import optuna
import sqlalchemy

from spcl_search.search.proxy import ProxyStorage, StudyStorage
from spcl_search.search.retry import TransientStorageError, paused
from spcl_search.search.storage import sqlite_path

_LOCAL_LOCKS: dict[str, threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


def lock_key(study_name: str) -> int:
    """Signed 64-bit advisory-lock key of ``study_name``."""
    digest = hashlib.blake2b(f"spcl-search:{study_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class LockLost(TransientStorageError):
    """The study lock went with its database connection while the critical section ran."""


def _pg_unlock(conn: sqlalchemy.engine.Connection, key: int) -> bool:
    """Release the advisory lock; False if it was no longer held (its connection was lost)."""
    try:
        held = bool(conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key}).scalar())
        conn.commit()
        return held
    except sqlalchemy.exc.SQLAlchemyError:
        conn.invalidate()  # never hand a connection that may still hold the lock back to the pool
        return False


@contextlib.contextmanager
def _pg_lock(storage: optuna.storages.RDBStorage, study_name: str) -> Iterator[None]:
    key = lock_key(study_name)
    conn = storage.engine.connect()
    released = False
    try:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        try:
            yield
        except BaseException:
            released = _pg_unlock(conn, key)
            raise
        released = _pg_unlock(conn, key)
        if not released:
            raise LockLost(f"the lock of study {study_name!r} was lost with its database connection")
    finally:
        if not released:
            conn.invalidate()  # closing the session releases a lock it may still hold
        conn.close()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _local_lock(key: str) -> Iterator[None]:
    with _LOCAL_GUARD:
        lock = _LOCAL_LOCKS.setdefault(key, threading.Lock())
    with lock:
        yield


def study_lock(storage: StudyStorage, study_name: str) -> contextlib.AbstractContextManager[None]:
    """Context manager holding the lock of ``study_name`` in ``storage`` across processes."""
    if isinstance(storage, ProxyStorage):
        return _without_retries(storage.study_lock(study_name))
    return _without_retries(database_lock(storage, study_name))


def database_lock(storage: optuna.storages.RDBStorage, study_name: str) -> contextlib.AbstractContextManager[None]:
    """The database's own lock of ``study_name`` (in-place retries untouched: the proxy takes it in one thread
    and may release it in another)."""
    if not isinstance(storage, optuna.storages.RDBStorage):  # Optuna's in-memory storage (replays, tests): one process
        return _local_lock(f"{id(storage)}:{study_name}")
    backend = storage.engine.dialect.name
    if backend == "postgresql":
        return _pg_lock(storage, study_name)
    path = sqlite_path(storage.url)
    if path is not None:
        return _file_lock(path.with_name(path.name + ".lock"))
    return _local_lock(f"{storage.url}:{study_name}")


@contextlib.contextmanager
def _without_retries(lock: contextlib.AbstractContextManager[None]) -> Iterator[None]:
    with paused(), lock:
        yield
