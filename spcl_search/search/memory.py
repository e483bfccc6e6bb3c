"""Optuna's in-memory storage as a :class:`~spcl_search.search.storage_api.StudyStorage` (``memory://``): one process,
nothing kept. Replays of a tabular benchmark and tests use it; heartbeats are kept in memory too, so a worker runs on
it exactly as on a database.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import TrialState

from spcl_search.search.lock import process_lock
from spcl_search.search.optuna_internals import trial_id
from spcl_search.search.settings import STORAGE_RETRY_DEADLINE
from spcl_search.search.storage_api import StorageOptions, StudyStorage, set_state_idempotently

#: the URL of a new in-memory storage
URL = "memory://"


class InMemoryStudyStorage(optuna.storages.InMemoryStorage, StudyStorage):
    """An :class:`optuna.storages.InMemoryStorage` with the study lock, heartbeats and batched attrs of a study storage.
    Without ``heartbeat_interval`` it has no heartbeats (as Optuna's)."""

    #: the retry policy is every storage's, though nothing in memory is ever lost for a while
    retry_deadline: float = STORAGE_RETRY_DEADLINE

    def __init__(
        self,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        stale_trial_callback: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    ) -> None:
        super().__init__()
        self.url = URL
        self.grace_period = grace_period if heartbeat_interval is not None else None
        self._interval = heartbeat_interval
        self._callback = stale_trial_callback if heartbeat_interval is not None else None
        self._beats: dict[int, float] = {}
        self._beats_guard = threading.Lock()

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        base = optuna.storages.InMemoryStorage
        return set_state_idempotently(
            self, lambda: base.set_trial_state_values(self, trial_id, state, values), lambda: base.get_trial(self, trial_id).state, state
        )

    def study_lock(self, study_name: str) -> contextlib.AbstractContextManager[None]:
        return process_lock(f"{id(self)}:{study_name}")

    # ---------------------------------------------------------------------------- heartbeats

    def record_heartbeat(self, trial_id: int) -> None:
        with self._beats_guard:
            self._beats[trial_id] = time.monotonic()

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self.stale_trial_ids(study_id)

    def get_heartbeat_interval(self) -> int | None:
        return self._interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None:
        return self._callback

    def stale_trial_ids(self, study_id: int) -> list[int]:
        grace = self.grace_period or 2 * (self._interval or 30)
        now = time.monotonic()
        with self._beats_guard:
            beats = dict(self._beats)
        ids = [trial_id(t) for t in self._running(study_id)]
        return [i for i in ids if i in beats and now - beats[i] > grace]

    def orphan_trial_ids(self, study_id: int, older_than: float) -> list[int]:
        now = datetime.now()  # Optuna's in-memory storage stamps local time
        with self._beats_guard:
            beaten = set(self._beats)
        return [
            trial_id(t)
            for t in self._running(study_id)
            if trial_id(t) not in beaten and t.datetime_start is not None and (now - t.datetime_start).total_seconds() > older_than
        ]

    def _running(self, study_id: int) -> list[optuna.trial.FrozenTrial]:
        return self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))

    # ---------------------------------------------------------------------------- records

    def set_trial_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        for key, value in attrs.items():
            self.set_trial_user_attr(trial_id, key, value)


def open_memory(url: str, options: StorageOptions) -> InMemoryStudyStorage:
    """A new, empty in-memory storage (its scheme's opener in :data:`spcl_search.search.urls.SCHEMES`)."""
    callback = options.retry_callback() if options.heartbeat_interval is not None else None
    return InMemoryStudyStorage(options.heartbeat_interval, options.grace_period, callback)
