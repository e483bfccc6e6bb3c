"""``spcl-search storage-proxy``: Optuna's gRPC storage proxy over the study database, plus what workers need.

The proxy serves Optuna's ``StorageService`` (every storage call of :class:`optuna.storages.GrpcStorageProxy`)
and ``spcl_search.Coordinator`` (:mod:`spcl_search.search.proxy`): heartbeats and the stale-trial queries,
run here against the database with the heartbeat settings given to the proxy; the study lock as a lease;
a trial's user attrs in one statement. Only this process holds database connections: a pool of
``connections`` for the storage calls plus one per study lock held at the moment.

Study lock leases: a worker holds the lock of a study for the milliseconds in which it counts the budget and
starts a trial. The proxy grants one lease per study (and takes the database's own lock under it, so direct
workers and other proxies are excluded too). A lease whose worker died is given away after the grace period;
the late worker's release then fails and it redoes its section, as after a lost database connection.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import optuna

from spcl_search.search import optuna_internals as internals
from spcl_search.search.lock import LockLost, database_lock
from spcl_search.search.proxy import SERVICE, decode, encode
from spcl_search.search.settings import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL
from spcl_search.search.storage import open_storage
from spcl_search.search.urls import mask_url

logger = logging.getLogger(__name__)

#: threads answering calls (a worker waiting for a study lock holds one for up to a second)
DEFAULT_THREADS = 128
#: database connections of the proxy's pool
DEFAULT_CONNECTIONS = 8


@dataclass
class _Lease:
    token: str
    expires: float
    held: contextlib.ExitStack | None = None


@dataclass
class LeaseTable:
    """One lease per study; a lease also holds the database's lock of the study (taken outside the table's mutex)."""

    storage: optuna.storages.RDBStorage
    ttl: float
    waiting_room: int = DEFAULT_THREADS // 2
    _leases: dict[str, _Lease] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _waiting: int = 0

    def acquire(self, study: str, wait: float) -> dict[str, Any]:
        """``{"token": T}`` once the lease is this caller's, ``{"token": None}`` after ``wait`` s, or ``busy`` when
        too many callers already wait (each waits in a server thread; the caller sleeps instead)."""
        deadline = time.monotonic() + max(0.0, min(wait, 5.0))
        with self._cond:
            if self._waiting >= self.waiting_room:
                return {"token": None, "busy": True}
            self._waiting += 1
            try:
                while True:
                    self._expire(study)
                    if study not in self._leases:
                        lease = self._leases[study] = _Lease(uuid.uuid4().hex, time.monotonic() + self.ttl)
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return {"token": None}
                    self._cond.wait(min(left, 0.25))
            finally:
                self._waiting -= 1
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(database_lock(self.storage, study))
        except BaseException:
            with self._cond:
                self._leases.pop(study, None)
                self._cond.notify_all()
            raise
        with self._cond:
            lease.held = stack
        return {"token": lease.token}

    def release(self, study: str, token: str) -> bool:
        """Give the lease back; False when it had been given away (expired)."""
        with self._cond:
            lease = self._leases.get(study)
            if lease is None or lease.token != token:
                return False
            del self._leases[study]
            self._cond.notify_all()
        return self._close(lease)

    def _expire(self, study: str) -> None:
        lease = self._leases.get(study)
        if lease is not None and lease.held is not None and time.monotonic() > lease.expires:
            logger.warning("lock of study %r held over %.0f s by a worker that went quiet: given away", study, self.ttl)
            del self._leases[study]
            self._close(lease)

    @staticmethod
    def _close(lease: _Lease) -> bool:
        try:
            if lease.held is not None:
                lease.held.close()
            return True
        except LockLost:
            return False


class Coordinator:
    """The ``spcl_search.Coordinator`` service: what Optuna's proxy lacks (see the module)."""

    def __init__(self, storage: optuna.storages.RDBStorage, heartbeat_interval: int, grace_period: int) -> None:
        self.storage = storage
        self.config = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period, "database": mask_url(storage.url)}
        self.leases = LeaseTable(storage, ttl=float(grace_period))

    def Config(self, request: Any, context: Any) -> dict[str, Any]:
        return self.config

    def Heartbeat(self, request: Any, context: Any) -> dict[str, bool]:
        self.storage.record_heartbeat(int(request["trial_id"]))
        return {"ok": True}

    def StaleTrials(self, request: Any, context: Any) -> list[int]:
        return internals.stale_trial_ids(self.storage, int(request["study_id"]))

    def Orphans(self, request: Any, context: Any) -> list[int]:
        return internals.orphan_trial_ids(self.storage, int(request["study_id"]), float(request["older_than"]))

    def SetTrialUserAttrs(self, request: Any, context: Any) -> dict[str, bool]:
        import grpc

        trial_id, attrs = int(request["trial_id"]), request["attrs"]
        try:
            if not internals.upsert_trial_user_attrs(self.storage, trial_id, attrs):
                for key, value in attrs.items():
                    self.storage.set_trial_user_attr(trial_id, key, value)
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return {"ok": True}

    def Lock(self, request: Any, context: Any) -> dict[str, Any]:
        return self.leases.acquire(str(request["study"]), float(request.get("wait", 1.0)))

    def Unlock(self, request: Any, context: Any) -> bool:
        return self.leases.release(str(request["study"]), str(request["token"]))

    def handler(self) -> Any:
        """The gRPC handler of this service (JSON messages)."""
        import grpc

        methods = ("Config", "Heartbeat", "StaleTrials", "Orphans", "SetTrialUserAttrs", "Lock", "Unlock")
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: grpc.unary_unary_rpc_method_handler(getattr(self, name), request_deserializer=decode, response_serializer=encode)
                for name in methods
            },
        )


def make_server(
    url: str | None,
    host: str = "localhost",
    port: int = 13000,
    *,
    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: int = DEFAULT_GRACE_PERIOD,
    threads: int = DEFAULT_THREADS,
    connections: int = DEFAULT_CONNECTIONS,
) -> tuple[Any, optuna.storages.RDBStorage]:
    """The proxy server for the database at ``url`` (not started) and its storage."""
    storage = open_storage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period, pool=(connections, 0))
    if not isinstance(storage, optuna.storages.RDBStorage):
        from spcl_search.errors import StorageError

        raise StorageError(f"storage-proxy --storage {url}: give the database URL (postgresql://... or sqlite:///...), not another proxy")
    server = internals.grpc_server(storage, host, port, ThreadPoolExecutor(max_workers=threads))
    coordinator = Coordinator(storage, heartbeat_interval, grace_period)
    coordinator.leases.waiting_room = max(1, threads // 2)
    server.add_generic_rpc_handlers((coordinator.handler(),))
    return server, storage


def serve(url: str | None, host: str, port: int, **options: Any) -> None:
    """Run the proxy until SIGTERM or Ctrl-C (calls in flight get 5 s to finish)."""
    server, storage = make_server(url, host, port, **options)
    server.start()
    logger.info("storage proxy for %s listening on grpc://%s:%d", mask_url(storage.url), host, port)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        server.stop(grace=5).wait()
        logger.info("storage proxy stopped")
