"""The one interface every study storage implements, and what every implementation shares.

The search service needs more of a storage than Optuna's ``BaseStorage``: a lock per study shared by every
worker, the trials whose worker died (a stale heartbeat, or none at all), a trial's user attrs in one call, the
grace period and a retry policy that rides out a restart. :class:`StudyStorage` names them; the resilient
database storage (:mod:`spcl_search.search.rdb`: SQLite, PostgreSQL) and the storage proxy's client
(:mod:`spcl_search.search.proxy`) implement it, and the rest of the package calls only the interface.

A new storage is its module (a :class:`StudyStorage` and an opener) plus its line in
:data:`spcl_search.search.urls.SCHEMES`; ``tests/test_storage_contract.py`` is the suite it must pass.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import optuna
from optuna.trial import TrialState

from spcl_search.search.optuna_internals import BaseHeartbeat
from spcl_search.search.retry import retry_call
from spcl_search.search.settings import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_RETRY, STORAGE_RETRY_DEADLINE

T = TypeVar("T")

#: user attrs that describe one run of a trial (and why it failed): a retry starts without them
RUN_ATTRS = ("error", "fail_reason", "worker", "gpu", "oom", "packing", "trial_seconds", "pruned_at_step")


@dataclass(frozen=True)
class StorageOptions:
    """How a command opens its storage (the same for every kind; a storage ignores what it has no use for).

    ``heartbeat_interval=None`` opens it without heartbeats (read-only commands); ``must_exist`` refuses to create a
    new database; ``retry_deadline`` is how long a lost connection is waited for; ``pool`` is a database's
    ``(pool_size, max_overflow)``."""

    heartbeat_interval: int | None = DEFAULT_HEARTBEAT_INTERVAL
    grace_period: int | None = DEFAULT_GRACE_PERIOD
    max_retry: int | None = DEFAULT_MAX_RETRY
    must_exist: bool = False
    retry_deadline: float = STORAGE_RETRY_DEADLINE
    pool: tuple[int, int] | None = None

    def retry_callback(self) -> RetryCallback:
        """The stale-trial callback of a storage opened with these options (a retry of each failed trial)."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RetryCallback(max_retry=self.max_retry)


class RetryCallback(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a failed trial (a WAITING copy of its params), minus the failed run's attrs."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trial = copy.deepcopy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in RUN_ATTRS}
        super().__call__(study, trial)


class StudyStorage(optuna.storages.BaseStorage, BaseHeartbeat):
    """An Optuna storage with heartbeats plus what the search service needs of it (see the module)."""

    #: the URL it was opened with (shown masked)
    url: str
    #: seconds a running trial may go without a heartbeat before it is failed and retried (None: no heartbeats)
    grace_period: int | None
    #: seconds a call keeps retrying a lost connection before it raises StorageError
    retry_deadline: float

    def retrying(self, fn: Callable[[], T], what: str) -> T:
        """``fn()`` (storage work outside Optuna's API) with this storage's retries (a lost connection waited for up to
        :attr:`retry_deadline`); ``what`` names it in messages."""
        return retry_call(fn, what=what, url=self.url, deadline=self.retry_deadline)

    @abc.abstractmethod
    def study_lock(self, study_name: str) -> contextlib.AbstractContextManager[None]:
        """The lock of ``study_name``, shared by every process using this storage; a lock lost while held raises a
        :class:`~spcl_search.search.retry.TransientStorageError` when the section ends."""

    @abc.abstractmethod
    def stale_trial_ids(self, study_id: int) -> list[int]:
        """RUNNING trials whose last heartbeat is older than the grace period."""

    @abc.abstractmethod
    def orphan_trial_ids(self, study_id: int, older_than: float) -> list[int]:
        """RUNNING trials without any heartbeat, started over ``older_than`` s ago."""

    @abc.abstractmethod
    def set_trial_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Every attr of a running trial at once (one statement where the storage can);
        :class:`optuna.exceptions.UpdateFinishedTrialError` if it is finished."""


def set_state_idempotently(
    storage: StudyStorage, set_state: Callable[[], bool], current: Callable[[], TrialState], state: TrialState
) -> bool:
    """``set_state()`` with ``storage``'s retries, where a retry that finds the trial already in ``state`` succeeded: the
    attempt before may have been applied just before its connection dropped. ``current()`` reads the trial's state."""
    attempts = 0

    def attempt() -> bool:
        nonlocal attempts
        attempts += 1
        try:
            return bool(set_state())
        except optuna.exceptions.UpdateFinishedTrialError:
            if attempts > 1 and current() == state:
                return True
            raise

    return storage.retrying(attempt, "set the state of a trial")


def retry_in_place(cls: type[StudyStorage], names: Iterable[str]) -> None:
    """Make each method of ``cls`` named in ``names`` (those it has) retry in place with the storage's own policy."""
    for name in names:
        method = getattr(cls, name, None)
        if callable(method):
            setattr(cls, name, _retried(method, name.strip("_").replace("_", " ")))


def _retried(method: Callable[..., Any], what: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: StudyStorage, *args: Any, **kwargs: Any) -> Any:
        return self.retrying(lambda: method(self, *args, **kwargs), what)

    return call
