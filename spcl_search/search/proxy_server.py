"""``spcl-search storage-proxy``: Optuna's gRPC storage proxy over the study database, plus what workers need.

The proxy serves Optuna's ``StorageService`` (every storage call of :class:`optuna.storages.GrpcStorageProxy`)
and ``spcl_search.Coordinator`` (:mod:`spcl_search.search.proxy`): heartbeats and the stale-trial queries,
run here against the database with the heartbeat settings given to the proxy; the study lock as a lease;
a trial's user attrs in one statement. Only this process holds database connections: a pool of
``connections`` for the storage calls and a separate pool of ``lock_connections`` for the study locks.

Every call of either service passes :mod:`spcl_search.search.proxy_guard` first (the token, read-only tokens,
size bounds, who holds a trial). A token is required whenever the proxy listens beyond this machine;
``tls=(cert, key)`` serves over TLS.

Study lock leases: a worker holds the lock of a study for the milliseconds in which it counts the budget and
starts a trial. The proxy grants one lease per existing study (a study that does not exist gets none) and
takes the database's own lock under it from its lock pool, trying only as long as the caller waits, so
direct workers and other proxies are excluded too and no thread blocks for ever. A lease expires on the
clock after the grace period, whether or not anyone asks for it; the late worker's release then fails and
it redoes its section, as after a lost database connection. SIGTERM stops the proxy within 5 s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from spcl_search.errors import ConfigError, StorageError
from spcl_search.search import optuna_internals as internals
from spcl_search.search.lock import LockBusy, LockLost, database_lock
from spcl_search.search.proxy import SERVICE, decode, encode
from spcl_search.search.proxy_access import is_loopback
from spcl_search.search.proxy_guard import MAX_MESSAGE_BYTES, Guard
from spcl_search.search.rdb import ResilientRDBStorage, open_database
from spcl_search.search.settings import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL
from spcl_search.search.storage import study_exists
from spcl_search.search.storage_api import StorageOptions
from spcl_search.search.urls import is_database_url, mask_url, resolve_url

logger = logging.getLogger(__name__)

#: threads answering calls (a worker waiting for a study lock holds one for up to a second)
DEFAULT_THREADS = 128
#: database connections of the proxy's pool
DEFAULT_CONNECTIONS = 8
#: database connections for study locks (a lease holds one for milliseconds)
DEFAULT_LOCK_CONNECTIONS = 4
#: seconds in-flight calls get once SIGTERM came, and the most the whole shutdown may take
STOP_GRACE, STOP_LIMIT = 2.0, 4.5


@dataclass
class _Lease:
    token: str
    expires: float
    held: contextlib.ExitStack | None = None


@dataclass
class LeaseTable:
    """One lease per existing study; a lease also holds the database's lock of the study (taken outside the table's
    mutex, from ``engine``, the lock pool). Leases past their time are given away by a reaper thread."""

    storage: optuna.storages.RDBStorage
    ttl: float
    waiting_room: int = DEFAULT_THREADS // 2
    engine: Any = None
    _leases: dict[str, _Lease] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _waiting: int = 0
    _closed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        reaper = threading.Thread(target=self._reap, name="lease-reaper", daemon=True)
        reaper.start()

    def acquire(self, study: str, wait: float) -> dict[str, Any]:
        """``{"token": T}`` once the lease is this caller's, ``{"token": None}`` after ``wait`` s, ``busy`` when too many
        callers already wait (each waits in a server thread; the caller sleeps instead), ``absent`` when the study
        does not exist."""
        if not study_exists(self.storage, study):
            return {"token": None, "absent": True}
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
            stack.enter_context(database_lock(self.storage, study, engine=self.engine, wait=max(0.05, deadline - time.monotonic())))
        except BaseException as exc:
            with self._cond:
                self._leases.pop(study, None)
                self._cond.notify_all()
            if isinstance(exc, LockBusy):
                return {"token": None}
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

    def close(self) -> None:
        """Stop the reaper and release every lease (shutdown)."""
        self._closed.set()
        with self._cond:
            leases, self._leases = list(self._leases.values()), {}
            self._cond.notify_all()
        for lease in leases:
            self._close(lease)

    def _reap(self) -> None:
        while not self._closed.wait(min(1.0, max(0.05, self.ttl / 4))):
            with self._cond:
                for study in list(self._leases):
                    self._expire(study)

    def _expire(self, study: str) -> None:
        lease = self._leases.get(study)
        if lease is not None and lease.held is not None and time.monotonic() > lease.expires:
            logger.warning("lock of study %r held over %.0f s by a worker that went quiet: given away", study, self.ttl)
            del self._leases[study]
            self._cond.notify_all()
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

    def __init__(self, storage: ResilientRDBStorage, heartbeat_interval: int, grace_period: int, lock_engine: Any = None) -> None:
        self.storage = storage
        self.config = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period, "database": mask_url(storage.url)}
        self.leases = LeaseTable(storage, ttl=float(grace_period), engine=lock_engine)

    def Config(self, request: Any, context: Any) -> dict[str, Any]:
        return self.config

    def Heartbeat(self, request: Any, context: Any) -> dict[str, bool]:
        self.storage.record_heartbeat(int(request["trial_id"]))
        return {"ok": True}

    def StaleTrials(self, request: Any, context: Any) -> list[int]:
        return self.storage.stale_trial_ids(int(request["study_id"]))

    def Orphans(self, request: Any, context: Any) -> list[int]:
        return self.storage.orphan_trial_ids(int(request["study_id"]), float(request["older_than"]))

    def SetTrialUserAttrs(self, request: Any, context: Any) -> dict[str, bool]:
        import grpc

        trial_id, attrs = int(request["trial_id"]), request["attrs"]
        try:
            self.storage.set_trial_user_attrs(trial_id, attrs)
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


@dataclass
class ProxyServer:
    """A storage proxy made by :func:`make_server`: the gRPC server (not started), its storage and its lease table."""

    server: Any
    storage: ResilientRDBStorage
    coordinator: Coordinator
    address: str

    def start(self) -> None:
        self.server.start()

    def stop(self, grace: float | None = None) -> None:
        """Stop serving (calls in flight get ``grace`` s), release every lease and close the database pools."""
        self.server.stop(grace).wait(grace if grace else None)
        self.coordinator.leases.close()
        if self.coordinator.leases.engine is not None:
            self.coordinator.leases.engine.dispose()
        self.storage.engine.dispose()


def make_server(
    url: str | None,
    host: str = "localhost",
    port: int = 13000,
    *,
    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: int = DEFAULT_GRACE_PERIOD,
    threads: int = DEFAULT_THREADS,
    connections: int = DEFAULT_CONNECTIONS,
    lock_connections: int = DEFAULT_LOCK_CONNECTIONS,
    tokens: tuple[str, ...] = (),
    read_only_tokens: tuple[str, ...] = (),
    tls: tuple[str, str] | None = None,
) -> ProxyServer:
    """The proxy server for the database at ``url`` (not started). ``tokens`` may change studies, ``read_only_tokens`` only
    read them; without either the proxy may listen on a loopback address only. ``tls`` is ``(cert file, key file)``."""

    if not tokens and not is_loopback(host):
        raise ConfigError(
            f"--host {host}: a proxy reachable from other machines needs a token (--token-file FILE; make one with "
            "`openssl rand -hex 32 > FILE && chmod 600 FILE`), or listen on 127.0.0.1"
        )
    credentials = _server_credentials(tls) if tls is not None else None
    resolved = resolve_url(url)
    if not is_database_url(resolved):
        raise StorageError("storage-proxy: give the database URL (postgresql://... or sqlite:///...), not another proxy")
    storage = open_database(resolved, StorageOptions(heartbeat_interval, grace_period, pool=(connections, 0)))
    lock_engine = None
    if storage.engine.dialect.name == "postgresql":
        lock_engine = sqlalchemy.create_engine(
            storage.engine.url, pool_size=lock_connections, max_overflow=0, pool_timeout=1.0, pool_pre_ping=True
        )
    guard = Guard(storage, tokens=tokens, read_only_tokens=read_only_tokens, grace_period=float(grace_period))
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.so_reuseport", 0)]
    server = internals.grpc_server(storage, ThreadPoolExecutor(max_workers=threads), interceptors=[guard.interceptor()], options=options)
    coordinator = Coordinator(storage, heartbeat_interval, grace_period, lock_engine)
    coordinator.leases.waiting_room = max(1, threads // 2)
    server.add_generic_rpc_handlers((coordinator.handler(),))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_secure_port(address, credentials) if credentials is not None else server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        coordinator.leases.close()
        raise ConfigError(f"--host {host} --port {port}: cannot listen there (in use, or not an address of this machine)")
    if tokens and credentials is None and not is_loopback(host):
        logger.warning("the proxy listens on %s without TLS: tokens and studies cross the network in clear (--tls-cert/--tls-key)", host)
    return ProxyServer(server, storage, coordinator, address)


def _server_credentials(tls: tuple[str, str]) -> Any:
    import grpc

    cert, key = tls
    try:
        pair = (Path(key).expanduser().read_bytes(), Path(cert).expanduser().read_bytes())
    except OSError as exc:
        raise ConfigError(f"--tls-cert {cert} / --tls-key {key}: cannot read ({exc.strerror or exc})") from None
    return grpc.ssl_server_credentials([pair])


def serve(url: str | None, host: str, port: int, **options: Any) -> None:
    """Run the proxy until SIGTERM or Ctrl-C: calls in flight get 2 s, and the process is gone within 5 s."""
    proxy = make_server(url, host, port, **options)
    proxy.start()
    scheme = "grpcs" if options.get("tls") else "grpc"
    logger.info("storage proxy for %s listening on %s://%s:%d", mask_url(proxy.storage.url), scheme, host, port)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        watchdog = threading.Timer(STOP_LIMIT, _exit_now)
        watchdog.daemon = True
        watchdog.start()
        proxy.stop(grace=STOP_GRACE)
        logger.info("storage proxy stopped")


def _exit_now() -> None:
    """End the process when shutting down takes too long (a call stuck in the database, a thread that will not end)."""
    logger.error("storage proxy: shutdown took over %.1f s; exiting now", STOP_LIMIT)
    logging.shutdown()
    os._exit(1)
