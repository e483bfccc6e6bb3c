"""A trial that breaks (NaN loss, out of host or GPU memory, any error) fails alone: it is FAIL with the
reason in ``fail_reason`` and ``error``, uses its slot, and the worker goes on with the next trial.
Trials of workers that vanished are failed and retried exactly once, without the failed run's attrs.

Faults are injected with the test-only simulated trainer (``tests/simulated.py``, its ``fault`` setting),
except one real training run whose loss overflows (lr = 1e30 on the synthetic data).
"""

from __future__ import annotations

import time

import optuna
import pytest
import simulated
from optuna.trial import TrialState

from spcl_search.errors import ConfigError
from spcl_search.search import worker as worker_mod
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import WorkerOptions, recover_trials
from spcl_search.search.worker import run_worker as _run_worker

GOOD = {"cl_threshold": 0.7, "cl_growth": 1.3}
BAD = {"cl_threshold": 1.4, "cl_growth": 1.3}  # above ``fault_above``: the injected fault fires


@pytest.fixture
def rdb(tmp_path):
    return open_storage(f"sqlite:///{tmp_path / 'faults.db'}", heartbeat_interval=1, grace_period=2)


FAULT = {}  # the fault the simulated trainer injects in this test (set by ``_faulty_study``)


def run_worker(*args, **kwargs):
    """A worker with the simulated trainer, injecting the test's fault, unless the test gives another trainer."""
    kwargs.setdefault("trainer", simulated.factory(**FAULT))
    return _run_worker(*args, **kwargs)


@pytest.fixture(autouse=True)
def _no_fault():
    FAULT.clear()
    yield
    FAULT.clear()


def _faulty_study(rdb, fault, *settings, n_trials=None, epochs=3):
    """A study whose trials run ``settings`` in order; those with cl_threshold > 1.2 raise ``fault``."""
    FAULT.update(fault=fault, fault_above=1.2, fault_epoch=1)
    requested = {"backbone": "mmgcn", "epochs": epochs, "pruner": "none", "n_trials": n_trials or len(settings)}
    study = open_study(rdb, requested).study
    for params in settings:
        study.enqueue_trial(params)
    return study.study_name


def _trials(rdb, name):
    return optuna.load_study(study_name=name, storage=rdb).trials


@pytest.mark.parametrize(
    ("fault", "reason", "error"),
    [
        ("nan", "non_finite_loss", "NonFiniteLossError: training loss became nan"),
        ("memory", "out_of_memory", "MemoryError"),
        ("cuda_oom", "out_of_memory", "OutOfMemoryError: CUDA out of memory"),
        ("error", "error", "RuntimeError: simulated failure"),
    ],
)
def test_a_failing_trial_is_fail_with_its_reason_and_the_worker_goes_on(rdb, fault, reason, error):
    name = _faulty_study(rdb, fault, BAD, GOOD)
    report = run_worker(rdb, name)
    bad, good = _trials(rdb, name)
    assert report.reason == "budget" and report.states == {"FAIL": 1, "COMPLETE": 1}
    assert bad.state == TrialState.FAIL and bad.user_attrs["fail_reason"] == reason
    assert bad.user_attrs["error"].startswith(error) and "\n" not in bad.user_attrs["error"]
    assert good.state == TrialState.COMPLETE and "fail_reason" not in good.user_attrs


def test_a_failed_trial_keeps_what_is_known_of_it(rdb):
    name = _faulty_study(rdb, "nan", BAD)
    run_worker(rdb, name)
    (bad,) = _trials(rdb, name)
    assert {"worker", "device", "versions", "use_cl", "seed", "trial_seconds"} <= set(bad.user_attrs)
    assert bad.params == BAD


def test_a_failed_trial_uses_its_slot_and_is_not_retried(rdb):
    name = _faulty_study(rdb, "nan", BAD, GOOD, GOOD, n_trials=2)
    run_worker(rdb, name)
    trials = _trials(rdb, name)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.WAITING]
    assert not any("failed_trial" in t.system_attrs for t in trials)


def test_out_of_memory_releases_memory_before_the_next_trial(rdb, monkeypatch):
    released = []
    monkeypatch.setattr(worker_mod, "release_memory", lambda: released.append(True))
    run_worker(rdb, _faulty_study(rdb, "cuda_oom", BAD, GOOD))
    assert released == [True]


@pytest.mark.slow  # real training: imports torch and the backbones
def test_a_nan_loss_in_real_training_fails_the_trial_and_the_next_one_trains(rdb):
    requested = {"backbone": "late_fusion", "epochs": 1, "n_trials": 2, "pruner": "none", "space": {"lr": {"choices": [1e30, 1e-3]}}}
    study = open_study(rdb, requested).study
    study.enqueue_trial({**GOOD, "lr": 1e30})
    study.enqueue_trial({**GOOD, "lr": 1e-3})
    report = _run_worker(rdb, study.study_name, WorkerOptions(threads=1, device="cpu"))
    diverged, trained = _trials(rdb, study.study_name)
    assert report.states == {"FAIL": 1, "COMPLETE": 1}
    assert diverged.user_attrs["fail_reason"] == "non_finite_loss" and "lower --lr" in diverged.user_attrs["error"]
    assert trained.state == TrialState.COMPLETE and trained.user_attrs["device"] == "cpu"


def test_a_config_error_stops_the_worker_after_recording_its_reason(rdb):
    broken = simulated.raising(ConfigError("--backbone mmgcn: unknown option 'hiden'"))
    with pytest.raises(ConfigError):
        run_worker(rdb, _faulty_study(rdb, "nan", GOOD, GOOD), trainer=broken)
    first, _ = _trials(rdb, "mmgcn-synthetic-search")
    assert first.state == TrialState.FAIL and first.user_attrs["fail_reason"] == "config_error"


# ------------------------------------------------------------------ trials whose worker vanished


def _started(rdb, name, *, heartbeat=True):
    """A trial a worker started (and gave a first heartbeat, or not) before it vanished."""
    study = open_study(rdb, {"name": name}).study
    trial = study.ask()
    trial.set_user_attr("worker", "gone:1")
    if heartbeat:
        rdb.record_heartbeat(trial._trial_id)
    return study, trial


def _recover(rdb, study):
    from spcl_search.search.lock import study_lock

    with study_lock(rdb, study.study_name):
        recover_trials(study, rdb)
    return study.get_trials()


def test_a_trial_that_never_got_a_heartbeat_is_failed_and_retried_after_the_grace_period(rdb):
    name = _faulty_study(rdb, "nan", n_trials=1)
    study, orphan = _started(rdb, name, heartbeat=False)
    assert [t.state for t in _recover(rdb, study)] == [TrialState.RUNNING]  # within the grace period: left alone
    time.sleep(2.2)
    failed, retry = _recover(rdb, study)
    assert failed.state == TrialState.FAIL and retry.state == TrialState.WAITING
    assert retry.system_attrs["failed_trial"] == orphan.number


def test_a_trial_failed_for_a_stale_heartbeat_says_so(rdb):
    name = _faulty_study(rdb, "nan", n_trials=1)
    study, trial = _started(rdb, name)
    time.sleep(3.2)  # SQLite's clock counts whole seconds
    failed, retry = _recover(rdb, study)
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_reason"] == "heartbeat"
    assert failed.user_attrs["error"].startswith("no heartbeat for over 2 s")
    assert retry.state == TrialState.WAITING and "fail_reason" not in retry.user_attrs


def test_a_trial_that_never_beat_is_failed_with_the_heartbeat_reason(rdb):
    name = _faulty_study(rdb, "nan", n_trials=1)
    study, _ = _started(rdb, name, heartbeat=False)
    time.sleep(2.2)
    failed, _retry = _recover(rdb, study)
    assert failed.user_attrs["fail_reason"] == "heartbeat" and "since it started" in failed.user_attrs["error"]


def test_an_interrupted_trial_without_a_retry_gets_exactly_one(rdb):
    name = _faulty_study(rdb, "nan", n_trials=1)
    study, trial = _started(rdb, name)
    trial.set_user_attr("fail_reason", "interrupted")
    study.tell(trial, state=TrialState.FAIL)  # its worker died right after failing it: no retry yet
    for _ in range(3):
        trials = _recover(rdb, study)
    assert [t.system_attrs.get("failed_trial") for t in trials] == [None, trial.number]


def test_a_trial_failed_by_the_heartbeat_check_without_a_retry_gets_one(rdb):
    name = _faulty_study(rdb, "nan", n_trials=1)
    study, trial = _started(rdb, name)
    rdb.set_trial_state_values(trial._trial_id, TrialState.FAIL)  # failed, then the database went away
    _, retry = _recover(rdb, study)
    assert retry.state == TrialState.WAITING and retry.system_attrs["failed_trial"] == trial.number


def test_a_retry_starts_without_the_failed_runs_attrs(rdb):
    name = _faulty_study(rdb, "nan", n_trials=1)
    study = optuna.load_study(study_name=name, storage=rdb)
    study.enqueue_trial(GOOD, user_attrs={"use_cl": False, "enqueued": "baseline"})
    _, trial = _started(rdb, name)
    for key, value in {"error": "interrupted", "fail_reason": "interrupted", "trial_seconds": 3.0}.items():
        trial.set_user_attr(key, value)
    study.tell(trial, state=TrialState.FAIL)
    _, retry = _recover(rdb, study)
    assert retry.user_attrs == {"use_cl": False, "enqueued": "baseline"}


def test_a_pending_trial_of_a_lost_lock_goes_back_to_waiting_when_the_budget_is_full(rdb):
    name = _faulty_study(rdb, "nan", n_trials=1)
    study, theirs = _started(rdb, name)  # another worker holds the only slot
    mine = study.ask()  # started by this worker while its lock was gone (e.g. PostgreSQL restarted)
    pending = worker_mod._Pending(mine)
    trial, done = worker_mod._reserve(study, rdb, study._study_id, pending)
    assert (trial, done) == (None, False) and pending.trial is None
    assert study.get_trials()[mine.number].state == TrialState.WAITING


def test_a_pending_trial_of_a_lost_lock_is_kept_when_its_slot_is_free(rdb):
    name = _faulty_study(rdb, "nan", n_trials=2)
    study = optuna.load_study(study_name=name, storage=rdb)
    mine = study.ask()
    trial, done = worker_mod._reserve(study, rdb, study._study_id, worker_mod._Pending(mine))
    assert trial.number == mine.number and not done
    assert len(study.get_trials()) == 1
