"""Progress you can read: the live view's elapsed time, ETA and each worker's epoch and last dev F1; one worker log
line per finished trial; ``status --trials``."""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import re
import socket
import threading
import time

import optuna
import pytest
import simulated
from optuna.trial import TrialState, create_trial
from rich.console import Console
from typer.testing import CliRunner

from spcl_search.cli import app
from spcl_search.cli.search import _status_table, _workers_table
from spcl_search.search.status import eta, study_status
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import finished_line, run_worker

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0)


def _trial(number, state, start, seconds=None, **attrs):
    values = [50.0] if state == TrialState.COMPLETE else None
    trial = create_trial(state=state, values=values, params={"cl_threshold": 0.5}, user_attrs=attrs,
                         distributions={"cl_threshold": optuna.distributions.FloatDistribution(0.1, 1.5)})  # fmt: skip
    trial.number = number
    trial.datetime_start = T0 + datetime.timedelta(seconds=start)
    trial.datetime_complete = None if seconds is None else trial.datetime_start + datetime.timedelta(seconds=seconds)
    return trial


def test_eta_spreads_the_rest_of_the_budget_over_the_workers_at_the_finished_trials_pace():
    trials = [_trial(0, TrialState.COMPLETE, 0, 10), _trial(1, TrialState.PRUNED, 0, 10), _trial(2, TrialState.RUNNING, 16)]
    mean, left = eta(trials, n_trials=6, n_workers=2, now=T0 + datetime.timedelta(seconds=20))
    # 3 trials still to start at 10 s each, and 6 s more for the one running 4 s: 36 s of work for 2 workers
    assert mean == pytest.approx(10.0) and left == pytest.approx(18.0)


def test_eta_is_unknown_before_a_trial_finishes_and_zero_when_the_budget_is_spent():
    assert eta([_trial(0, TrialState.RUNNING, 0)], 4, 1, now=T0) == (None, None)
    done = [_trial(i, TrialState.COMPLETE, 0, 5) for i in range(2)]
    assert eta(done, 2, 1, now=T0) == (5.0, 0.0)


def test_a_finished_trial_is_one_log_line_with_params_value_and_seconds():
    complete = _trial(3, TrialState.COMPLETE, 0, 41, trial_seconds=41.2)
    assert finished_line(complete, ["dev_f1"]) == "trial 3 COMPLETE in 41.2 s: dev_f1 50.00; cl_threshold=0.5"
    pruned = _trial(4, TrialState.PRUNED, 0, 12, trial_seconds=12.0, dev_f1_atv=40.1, epochs_atv=4)
    assert finished_line(pruned) == "trial 4 PRUNED in 12.0 s: dev F1 40.10 by epoch 4; cl_threshold=0.5"
    failed = _trial(5, TrialState.FAIL, 0, 3, trial_seconds=3.2, fail_reason="error", error="RuntimeError: boom", use_cl=False)
    line = finished_line(failed)
    assert line == "trial 5 FAIL in 3.2 s: error: RuntimeError: boom; cl_threshold=0.5 (no-SPCL baseline)"


@pytest.fixture
def rdb(tmp_path):
    return open_storage(f"sqlite:///{tmp_path / 'progress.db'}", heartbeat_interval=1, grace_period=5)


def _render(*tables) -> str:
    console = Console(width=250, record=True, file=io.StringIO())
    for table in tables:
        console.print(table)
    return console.export_text()


def test_the_live_view_shows_elapsed_eta_and_each_running_trials_epoch_and_dev_f1(rdb, caplog):
    open_study(rdb, {"name": "live", "backbone": "mmgcn", "n_trials": 3, "epochs": 8, "pruner": "none"})
    worker = threading.Thread(target=run_worker, args=(rdb, "live"), kwargs={"trainer": simulated.factory(seconds=0.2)})
    with caplog.at_level(logging.INFO, logger="spcl_search.search.worker"):
        worker.start()
        try:
            deadline = time.monotonic() + 60
            while True:
                st = study_status(rdb, "live")
                w = st.workers[0] if st.workers else None
                if st.counts.finished >= 1 and w is not None and w.state == "running" and (w.epoch or 0) >= 2:
                    break
                assert time.monotonic() < deadline, "no progress of the second trial was published"
                time.sleep(0.2)
        finally:
            worker.join(60)
    text = _render(_status_table(st, elapsed=75.0), _workers_table(st))
    assert "elapsed 1m15s" in text and re.search(r"ETA \d+s \(1 worker at this pace\)", text)
    assert re.search(rf"\b{w.epoch}/8 atv\b", text) and f"{w.dev_f1:.2f}" in text
    finished = [r.getMessage() for r in caplog.records if re.match(r"trial \d+ COMPLETE in [\d.]+ s: dev_f1 [\d.]+; cl_", r.getMessage())]
    assert len(finished) == 3


def test_status_trials_lists_every_trial_with_state_params_value_seconds_and_worker(rdb, tmp_path):
    open_study(rdb, {"name": "listed", "backbone": "mmgcn", "n_trials": 3, "epochs": 2})
    run_worker(rdb, "listed", trainer=simulated.factory())
    result = CliRunner().invoke(app, ["status", "--storage", rdb.url, "--study", "listed", "--trials", "--json"])
    assert result.exit_code == 0, result.output
    (st,) = json.loads(result.output)
    rows = st["trials"]
    assert [r["number"] for r in rows] == [0, 1, 2] and {r["state"] for r in rows} == {"COMPLETE"}
    assert all(set(r["params"]) == {"cl_threshold", "cl_growth"} and r["values"] and r["seconds"] >= 0 for r in rows)
    assert {r["worker"] for r in rows} == {f"{socket.gethostname()}:{os.getpid()}"}  # this process ran them
    table = CliRunner().invoke(app, ["status", "--storage", rdb.url, "--study", "listed", "--trials"], env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "trials of listed" in table.output
    assert re.search(r"│\s+2 │ COMPLETE │ cl_threshold=", table.output)
