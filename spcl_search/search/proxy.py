"""A study database reached through ``spcl-search storage-proxy`` (``grpc://HOST:PORT``): the client side.

Beyond a few dozen workers one PostgreSQL runs out of connections (each worker holds up to 4). Optuna's gRPC
storage proxy (``optuna.storages.run_grpc_proxy_server`` / ``GrpcStorageProxy``) lets every worker talk to one
proxy process, which alone holds database connections. Optuna's client does not give what the service's
guarantees rest on, so the proxy (:mod:`spcl_search.search.proxy_server`) adds a second gRPC service,
``spcl_search.Coordinator``, and :class:`ProxyStorage` (Optuna's client plus that service) uses it for:

* heartbeats: ``record_heartbeat`` and the stale-trial query run in the proxy against the database, so a
  SIGKILLed worker's trial is failed and retried exactly as with a direct connection;
* the study lock: a lease held by the proxy (plus the database's own lock, so direct workers and other
  proxies stay excluded), released by the client, or by the proxy after the grace period if the client died;
  a lease lost that way raises :class:`LeaseLost` (redone from the start, like a lock lost with its connection);
* trials without any heartbeat, and a trial's user attrs in one call (what ``optuna_internals`` does by SQL).

A proxy that restarts is ridden out like a database restart: lost connections (gRPC ``UNAVAILABLE``) are
retried with backoff up to the deadline. The heartbeat interval and grace period are the proxy's.

Every call carries the client's token and its own random id (:mod:`spcl_search.search.proxy_access`), over
TLS for ``grpcs://HOST:PORT``; a proxy that refuses the client is a one-line :class:`StorageError`.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from spcl_search.errors import StorageError
from spcl_search.search import optuna_internals as internals
from spcl_search.search.proxy_access import CA_ENV, TOKEN_ENV, ClientAccess, client_channel
from spcl_search.search.retry import TransientStorageError
from spcl_search.search.settings import STORAGE_RETRY_DEADLINE
from spcl_search.search.storage_api import StorageOptions, StudyStorage, retry_in_place, set_state_idempotently

SCHEME = "grpc://"
#: the same over TLS
TLS_SCHEME = "grpcs://"
#: the extra gRPC service the proxy serves beside Optuna's
SERVICE = "spcl_search.Coordinator"
#: seconds the proxy waits for a busy study lock before answering "try again"
LOCK_WAIT = 1.0
#: seconds to wait for the proxy when a command starts
CONNECT_TIMEOUT = 10.0


def parse_proxy_url(url: str) -> tuple[str, int, bool]:
    """``(host, port, tls)`` of ``grpc(s)://HOST:PORT``; a StorageError naming the URL otherwise."""
    tls = url.startswith(TLS_SCHEME)
    host, _, port = url[len(TLS_SCHEME if tls else SCHEME) :].rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise StorageError(f"storage URL {url!r}: a storage proxy is grpc://HOST:PORT (spcl-search storage-proxy --host H --port P)")
    return host.strip("[]"), int(port), tls


def refusal(exc: BaseException, url: str | None = None) -> StorageError | None:
    """A one-line StorageError for a proxy that refused the call (token, read-only token, size, another's trial), else None."""
    import grpc

    if not isinstance(exc, grpc.RpcError) or not callable(getattr(exc, "code", None)):
        return None
    code = exc.code()
    if code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
        return None
    details = " ".join(str(exc.details() or code.name).split())
    return StorageError(f"the storage proxy{f' at {url}' if url else ''} refused: {details}")


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def decode(data: bytes) -> Any:
    return json.loads(data) if data else None


class LeaseLost(TransientStorageError):
    """The proxy gave the study lock away (this client held it past the grace period)."""


class ProxyStorage(optuna.storages.GrpcStorageProxy, StudyStorage):
    """Optuna's gRPC storage client with heartbeats, the study lock and batched user attrs (see the module)."""

    def __init__(
        self,
        url: str,
        *,
        heartbeats: bool = True,
        stale_trial_callback: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
        retry_deadline: float = STORAGE_RETRY_DEADLINE,
        access: ClientAccess | None = None,
    ) -> None:
        """Connect to the proxy at ``url``; with ``heartbeats``, trials beat at the proxy's interval and a stale one
        is handed to ``stale_trial_callback`` (the storage's retry). ``access`` is the token and CA to use (default:
        ``$SPCL_SEARCH_TOKEN_FILE``, ``$SPCL_SEARCH_CA_FILE``)."""
        self.url = url
        self.retry_deadline = retry_deadline
        host, port, tls = parse_proxy_url(url)
        self.access = access if access is not None else ClientAccess.from_environment()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(host=host, port=port)
        internals.use_channel(self, client_channel(host, port, self.access, tls=tls))
        try:
            self.wait_server_ready(timeout=CONNECT_TIMEOUT)
        except ConnectionError:
            hint = f"; over TLS the certificate must be trusted (${CA_ENV})" if tls else ""
            raise StorageError(
                f"no storage proxy answers at {url} within {CONNECT_TIMEOUT:.0f} s; start it with "
                f"`spcl-search storage-proxy --host {host} --port {port}` or check the address{hint}"
            ) from None
        self._coordinator = self._channel
        self._calls: dict[str, Callable[..., Any]] = {}
        try:
            config = self.call("Config", {})
        except Exception as exc:
            refused = refusal(exc, url)
            if refused is None:
                raise
            hint = "" if self.access.token else f" (this client has no token: set ${TOKEN_ENV})"
            raise StorageError(f"{refused}{hint}") from None
        self.database: str = config["database"]
        self.grace_period: int = int(config["grace_period"])
        self._interval: int | None = int(config["heartbeat_interval"]) if heartbeats else None
        self._callback = stale_trial_callback if heartbeats else None

    def call(self, method: str, request: Any, timeout: float | None = 60.0) -> Any:
        """One call of the proxy's ``spcl_search.Coordinator`` service."""
        stub = self._calls.get(method)
        if stub is None:
            stub = self._calls[method] = self._coordinator.unary_unary(
                f"/{SERVICE}/{method}", request_serializer=encode, response_deserializer=decode
            )
        return stub(request, timeout=timeout)

    def wait_server_ready(self, timeout: float | None = None) -> None:
        """Wait until the proxy answers on this client's own channel (TLS and all)."""
        import grpc

        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as exc:
            raise ConnectionError("gRPC connection timeout") from exc

    # ---------------------------------------------------------------------------- heartbeats

    def record_heartbeat(self, trial_id: int) -> None:
        self.call("Heartbeat", {"trial_id": trial_id})

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self.stale_trial_ids(study_id)

    def stale_trial_ids(self, study_id: int) -> list[int]:
        """RUNNING trials whose heartbeat is older than the proxy's grace period (queried by the proxy)."""
        return [int(i) for i in self.call("StaleTrials", {"study_id": study_id})]

    def get_heartbeat_interval(self) -> int | None:
        return self._interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None:
        return self._callback

    def orphan_trial_ids(self, study_id: int, older_than: float) -> list[int]:
        """RUNNING trials without any heartbeat started over ``older_than`` s ago (queried by the proxy)."""
        return [int(i) for i in self.call("Orphans", {"study_id": study_id, "older_than": older_than})]

    # ---------------------------------------------------------------------------- records

    def set_trial_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Every attr of a running trial in one call (one statement in the proxy)."""
        import grpc

        try:
            self.call("SetTrialUserAttrs", {"trial_id": trial_id, "attrs": dict(attrs)})
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise optuna.exceptions.UpdateFinishedTrialError(exc.details()) from None
            raise

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        base = optuna.storages.GrpcStorageProxy
        return set_state_idempotently(
            self, lambda: base.set_trial_state_values(self, trial_id, state, values), lambda: base.get_trial(self, trial_id).state, state
        )

    # ---------------------------------------------------------------------------- the study lock

    @contextlib.contextmanager
    def study_lock(self, study_name: str) -> Iterator[None]:
        """Hold the proxy's lease on ``study_name``; :class:`LeaseLost` after the section if it was given away."""
        token = None
        while token is None:
            answer = self.call("Lock", {"study": study_name, "wait": LOCK_WAIT}, timeout=LOCK_WAIT + 60)
            token = answer.get("token")
            if answer.get("absent"):
                raise StorageError(f"the storage proxy at {self.url} has no study {study_name!r} to lock")
            if token is None and answer.get("busy"):
                time.sleep(random.uniform(0.05, 0.2))  # the proxy's waiting room is full
        released = False
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                released = bool(self.call("Unlock", {"study": study_name, "token": token}))
        if not released:
            raise LeaseLost(f"the proxy gave the lock of study {study_name!r} away before this worker released it")


retry_in_place(ProxyStorage, (*internals.RETRIED_METHODS, "orphan_trial_ids", "stale_trial_ids", "set_trial_user_attrs"))


def open_proxy(url: str, options: StorageOptions) -> ProxyStorage:
    """The client of the proxy at ``url`` (its scheme's opener in :data:`spcl_search.search.urls.SCHEMES`);
    the proxy's heartbeat interval and grace period apply, heartbeats only when ``options`` has an interval."""
    heartbeats = options.heartbeat_interval is not None
    return ProxyStorage(url, heartbeats=heartbeats, stale_trial_callback=options.retry_callback(), retry_deadline=options.retry_deadline)
