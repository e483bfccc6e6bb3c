"""A lock per study, shared by every worker process on every machine that uses the same database.

Workers take it for the few milliseconds in which they create a study or reserve a trial slot, so that
"count the trials, then start one" is atomic and a study gets exactly its budget of trials.

* PostgreSQL: a session advisory lock (``pg_advisory_lock``) on a key derived from the study name; it
  is released when the holder's connection closes, so a killed worker never leaves it held.
* SQLite: ``flock`` on ``<database>.lock`` next to the database file (SQLite is for one machine).
* Anything else (in-memory SQLite; the in-memory storage, :mod:`spcl_search.search.memory`): a lock within this process.
* Through a storage proxy (``grpc://``): a lease the proxy grants, which takes the database's lock above
  (:mod:`spcl_search.search.proxy_server`).

Each storage gives its own (:meth:`spcl_search.search.storage_api.StudyStorage.study_lock`); :func:`study_lock`
takes it with in-place retries off.

Storage calls made while the lock is held do not retry in place (:func:`spcl_search.search.retry.paused`):
if the database restarts, the PostgreSQL lock is gone with its connection and another worker may take
it, so the critical section must be redone from the start. Releasing the lock checks that it was still
held; if not, :class:`LockLost` is raised after the section ran, so the caller can check its work.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy

from spcl_search.search.retry import TransientStorageError, paused
from spcl_search.search.urls import sqlite_path

if TYPE_CHECKING:
    import optuna

    from spcl_search.search.storage_api import StudyStorage

_LOCAL_LOCKS: dict[str, threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


def lock_key(study_name: str) -> int:
    """Signed 64-bit advisory-lock key of ``study_name``."""
    digest = hashlib.blake2b(f"spcl-search:{study_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class LockLost(TransientStorageError):
    """The study lock went with its database connection while the critical section ran."""


class LockBusy(TransientStorageError):
    """The study lock (or a connection to take it with) did not come within the wait given."""


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
def _pg_lock(engine: sqlalchemy.engine.Engine, study_name: str, wait: float | None) -> Iterator[None]:
    key = lock_key(study_name)
    try:
        conn = engine.connect()
    except sqlalchemy.exc.TimeoutError:
        raise LockBusy(f"no connection free to take the lock of study {study_name!r}") from None
    released = False
    try:
        if wait is None:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        else:
            deadline = time.monotonic() + wait
            while not conn.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if time.monotonic() >= deadline:
                    conn.commit()
                    released = True  # never held
                    raise LockBusy(f"the lock of study {study_name!r} is held elsewhere")
                time.sleep(0.02)
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
def _file_lock(path: Path, wait: float | None = None) -> Iterator[None]:
    import fcntl

    with open(path, "a+") as fh:
        if wait is None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockBusy(f"the lock file {path} is held elsewhere") from None
                    time.sleep(0.02)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def process_lock(key: str, wait: float | None = None) -> Iterator[None]:
    """The lock named ``key`` within this process (threads exclude each other; other processes are not seen)."""
    with _LOCAL_GUARD:
        lock = _LOCAL_LOCKS.setdefault(key, threading.Lock())
    if not lock.acquire(timeout=-1 if wait is None else wait):
        raise LockBusy(f"the lock {key!r} is held elsewhere")
    try:
        yield
    finally:
        lock.release()


def study_lock(storage: StudyStorage, study_name: str) -> contextlib.AbstractContextManager[None]:
    """Context manager holding the lock of ``study_name`` in ``storage`` across processes."""
    return _without_retries(storage.study_lock(study_name))


def database_lock(
    storage: optuna.storages.RDBStorage, study_name: str, *, engine: Any = None, wait: float | None = None
) -> contextlib.AbstractContextManager[None]:
    """The database's own lock of ``study_name`` (in-place retries untouched: the proxy takes it in one thread
    and may release it in another). ``engine`` gives the connection (default: the storage's pool); with ``wait``
    the lock is tried until then and :class:`LockBusy` raised, never waited for without end."""
    backend = storage.engine.dialect.name
    if backend == "postgresql":
        return _pg_lock(engine if engine is not None else storage.engine, study_name, wait)
    path = sqlite_path(storage.url)
    if path is not None:
        return _file_lock(path.with_name(path.name + ".lock"), wait)
    return process_lock(f"{storage.url}:{study_name}", wait)


@contextlib.contextmanager
def _without_retries(lock: contextlib.AbstractContextManager[None]) -> Iterator[None]:
    with paused(), lock:
        yield
