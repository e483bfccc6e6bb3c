"""Every use of Optuna's private API, in one place.

The search service needs a few things Optuna's public API does not give: the ids its storage API takes
(``Study._study_id``, ``Trial._trial_id``), the RDB storage behind a cached one (``_CachedStorage._backend``),
one multi-row upsert of trial user attrs and a query for trials without a heartbeat (``optuna.storages._rdb``), and for
the gRPC storage proxy: its server before it starts (to add a service), the heartbeat interface and the stale-trial query.
They are tested against the Optuna range pinned in pyproject.toml; ``tests/test_search_optuna_internals.py``
fails loudly when one of them, or a storage method :mod:`~spcl_search.search.retry` wraps, goes away.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import optuna
import sqlalchemy
from optuna.storages import _heartbeat
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import TrialState
from sqlalchemy.dialects import postgresql, sqlite

#: RDBStorage methods that retry in place: reads and idempotent writes (upserts, state changes).
#: Creating a study or trial is not among them: a retry after a commit whose answer was lost would
#: create it twice; those run under the study lock, which callers redo from the start.
#: Four are private (``_get_trials``, ``_get_best_trial_id``, ``_set_trial_param``, ``_get_stale_trial_ids``):
#: Optuna's public methods call them, so wrapping them retries the inner step rather than the whole call.
RETRIED_METHODS = (
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "get_trial_param",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_all_trials",
    "_get_trials",
    "get_n_trials",
    "get_best_trial",
    "_get_best_trial_id",
    "set_trial_param",
    "_set_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "record_heartbeat",
    "_get_stale_trial_ids",
)


def missing_storage_methods() -> list[str]:
    """Names of :data:`RETRIED_METHODS` this Optuna's RDBStorage lacks (empty on a supported version)."""
    return [name for name in RETRIED_METHODS if not callable(getattr(optuna.storages.RDBStorage, name, None))]


def study_id(study: optuna.Study) -> int:
    """The storage id of ``study`` (what the storage API takes)."""
    return int(study._study_id)


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage id of ``trial`` (running, or as stored)."""
    return int(trial._trial_id)


def storage_of(trial: optuna.Trial) -> optuna.storages.BaseStorage | None:
    """The storage ``trial`` writes to, unwrapped from the ``_CachedStorage`` Optuna puts around a database."""
    storage = getattr(trial, "storage", None)
    return getattr(storage, "_backend", storage)


def upsert_trial_user_attrs(rdb: optuna.storages.RDBStorage, trial: int, attrs: Mapping[str, Any]) -> bool:
    """One ``INSERT .. ON CONFLICT DO UPDATE`` for every attr of trial id ``trial`` (the upsert Optuna issues
    per key); False on a database other than PostgreSQL and SQLite."""
    name = rdb.engine.dialect.name
    if name not in ("postgresql", "sqlite"):
        return False
    insert: Any = postgresql.insert if name == "postgresql" else sqlite.insert
    model = models.TrialUserAttributeModel
    rows = [{"trial_id": trial, "key": key, "value_json": json.dumps(value)} for key, value in attrs.items()]
    with _create_scoped_session(rdb.scoped_session, True) as session:
        row = models.TrialModel.find_or_raise_by_id(trial, session)
        rdb.check_trial_is_updatable(trial, cast(TrialState, row.state))  # the column holds a TrialState
        stmt = insert(model).values(rows)
        stmt = stmt.on_conflict_do_update(index_elements=[model.trial_id, model.key], set_={"value_json": stmt.excluded.value_json})
        session.execute(stmt)
    return True


def orphan_trial_ids(rdb: optuna.storages.RDBStorage, study: int, older_than: float) -> list[int]:
    """RUNNING trials of study id ``study`` that never got a heartbeat and started over ``older_than`` s ago."""
    trial, beat = models.TrialModel, models.TrialHeartbeatModel
    started: Any = getattr(trial, "_datetime_start_utc", None)  # Optuna 5 stores naive UTC
    if started is not None:
        cutoff = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=older_than)
    else:  # Optuna 4: the client's local time
        started, cutoff = trial.datetime_start, datetime.now() - timedelta(seconds=older_than)
    with _create_scoped_session(rdb.scoped_session) as session:
        rows = (
            session.query(trial.trial_id)
            .outerjoin(beat, beat.trial_id == trial.trial_id)
            .filter(trial.study_id == study, trial.state == TrialState.RUNNING)
            .filter(beat.trial_heartbeat_id.is_(None), started < cutoff)
            .all()
        )
    return [int(r[0]) for r in rows]


def set_trial_user_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """Store ``attrs`` as user attrs of the running ``trial``: in one call on a study storage
    (:meth:`spcl_search.search.storage_api.StudyStorage.set_trial_user_attrs`), one ``set_user_attr`` per key on any
    other (Optuna's in-memory storage).

    A trial records a few dozen attrs, and Optuna writes each ``set_user_attr`` as its own transaction of
    several queries, which on PostgreSQL is most of the per-trial storage cost.
    """
    if not attrs:
        return
    batch = getattr(storage_of(trial), "set_trial_user_attrs", None)
    if batch is not None:
        batch(trial_id(trial), attrs)
        return
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


# ----------------------------------------------------------------------------------- the gRPC storage proxy

#: the heartbeat interface RDBStorage implements; the proxy client implements it over gRPC (Optuna's own client does not)
BaseHeartbeat = _heartbeat.BaseHeartbeat


def stale_trial_ids(rdb: optuna.storages.RDBStorage, study: int) -> list[int]:
    """RUNNING trials of study id ``study`` whose heartbeat is older than the storage's grace period."""
    return list(rdb._get_stale_trial_ids(study))


def grpc_server(storage: optuna.storages.RDBStorage, pool: Any, *, interceptors: Any = (), options: Any = ()) -> Any:
    """Optuna's gRPC storage proxy server for ``storage`` (not started), so more services can be added to it.

    Its ``GetTrials`` reads only the trials a client asks for. Optuna's client keeps a cache and asks for the
    trials newer than its last finished one plus its unfinished ones; Optuna's servicer loads every trial of
    the study from the database and filters afterwards, so each call cost O(trials x attrs) ORM objects and the
    proxy's one Python process saturated (69% of its time in that load at 32 workers). Here the filter is the
    database query's (``RDBStorage._get_trials``, the query Optuna's own cached storage used): same trials.
    """
    import grpc
    from optuna.storages._grpc import servicer
    from optuna.storages._grpc.auto_generated import api_pb2, api_pb2_grpc

    class _Service(servicer.OptunaStorageProxyService):
        def GetTrials(self, request: Any, context: Any) -> Any:
            try:
                trials = storage._get_trials(request.study_id, None, set(request.included_trial_ids), request.trial_id_greater_than)
            except KeyError as exc:
                context.abort(code=grpc.StatusCode.NOT_FOUND, details=str(exc))
            return api_pb2.GetTrialsReply(trials=[servicer._to_proto_trial(t) for t in trials])

    server = grpc.server(pool, interceptors=list(interceptors), options=list(options))
    api_pb2_grpc.add_StorageServiceServicer_to_server(_Service(storage), server)
    return server


def use_channel(client: optuna.storages.GrpcStorageProxy, channel: Any) -> None:
    """Make Optuna's gRPC client talk over ``channel`` (ours: TLS, the token and the client id on every call) instead of
    the plain channel it opened itself, which is closed."""
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.client import GrpcClientCache

    client._channel.close()
    client._channel = channel
    client._stub = api_pb2_grpc.StorageServiceStub(channel)
    client._cache = GrpcClientCache(client._stub)


def trial_silence(rdb: optuna.storages.RDBStorage, trial: int) -> float | None:
    """Seconds since trial id ``trial`` last beat (since it started, when it never did); None when it is not RUNNING.
    Heartbeats are timed by the database's clock, as in Optuna's heartbeat check; starts as :func:`orphan_trial_ids`."""
    model, beat = models.TrialModel, models.TrialHeartbeatModel
    with _create_scoped_session(rdb.scoped_session) as session:
        row = session.query(model).filter(model.trial_id == trial).one_or_none()
        if row is None or row.state != TrialState.RUNNING:
            return None
        heartbeat = session.query(beat).filter(beat.trial_id == trial).one_or_none()
        if heartbeat is not None:
            now = session.execute(sqlalchemy.func.now()).scalar()
            return 0.0 if now is None else (now.replace(tzinfo=None) - heartbeat.heartbeat).total_seconds()
        started: Any = getattr(row, "_datetime_start_utc", None)
        if started is not None:
            return (datetime.now(UTC).replace(tzinfo=None) - started).total_seconds()
        return 0.0 if row.datetime_start is None else (datetime.now() - row.datetime_start).total_seconds()


def trial_is_stale(rdb: optuna.storages.RDBStorage, trial: int, grace: float) -> bool:
    """Whether trial id ``trial`` is RUNNING and silent for over ``grace`` s (what the heartbeat check and the orphan
    query fail)."""
    silence = trial_silence(rdb, trial)
    return silence is not None and silence > grace
