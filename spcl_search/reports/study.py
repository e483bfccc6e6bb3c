"""Opening the study a report is about, through the search service's storage rules.

The storage URL is ``--storage``, else ``$SPCL_SEARCH_STORAGE``, else the search service's default
SQLite file (:func:`spcl_search.search.storage.resolve_url`); SQLite and PostgreSQL both work.
Reports only read: the storage is opened without heartbeats and never creates a database.
"""

from __future__ import annotations

import optuna
from optuna.storages import BaseStorage

from spcl_search.errors import StorageError
from spcl_search.search import storage as search_storage


def open_storage(url: str | None = None) -> BaseStorage:
    """Open an existing study database (one-line :class:`StorageError` otherwise)."""
    return search_storage.open_storage(url, heartbeat_interval=None, must_exist=True)


def load_study(name: str, storage: str | BaseStorage | None = None) -> optuna.Study:
    """Load study ``name``; a missing study is a :class:`StorageError` naming the known ones."""
    if not isinstance(storage, BaseStorage):
        storage = open_storage(storage)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = search_storage.list_studies(storage)
        known = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "") if names else "none"
        raise StorageError(f"study {name!r} not found in the storage (studies there: {known}); check `study` and `storage`") from None
