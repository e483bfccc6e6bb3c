"""Write a trial's user attrs in one statement.

A trial records a few dozen flat user attrs (docs/architecture.md, "Study records"). Optuna writes
each ``set_user_attr`` as its own transaction of several queries, which on PostgreSQL is most of the
per-trial storage cost. :func:`set_user_attrs` writes them all with one multi-row upsert into Optuna's
``trial_user_attributes`` table (the same upsert Optuna issues per key) on PostgreSQL and SQLite, and
falls back to one ``set_user_attr`` per key anywhere else or if Optuna's internals change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import optuna


def _rdb(trial: optuna.Trial) -> optuna.storages.RDBStorage | None:
    storage = getattr(trial, "storage", None)
    storage = getattr(storage, "_backend", storage)  # _CachedStorage wraps the RDB storage
    return storage if isinstance(storage, optuna.storages.RDBStorage) else None


def _upsert(rdb: optuna.storages.RDBStorage, trial_id: int, attrs: Mapping[str, Any]) -> bool:
    """One INSERT .. ON CONFLICT DO UPDATE for every attr; False if this storage cannot."""
    name = rdb.engine.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        return False
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
    except ImportError:
        return False
    model = models.TrialUserAttributeModel
    rows = [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)} for key, value in attrs.items()]
    with _create_scoped_session(rdb.scoped_session, True) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        rdb.check_trial_is_updatable(trial_id, trial.state)
        stmt = insert(model).values(rows)
        stmt = stmt.on_conflict_do_update(index_elements=[model.trial_id, model.key], set_={"value_json": stmt.excluded.value_json})
        session.execute(stmt)
    return True


def set_user_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """Set every ``attrs`` item as a user attr of the running ``trial`` (one statement where possible)."""
    if not attrs:
        return
    rdb = _rdb(trial)
    if rdb is not None:

        def upsert() -> bool:
            return _upsert(rdb, trial._trial_id, attrs)  # noqa: SLF001 - the id the storage needs

        retrying = getattr(rdb, "retrying", None)  # ResilientRDBStorage: ride out a database restart
        try:
            if retrying(upsert, "set the user attrs of a trial") if retrying else upsert():
                return
        except (AttributeError, TypeError):
            pass  # Optuna's internals changed: use the public API below
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
