"""``status`` after a worker is SIGKILLed: the worker leaves the table once its own grace period has passed (not a
fixed two minutes), and the trial it left is failed with ``fail_reason`` "heartbeat" by the next worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import simulated
from optuna.trial import TrialState
from typer.testing import CliRunner

from spcl_search.cli import app
from spcl_search.search.registry import WorkerRecord, workers
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import run_worker


def _status(url: str) -> dict:
    result = CliRunner().invoke(app, ["status", "--storage", url, "--json"])
    assert result.exit_code == 0, result.output
    (study,) = json.loads(result.output)
    return study


def test_a_record_is_gone_once_its_own_grace_period_passed():
    record = WorkerRecord(grace_period=3.0, state="running", last_seen=time.time() - 4.0)
    young = WorkerRecord(state="running", last_seen=time.time() - 4.0)  # an older record without its grace period

    class Attrs:
        def get_study_system_attrs(self, study_id):
            return {r.key: r.__dict__ for r in (record, young)}

    assert [r.key for r in workers(Attrs(), 0, stale_after=120.0)] == [young.key]


def test_status_drops_a_sigkilled_worker_after_its_grace_period_and_its_trial_fails_for_the_heartbeat(tmp_path):
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    rdb = open_storage(url, heartbeat_interval=1, grace_period=3)
    open_study(rdb, {"name": "kill", "backbone": "mmgcn", "pruner": "none", "n_trials": 2, "epochs": 50})
    cmd = [sys.executable, "-m", "spcl_search", "worker", "--study", "kill", "--storage", url, "--heartbeat-interval", "1", "--grace-period", "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env={**os.environ, **simulated.env(seconds=0.2)})
    try:
        deadline = time.monotonic() + 60
        while not [w for w in _status(url)["workers"] if w["state"] == "running"]:
            assert time.monotonic() < deadline and proc.poll() is None, "the worker never started a trial"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        killed_at = time.monotonic()
        while _status(url)["workers"]:
            assert time.monotonic() - killed_at < 6.0, "status still lists the killed worker past its 3 s grace period"
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_worker(rdb, "kill", trainer=simulated.factory())
    dead = next(t for t in optuna.load_study(study_name="kill", storage=rdb).trials if t.state == TrialState.FAIL)
    assert dead.user_attrs["fail_reason"] == "heartbeat"
