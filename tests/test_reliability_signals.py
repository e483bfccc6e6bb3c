"""Ctrl-C and SIGTERM reach a real worker process: the running trial is FAIL with ``fail_reason``
"interrupted" and has a WAITING retry, the worker exits non-zero (128 + the signal) with no traceback,
and a second signal ends it at once, even while it waits for the database; the heartbeat check then
fails and retries what it left running.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest
import simulated
from optuna.trial import TrialState

from spcl_search.search.lock import study_lock
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import recover_trials

HEARTBEAT = ["--heartbeat-interval", "1", "--grace-period", "3"]


@pytest.fixture
def db(tmp_path):
    return tmp_path / "signals.db"


def _study(db, **fields):
    rdb = open_storage(f"sqlite:///{db}", heartbeat_interval=1, grace_period=3)
    requested = {"name": "sig", "backbone": "mmgcn", "pruner": "none", "n_trials": 2, **fields}
    return rdb, open_study(rdb, requested).study


def _spawn(db, log, seconds):
    cmd = [sys.executable, "-m", "spcl_search", "worker", "--study", "sig", "--storage", f"sqlite:///{db}", *HEARTBEAT]
    with log.open("w") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **simulated.env(seconds=seconds)})


def _running_trial(study, proc, timeout=60.0):
    """The trial ``proc`` is training (its parameters are drawn), once it trains one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the worker exited before starting a trial"
        for t in study.get_trials(states=(TrialState.RUNNING,)):
            if str(t.user_attrs.get("worker", "")).endswith(f":{proc.pid}") and t.params:
                time.sleep(0.3)  # past the trial's first writes: it sleeps in its simulated epochs
                return t
        time.sleep(0.1)
    raise AssertionError("the worker never started a trial")


def _wait_for(log, text, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in the worker log:\n{log.read_text()}")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_fails_the_running_trial_as_interrupted_and_the_worker_exits_non_zero(db, tmp_path, signum, code):
    rdb, study = _study(db, epochs=50)
    log = tmp_path / "worker.log"
    proc = _spawn(db, log, seconds=0.2)
    running = _running_trial(study, proc)
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == code
    output = log.read_text()
    assert "Traceback" not in output and f"interrupted by {signal.Signals(signum).name}" in output.splitlines()[-1]
    interrupted, retry = optuna.load_study(study_name="sig", storage=rdb).trials
    assert interrupted.number == running.number and interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["fail_reason"] == "interrupted"
    assert retry.state == TrialState.WAITING and retry.system_attrs["failed_trial"] == running.number
    assert "fail_reason" not in retry.user_attrs


@pytest.mark.slow  # waits out a grace period to show the heartbeat check taking over
def test_a_second_ctrl_c_quits_at_once_while_the_cleanup_waits_for_the_database(db, tmp_path):
    # a balance trial of the simulated trainer makes no database call while it trains
    rdb, study = _study(db, kind="balance", n_trials=1, epochs=50)
    log = tmp_path / "worker.log"
    proc = _spawn(db, log, seconds=0.2)
    running = _running_trial(study, proc)
    blocker = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # every write now waits: the cleanup of the first Ctrl-C hangs
        proc.send_signal(signal.SIGINT)
        _wait_for(log, "SIGINT: stopping cleanly; Ctrl-C again quits at once")
        time.sleep(0.5)
        assert proc.poll() is None, "the cleanup should still be waiting for the database"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == -signal.SIGINT
        assert time.monotonic() - t0 < 2.0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in log.read_text()
    (left,) = study.get_trials()
    assert left.state == TrialState.RUNNING  # the cleanup never ran: the heartbeat check takes over
    time.sleep(3.2)
    with study_lock(rdb, "sig"):
        recover_trials(study, rdb)
    failed, retry = study.get_trials()
    assert failed.state == TrialState.FAIL and retry.state == TrialState.WAITING
    assert retry.system_attrs["failed_trial"] == running.number


def test_a_sigterm_after_sigint_is_the_launcher_passing_the_stop_on_and_the_cleanup_finishes(db, tmp_path):
    # a terminal's Ctrl-C reaches `run` and its workers together; `run` then sends its workers SIGTERM
    rdb, study = _study(db, kind="balance", n_trials=1, epochs=50)
    log = tmp_path / "worker.log"
    proc = _spawn(db, log, seconds=0.2)
    running = _running_trial(study, proc)
    blocker = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # the cleanup waits for the database while the SIGTERM comes
        proc.send_signal(signal.SIGINT)
        _wait_for(log, "SIGINT: stopping cleanly")
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert proc.poll() is None, "the SIGTERM that follows a SIGINT must not end the worker"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert proc.wait(timeout=30) == 130
    output = log.read_text()
    assert "Traceback" not in output and "SIGTERM after SIGINT: the same stop" in output
    interrupted, retry = optuna.load_study(study_name="sig", storage=rdb).trials
    assert interrupted.number == running.number and interrupted.user_attrs["fail_reason"] == "interrupted"
    assert retry.state == TrialState.WAITING and retry.system_attrs["failed_trial"] == running.number


def test_a_signal_while_a_trial_is_being_reserved_fails_that_trial_instead_of_leaving_it_running(tmp_path, monkeypatch):
    """The signal is held until the reservation ends; the trial it reserved is the worker's, failed and re-enqueued."""
    import spcl_search.search.worker as worker

    rdb = open_storage(f"sqlite:///{tmp_path / 'r.db'}", heartbeat_interval=1, grace_period=3)
    open_study(rdb, {"backbone": "mmgcn", "epochs": 2, "n_trials": 2})
    real = worker._reserve

    def reserve_then_signal(*args, **kwargs):
        reserved = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives while the slot is being taken
        return reserved

    monkeypatch.setattr(worker, "_reserve", reserve_then_signal)
    with pytest.raises(KeyboardInterrupt):
        worker.run_worker(rdb, "mmgcn-synthetic-search", trainer=simulated.factory())
    trials = optuna.load_study(study_name="mmgcn-synthetic-search", storage=rdb).trials
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["fail_reason"] == "interrupted"
    assert not [t for t in trials if t.state == TrialState.RUNNING] and trials[-1].state == TrialState.WAITING  # its retry
