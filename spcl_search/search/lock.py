"""A lock per study, shared by every worker process on every machine that uses the same database.

Workers take it for the few milliseconds in which they create a study or reserve a trial slot, so that
"count the trials, then start one" is atomic and a study gets exactly its budget of trials.

* PostgreSQL: a session advisory lock (``pg_advisory_lock``) on a key derived from the study name; it
  is released when the holder's connection closes, so a killed worker never leaves it held.
* SQLite: ``flock`` on ``<database>.lock`` next to the database file (SQLite is for one machine).
* Anything else (in-memory SQLite): a lock within this process.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import optuna
import sqlalchemy

from spcl_search.errors import StorageError
from spcl_search.search.storage import mask_url, sqlite_path

_LOCAL_LOCKS: dict[str, threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


def lock_key(study_name: str) -> int:
    """Signed 64-bit advisory-lock key of ``study_name``."""
    digest = hashlib.blake2b(f"spcl-search:{study_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def _pg_lock(storage: optuna.storages.RDBStorage, study_name: str) -> Iterator[None]:
    key = lock_key(study_name)
    try:
        conn = storage.engine.connect()
    except sqlalchemy.exc.OperationalError as exc:
        raise StorageError(f"lost the connection to {mask_url(storage.url)} ({type(exc).__name__}); check the server") from None
    try:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
    finally:
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


def study_lock(storage: optuna.storages.RDBStorage, study_name: str) -> contextlib.AbstractContextManager[None]:
    """Context manager holding the lock of ``study_name`` in ``storage`` across processes."""
    backend = storage.engine.dialect.name
    if backend == "postgresql":
        return _pg_lock(storage, study_name)
    path = sqlite_path(storage.url)
    if path is not None:
        return _file_lock(path.with_name(path.name + ".lock"))
    return _local_lock(f"{storage.url}:{study_name}")
