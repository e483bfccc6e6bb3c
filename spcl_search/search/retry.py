"""Riding out a study database that goes away for a while (a restart, a fail-over, a network blip).

* :func:`is_transient` tells a lost or refused connection (worth another try) from a real error.
* :func:`retry_call` tries again with exponential backoff (doubling from
  :data:`~spcl_search.search.settings.STORAGE_RETRY_FIRST_WAIT` up to ``STORAGE_RETRY_MAX_WAIT``, with
  jitter) until a total deadline, logging one line per retry with the password masked; after the
  deadline it raises a one-line :class:`~spcl_search.errors.StorageError`.
* Every study storage (:mod:`spcl_search.search.storage_api`) retries its calls in place with it, so a trial
  that reports an epoch while the database restarts waits for it instead of failing.
* :func:`paused` turns in-place retries off. The study lock does so: a critical section (count the
  budget, start a trial) must not resume half-way after a restart, since the lock went with the old
  connection; the caller redoes it from the start (``retry_call`` around it). Nested calls never
  retry on their own either: only the outermost :func:`retry_call` does.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import optuna
import sqlalchemy

from spcl_search.errors import SpclSearchError, StorageError
from spcl_search.search.settings import STORAGE_RETRY_DEADLINE, STORAGE_RETRY_FIRST_WAIT, STORAGE_RETRY_MAX_WAIT
from spcl_search.search.urls import mask_text, mask_url, short_error

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: driver messages (lower case) of a server with no connection slot left (its max_connections)
SERVER_SLOTS_MESSAGES = ("too many clients already", "remaining connection slots are reserved")
#: driver messages (lower case) of a role's or database's own CONNECTION LIMIT reached
LIMIT_SLOTS_MESSAGES = ("too many connections for role", "too many connections for database")
CONNECTION_SLOTS_MESSAGES = SERVER_SLOTS_MESSAGES + LIMIT_SLOTS_MESSAGES
#: driver messages (lower case) of a connection that was lost, refused or briefly unusable
TRANSIENT_MESSAGES = (
    "could not connect",
    "connection refused",
    "connection reset",
    "server closed the connection",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "no connection to the server",
    "connection already closed",
    "ssl syscall",
    "ssl connection has been closed",
    "could not receive data",
    "could not send data",
    "connection timed out",
    "timeout expired",
    "broken pipe",
    "lost connection",
    "server has gone away",
    "database is locked",
    "deadlock detected",
    "could not serialize access",
    *CONNECTION_SLOTS_MESSAGES,
)
#: what to do when the server has no connection slot left (a slot frees when another client ends, so it is
#: also waited for like a restart, but a cluster that keeps hitting it has outgrown direct connections)
SERVER_SLOTS_ADVICE = (
    "the database server has no free connection (each direct worker holds up to 4): run fewer direct workers, "
    "put them behind `spcl-search storage-proxy` (README, On a GPU cluster) or a pgbouncer, or raise max_connections"
)
#: the same for a CONNECTION LIMIT of the role or database in the URL
LIMIT_SLOTS_ADVICE = (
    "the role or database in the storage URL reached its CONNECTION LIMIT (each direct worker holds up to 4): "
    "raise it (ALTER ROLE / ALTER DATABASE ... CONNECTION LIMIT), run fewer direct workers, or put them behind "
    "`spcl-search storage-proxy`"
)

_state = threading.local()


class TransientStorageError(Exception):
    """Raised by this package for a condition that redoing the operation from the start cures."""


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """In this thread, storage calls fail at once instead of retrying in place."""
    previous = getattr(_state, "paused", False)
    _state.paused = True
    try:
        yield
    finally:
        _state.paused = previous


def is_paused() -> bool:
    """Whether in-place retries are off in this thread (see :func:`paused`)."""
    return bool(getattr(_state, "paused", False))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or the error it was raised from) is a lost, refused or briefly busy connection."""
    for e in _chain(exc):
        if isinstance(e, SpclSearchError):
            return False  # already a verdict for the user (e.g. a retry deadline that passed)
        if isinstance(e, (TransientStorageError, sqlalchemy.exc.TimeoutError)):
            return True
        if _is_grpc_unavailable(e):
            return True
        if isinstance(e, sqlalchemy.exc.DBAPIError):
            if e.connection_invalidated:
                return True
            if isinstance(e, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
                return any(m in _driver_text(e) for m in TRANSIENT_MESSAGES)
            return False
    return False


def _driver_text(e: sqlalchemy.exc.DBAPIError) -> str:
    """The driver's own message behind ``e``, lower case (what the message tables above match)."""
    return str(e.orig if e.orig is not None else e).lower()


#: gRPC status names of a storage proxy that is unreachable, restarting or overloaded for a moment
TRANSIENT_GRPC_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")


def _is_grpc_unavailable(exc: BaseException) -> bool:
    grpc = sys.modules.get("grpc")  # only a proxy client has imported it
    if grpc is None or not isinstance(exc, grpc.RpcError) or not callable(getattr(exc, "code", None)):
        return False
    return getattr(exc.code(), "name", "") in TRANSIENT_GRPC_CODES


def describe(exc: BaseException, url: str | None = None) -> str:
    """One line naming the driver error behind ``exc``, without the password."""
    root = next((e for e in _chain(exc) if isinstance(e, sqlalchemy.exc.DBAPIError)), exc)
    grpc = sys.modules.get("grpc")
    if grpc is not None and isinstance(root, grpc.RpcError) and callable(getattr(root, "code", None)):
        details = str(getattr(root, "details", lambda: "")() or "").splitlines()
        return f"gRPC {root.code().name}" + (f": {details[0]}" if details else "")
    if url is not None:
        text = short_error(root, url)
    else:
        lines = str(getattr(root, "orig", None) or root).strip().splitlines()
        text = mask_text(lines[0] if lines else "")
    return f"{type(root).__name__}: {text}" if text else type(root).__name__


def database_failure(exc: BaseException) -> str | None:
    """A one-line message if ``exc`` is a study-database failure that escaped every retry, else None."""
    if not any(isinstance(e, (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)) for e in _chain(exc)):
        return None
    return f"the study database failed ({describe(exc)}); {advice(exc, 'check that the server runs and is reachable, then run the command again')}"


def advice(exc: BaseException, otherwise: str) -> str:
    """What to do about ``exc``: the remedies for a server, role or database out of connections, else ``otherwise``."""
    for e in _chain(exc):
        if isinstance(e, sqlalchemy.exc.DBAPIError):
            text = _driver_text(e)
            if any(m in text for m in SERVER_SLOTS_MESSAGES):
                return SERVER_SLOTS_ADVICE
            if any(m in text for m in LIMIT_SLOTS_MESSAGES):
                return LIMIT_SLOTS_ADVICE
    return otherwise


def retry_call(fn: Callable[[], T], *, what: str, url: str, deadline: float | None = None) -> T:
    """``fn()``, tried again after transient storage errors until ``deadline`` seconds have passed.

    Within ``fn`` in-place retries are paused (the outermost call retries); inside :func:`paused` this
    calls ``fn`` once. Raises :class:`StorageError` (one line, password masked) after the deadline.
    """
    if is_paused():
        return fn()
    limit = STORAGE_RETRY_DEADLINE if deadline is None else deadline
    start = time.monotonic()
    tries = 0
    while True:
        try:
            with paused():
                result = fn()
        except Exception as exc:  # sorted into transient (retried) and the rest (raised)
            if not is_transient(exc):
                raise
            elapsed = time.monotonic() - start
            wait = min(STORAGE_RETRY_MAX_WAIT, STORAGE_RETRY_FIRST_WAIT * 2**tries) * random.uniform(0.5, 1.0)
            if elapsed + wait > limit:
                raise StorageError(
                    f"lost the study database {mask_url(url)} for {elapsed:.0f} s while trying to {what} "
                    f"({describe(exc, url)}); {advice(exc, 'check that the server runs, then start again')}"
                ) from None
            tries += 1
            logger.warning(
                "study database %s unreachable while trying to %s (%s); retry %d in %.1f s, giving up after %.0f s",
                mask_url(url),
                what,
                describe(exc, url),
                tries,
                wait,
                limit,
            )
            time.sleep(wait)
            continue
        if tries:
            logger.info("study database %s reachable again after %.1f s (%d retries)", mask_url(url), time.monotonic() - start, tries)
        return result
