"""The contract every study storage keeps (:class:`spcl_search.search.storage_api.StudyStorage`), run on each of
them: SQLite, PostgreSQL, the storage proxy (with a token) in front of either, and the in-memory storage (one
process: its clients share one instance). A new storage adds its case to the ``backend`` fixture and passes the same
tests.

Clients open the storage with a 1 s heartbeat and a 2 s grace period (a proxy is started with those)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest
import simulated
from optuna.trial import TrialState

from spcl_search.search import optuna_internals as internals
from spcl_search.search import retry, urls
from spcl_search.search.lock import study_lock
from spcl_search.search.memory import InMemoryStudyStorage
from spcl_search.search.proxy_server import ProxyServer, make_server
from spcl_search.search.storage import open_storage
from spcl_search.search.storage_api import StorageOptions, StudyStorage
from spcl_search.search.study import open_study
from spcl_search.search.worker import recover_trials, run_worker

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")

TOKEN = "c0ntract-" + "c" * 40
HEARTBEAT, GRACE = 1, 2


@dataclass
class Backend:
    """One storage under test: the URL its clients open, the database behind it, and Optuna's storage class the
    client builds on (where a lost answer is simulated)."""

    url: str
    database: str | None
    optuna_base: type
    #: the one storage every client shares (an in-memory storage), else None: each client opens the URL
    shared: StudyStorage | None = None
    prefix: str = field(default_factory=lambda: f"contract-{uuid.uuid4().hex[:10]}")
    names: int = 0

    def open(self) -> StudyStorage:
        return self.shared or open_storage(self.url, heartbeat_interval=HEARTBEAT, grace_period=GRACE)

    def study_name(self) -> str:
        self.names += 1
        return f"{self.prefix}-{self.names}"

    def new_study(self, storage: StudyStorage, n_trials: int = 1) -> optuna.Study:
        requested = {"backbone": "mmgcn", "epochs": 1, "n_trials": n_trials, "name": self.study_name()}
        return open_study(storage, requested).study


BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    "proxy-sqlite",
    pytest.param("proxy-postgresql", marks=pytest.mark.postgres),
    "memory",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proxy(database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ProxyServer, str]:
    port = _free_port()
    server = make_server(database, "127.0.0.1", port, heartbeat_interval=HEARTBEAT, grace_period=GRACE, threads=16, tokens=(TOKEN,))
    server.start()
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    monkeypatch.setenv("SPCL_SEARCH_TOKEN_FILE", str(token))
    return server, f"grpc://127.0.0.1:{port}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    kind = str(request.param)
    if kind == "memory":
        yield Backend(
            "memory://",
            None,
            optuna.storages.InMemoryStorage,
            shared=open_storage("memory://", heartbeat_interval=HEARTBEAT, grace_period=GRACE),
        )
        return
    database = str(request.getfixturevalue("pg_url")) if kind.endswith("postgresql") else f"sqlite:///{tmp_path / 'contract.db'}"
    server = None
    if kind.startswith("proxy"):
        server, url = _proxy(database, tmp_path, monkeypatch)
        found = Backend(url, database, optuna.storages.GrpcStorageProxy)
    else:
        found = Backend(database, database, optuna.storages.RDBStorage)
    try:
        yield found
    finally:
        if server is not None:
            server.stop(0)
        cleaner = open_storage(database, heartbeat_interval=None)
        for name in optuna.get_all_study_names(cleaner):
            if name.startswith(found.prefix):
                optuna.delete_study(study_name=name, storage=cleaner)


def test_a_storage_opens_as_a_study_storage_with_the_grace_period_given(backend):
    storage = backend.open()
    assert isinstance(storage, StudyStorage)
    assert (storage.get_heartbeat_interval(), storage.grace_period) == (HEARTBEAT, GRACE)


def test_a_study_created_through_one_client_is_joined_through_another(backend):
    study = backend.new_study(backend.open())
    joined = open_study(backend.open(), {"name": study.study_name})
    assert not joined.created and joined.spec.backbone == "mmgcn"


def test_the_study_lock_admits_one_holder_at_a_time(backend):
    first, second = backend.open(), backend.open()
    name = backend.new_study(first).study_name
    held, order = threading.Event(), []

    def take_it_too() -> None:
        held.wait(10)
        with study_lock(second, name):
            order.append("second")

    other = threading.Thread(target=take_it_too)
    other.start()
    with study_lock(first, name):
        held.set()
        time.sleep(0.3)
        order.append("first")
    other.join(10)
    assert order == ["first", "second"]


def test_only_trials_silent_past_the_grace_period_are_failed_and_retried(backend):
    storage = backend.open()
    study = backend.new_study(storage, n_trials=3)
    dead, never, alive = study.ask(), study.ask(), study.ask()
    storage.record_heartbeat(dead._trial_id)
    storage.record_heartbeat(alive._trial_id)
    time.sleep(GRACE + 1.5)  # SQLite keeps whole seconds
    storage.record_heartbeat(alive._trial_id)
    sid = internals.study_id(study)
    assert storage.stale_trial_ids(sid) == [dead._trial_id]
    assert storage.orphan_trial_ids(sid, GRACE) == [never._trial_id]
    with study_lock(storage, study.study_name):
        recover_trials(study, storage)
    trials = optuna.load_study(study_name=study.study_name, storage=storage).trials
    assert [(t.state, t.user_attrs.get("fail_reason")) for t in trials[:3]] == [
        (TrialState.FAIL, "heartbeat"),
        (TrialState.FAIL, "heartbeat"),
        (TrialState.RUNNING, None),
    ]
    assert sorted(t.system_attrs["failed_trial"] for t in trials[3:] if t.state == TrialState.WAITING) == [dead.number, never.number]


def test_user_attrs_are_written_together_and_overwrite_by_key(backend):
    storage = backend.open()
    trial = backend.new_study(storage).ask()
    storage.set_trial_user_attrs(trial._trial_id, {"a": 1, "b": [1, 2]})
    storage.set_trial_user_attrs(trial._trial_id, {"a": 2})
    assert storage.get_trial(trial._trial_id).user_attrs == {"a": 2, "b": [1, 2]}


def test_user_attrs_of_a_finished_trial_are_refused(backend):
    storage = backend.open()
    study = backend.new_study(storage)
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_user_attrs(trial._trial_id, {"a": 1})


def test_a_state_set_again_after_its_answer_was_lost_is_not_an_error(backend, monkeypatch):
    storage = backend.open()
    trial = backend.new_study(storage).ask()
    original = backend.optuna_base.set_trial_state_values
    calls = []

    def apply_then_lose_the_answer(self, trial_id, state, values=None):
        calls.append(state)
        result = original(self, trial_id, state, values)
        if len(calls) == 1:
            raise retry.TransientStorageError("the answer was lost")
        return result

    monkeypatch.setattr(backend.optuna_base, "set_trial_state_values", apply_then_lose_the_answer)
    monkeypatch.setattr(retry.time, "sleep", lambda s: None)
    assert storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [1.0]) is True
    assert len(calls) == 2 and storage.get_trial(trial._trial_id).state == TrialState.COMPLETE


def test_a_worker_runs_a_budget_of_two_trials(backend):
    name = backend.study_name()
    report = run_worker(
        backend.open(), requested={"backbone": "mmgcn", "epochs": 1, "n_trials": 2, "name": name}, trainer=simulated.factory()
    )
    trials = optuna.load_study(study_name=name, storage=backend.open()).trials
    assert report.reason == "budget" and len(report.trials) == 2
    assert Counter(t.state for t in trials) == {TrialState.COMPLETE: 2}
    assert all({"worker", "trial_seconds"} <= set(t.user_attrs) for t in trials)


def test_finishing_a_finished_trial_is_refused(backend):
    storage = backend.open()
    study = backend.new_study(storage)
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


# ------------------------------------------------------------------ a new storage: its module and its scheme's line


def open_toy(url: str, options: StorageOptions) -> StudyStorage:
    """The opener a ``toy://`` line in ``urls.SCHEMES`` names (an in-memory storage that remembers its URL)."""
    storage = InMemoryStudyStorage(options.heartbeat_interval, options.grace_period)
    storage.url = url
    return storage


def test_a_url_of_a_registered_scheme_opens_that_storage_as_given(monkeypatch):
    monkeypatch.setitem(urls.SCHEMES, "toy://", f"{__name__}:open_toy")
    storage = open_storage("toy://here", heartbeat_interval=HEARTBEAT, grace_period=GRACE)
    assert isinstance(storage, InMemoryStudyStorage) and storage.url == "toy://here"
    assert (storage.get_heartbeat_interval(), storage.grace_period) == (HEARTBEAT, GRACE)
