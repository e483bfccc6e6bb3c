"""What the storage proxy lets a caller do, checked on every call of every service before it runs.

A gRPC server interceptor wraps each method handler, Optuna's ``StorageService`` and ``spcl_search.Coordinator``
alike (:mod:`spcl_search.search.proxy_access` says what clients send):

* **token**: when the proxy has tokens, a call without ``authorization: Bearer <token>`` or with another
  token is refused with ``PERMISSION_DENIED``; a read-only token may call only the reading methods;
* **sizes**: a user attr may hold :data:`MAX_USER_ATTR_BYTES` of JSON, a system attr
  :data:`MAX_SYSTEM_ATTR_BYTES` (the dashboard's figures live there), a study name 512 characters; the
  server refuses messages over :data:`MAX_MESSAGE_BYTES`;
* **trials**: a trial started through the proxy is its starter's (:class:`TrialHolders`, by the
  ``spcl-client`` id): heartbeats, results, parameters and attrs of it come only from that client, and from
  others only once it is stale (the heartbeat check of another worker failing it). Results are recorded
  by running trials: a trial cannot be created already finished.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from spcl_search.search import optuna_internals as internals
from spcl_search.search.proxy_access import AUTH_HEADER, CLIENT_HEADER, holder_of

logger = logging.getLogger(__name__)

#: largest JSON value of one user attr (a trial's record holds dozens of small ones)
MAX_USER_ATTR_BYTES = 64 << 10
#: largest JSON value of one system attr (optuna-dashboard splits figures and notes into chunks of a few KB)
MAX_SYSTEM_ATTR_BYTES = 256 << 10
#: largest message the proxy accepts
MAX_MESSAGE_BYTES = 8 << 20
#: longest study name (in a lock request)
MAX_NAME = 512
#: trial system attr holding the digest of the client that started the trial
HOLDER_ATTR = "spcl:holder"

#: the methods a read-only token may call
READ_METHODS = frozenset(
    {
        "GetStudyIdFromName",
        "GetStudyNameFromId",
        "GetStudyDirections",
        "GetStudyUserAttributes",
        "GetStudySystemAttributes",
        "GetAllStudies",
        "GetTrialIdFromStudyIdTrialNumber",
        "GetTrial",
        "GetTrials",
        "Config",
        "StaleTrials",
        "Orphans",
    }
)
#: methods that change a trial (its id in ``trial_id``), and so belong to the trial's holder
TRIAL_METHODS = frozenset(
    {
        "SetTrialParameter",
        "SetTrialStateValues",
        "SetTrialIntermediateValue",
        "SetTrialUserAttribute",
        "SetTrialSystemAttribute",
        "Heartbeat",
        "SetTrialUserAttrs",
    }
)


class Refused(Exception):
    """A call the guard refuses: ``code`` is the gRPC status name, the message one line for the caller."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TrialHolders:
    """Which client started each running trial (by digest), kept here and in the trial's system attrs (so that a
    restarted proxy still knows)."""

    def __init__(self, storage: optuna.storages.RDBStorage, grace_period: float) -> None:
        self.storage = storage
        self.grace_period = grace_period
        self._known: dict[int, str | None] = {}
        self._lock = threading.Lock()

    def record(self, trial_id: int, client: str) -> None:
        digest = holder_of(client)
        with self._lock:
            self._known[trial_id] = digest
        self.storage.set_trial_system_attr(trial_id, HOLDER_ATTR, digest)

    def forget(self, trial_id: int) -> None:
        with self._lock:
            self._known.pop(trial_id, None)

    def holder(self, trial_id: int) -> str | None:
        with self._lock:
            if trial_id in self._known:
                return self._known[trial_id]
        try:
            trial = self.storage.get_trial(trial_id)
        except KeyError:
            return None
        digest = trial.system_attrs.get(HOLDER_ATTR) if trial.state == optuna.trial.TrialState.RUNNING else None
        with self._lock:
            self._known[trial_id] = digest if isinstance(digest, str) else None
        return self._known[trial_id]

    def check(self, trial_id: int, client: str, *, heartbeat: bool) -> None:
        """Refuse (:class:`Refused`) a change of ``trial_id`` by a client that did not start it, unless the trial is stale
        and this is not a heartbeat (a stale trial is failed by whichever worker finds it)."""
        digest = self.holder(trial_id)
        if digest is None or hmac.compare_digest(digest, holder_of(client)):
            return
        silence = internals.trial_silence(self.storage, trial_id)
        if silence is None:  # no longer running (put back, or finished): whoever starts it next holds it
            self.forget(trial_id)
            return
        if not heartbeat and silence > self.grace_period:
            return
        raise Refused("PERMISSION_DENIED", f"trial id {trial_id} is run by another worker; only it may report on it")


class Guard:
    """The checks above for one proxy; :meth:`interceptor` gives the gRPC server interceptor that applies them."""

    def __init__(
        self,
        storage: optuna.storages.RDBStorage,
        *,
        tokens: Sequence[str] = (),
        read_only_tokens: Sequence[str] = (),
        grace_period: float,
    ) -> None:
        self.tokens = [t.encode() for t in tokens]
        self.read_only_tokens = [t.encode() for t in read_only_tokens]
        self.holders = TrialHolders(storage, grace_period)

    # ------------------------------------------------------------------ who is calling

    def authorise(self, method: str, metadata: dict[str, str]) -> None:
        """Refuse a caller without the proxy's token, or with the read-only one for a method that writes."""
        if not self.tokens and not self.read_only_tokens:
            return
        given = metadata.get(AUTH_HEADER, "")
        token = given[len("Bearer ") :].encode() if given.startswith("Bearer ") else b""
        if not token:
            raise Refused(
                "PERMISSION_DENIED", "this storage proxy needs a token: set SPCL_SEARCH_TOKEN_FILE (or --token-file) to its token file"
            )
        if any(hmac.compare_digest(token, t) for t in self.tokens):
            return
        if any(hmac.compare_digest(token, t) for t in self.read_only_tokens):
            if method in READ_METHODS:
                return
            raise Refused("PERMISSION_DENIED", f"the read-only token may not call {method}; use the proxy's full token to change studies")
        raise Refused("PERMISSION_DENIED", "the token is not this storage proxy's: check SPCL_SEARCH_TOKEN_FILE (or --token-file)")

    # ------------------------------------------------------------------ what it asks

    def before(self, method: str, request: Any, client: str) -> None:
        """Size bounds and the trial's holder, before the call runs."""
        if method in ("SetTrialUserAttribute", "SetStudyUserAttribute"):
            _bounded(request.key, request.value, MAX_USER_ATTR_BYTES, "user attr")
        elif method in ("SetTrialSystemAttribute", "SetStudySystemAttribute"):
            _bounded(request.key, request.value, MAX_SYSTEM_ATTR_BYTES, "system attr")
            if request.key == HOLDER_ATTR:
                raise Refused("PERMISSION_DENIED", f"{HOLDER_ATTR} is the proxy's to write")
        elif method == "SetTrialUserAttrs":
            for key, value in dict(request.get("attrs") or {}).items():
                _bounded(str(key), json.dumps(value), MAX_USER_ATTR_BYTES, "user attr")
        elif method == "CreateNewTrial" and not request.template_trial_is_none:
            self._check_template(request.template_trial)
        elif method in ("Lock", "Unlock") and len(str(request.get("study", ""))) > MAX_NAME:
            raise Refused("INVALID_ARGUMENT", f"a study name longer than {MAX_NAME} characters")
        elif method == "SetTrialStateValues":
            self._check_finishing(request)
        if method in TRIAL_METHODS:
            trial_id = request["trial_id"] if isinstance(request, dict) else request.trial_id
            self.holders.check(int(trial_id), client, heartbeat=method == "Heartbeat")

    def after(self, method: str, request: Any, reply: Any, client: str) -> None:
        """Record who holds a trial that just started, and forget one that just finished."""
        from optuna.storages._grpc.auto_generated import api_pb2

        if method == "CreateNewTrial":
            if request.template_trial_is_none or request.template_trial.state == api_pb2.RUNNING:
                self.holders.record(int(reply.trial_id), client)
        elif method == "SetTrialStateValues" and reply.trial_updated:
            if request.state == api_pb2.RUNNING:
                self.holders.record(int(request.trial_id), client)
            else:
                self.holders.forget(int(request.trial_id))

    def _check_finishing(self, request: Any) -> None:
        """Only a trial that runs may be finished: a WAITING one (an enqueued setting, a retry) never gets results."""
        from optuna.storages._grpc.auto_generated import api_pb2

        if request.state not in (api_pb2.COMPLETE, api_pb2.PRUNED, api_pb2.FAIL):
            return
        try:
            state = self.holders.storage.get_trial(int(request.trial_id)).state
        except KeyError:
            return  # the call itself says the trial does not exist
        if state == optuna.trial.TrialState.WAITING:
            raise Refused("PERMISSION_DENIED", "a waiting trial cannot be finished; results come from trials that ran")

    def _check_template(self, trial: Any) -> None:
        from optuna.storages._grpc.auto_generated import api_pb2

        if trial.state not in (api_pb2.RUNNING, api_pb2.WAITING):
            raise Refused("PERMISSION_DENIED", "trials are created RUNNING or WAITING; results come from trials that ran")
        for key, value in trial.user_attributes.items():
            _bounded(key, value, MAX_USER_ATTR_BYTES, "user attr")
        for key, value in trial.system_attributes.items():
            _bounded(key, value, MAX_SYSTEM_ATTR_BYTES, "system attr")
        if HOLDER_ATTR in trial.system_attributes:  # a retry copies its failed trial's system attrs
            del trial.system_attributes[HOLDER_ATTR]

    # ------------------------------------------------------------------ the interceptor

    def interceptor(self) -> Any:
        """A ``grpc.ServerInterceptor`` applying :meth:`authorise`, :meth:`before` and :meth:`after` to every unary call."""
        import grpc

        guard = self

        class Interceptor(grpc.ServerInterceptor):
            def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
                handler = continuation(details)
                if handler is None or handler.unary_unary is None:
                    return handler
                method = str(details.method).rsplit("/", 1)[-1]
                metadata = {str(k): str(v) for k, v in (details.invocation_metadata or ())}
                return grpc.unary_unary_rpc_method_handler(
                    guard._wrap(method, metadata, handler.unary_unary),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )

        return Interceptor()

    def _wrap(self, method: str, metadata: dict[str, str], inner: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        import grpc

        client = metadata.get(CLIENT_HEADER, "")

        def call(request: Any, context: Any) -> Any:
            try:
                self.authorise(method, metadata)
                self.before(method, request, client)
            except Refused as refused:
                context.abort(getattr(grpc.StatusCode, refused.code), str(refused))
            reply = inner(request, context)
            try:
                self.after(method, request, reply, client)
            except Exception:
                logger.warning("could not record the holder of a trial after %s", method, exc_info=True)
            return reply

        return call


def _bounded(key: str, value: str, limit: int, what: str) -> None:
    size = len(value.encode()) if isinstance(value, str) else len(value)
    if size > limit:
        raise Refused("INVALID_ARGUMENT", f"{what} {key[:80]!r} holds {size:,} bytes of JSON, over the proxy's limit of {limit:,}")
