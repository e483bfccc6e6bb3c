"""Every value is checked before anything exists: a bad one is a one-line error naming its option, before a
study is created, a dataset loaded or a progress bar drawn. A study whose first trials all fail with one error
stops its workers, and ``run`` exits non-zero whenever failed trials are left that nobody retries."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys

import optuna
import pytest
import simulated
from optuna.trial import TrialState, create_trial
from typer.testing import CliRunner

from spcl_search.cli import app, main
from spcl_search.errors import ConfigError, StudyFailing
from spcl_search.schema.limits import LIMITS
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import repeated_failure, run_worker


def _refused(args, tmp_path):
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ConfigError), result.output
    message = str(result.exception)
    assert "\n" not in message
    return message, result.output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--seeds=-1"], "--seeds"),
        (["--seeds", "0,-2"], "--seeds"),
        (["--threads", "-1"], "--threads"),
        (["--threads", "0"], "--threads"),
        (["--epochs", "0"], "--epochs"),
        (["--space", "lr=-1:1e-3"], "space.lr"),
        (["--space", "dropout=0.1:1"], "space.dropout"),
        (["--space", "hidden=0,64"], "space.hidden"),
        (["--method", "ogm_ge", "--space", "alpha=-1:1"], "space.alpha"),
        (["--method", "opm", "--space", "q_base=0.1:1.5"], "space.q_base"),
    ],
)
def test_run_refuses_a_value_out_of_range_before_the_study_exists(args, named, tmp_path):
    db = tmp_path / "values.db"
    message, _ = _refused(["run", "--backbone", "mmgcn", "--workers", "0", "--storage", f"sqlite:///{db}", *args], tmp_path)
    assert named in message
    assert not db.exists() or not optuna.get_all_study_names(f"sqlite:///{db}")


@pytest.mark.parametrize(
    ("table", "line", "named"),
    [
        ("train", "lr = 0", "train.lr"),
        ("train", "weight_decay = -1e-5", "train.weight_decay"),
        ("train", "batch_size = 0", "train.batch_size"),
        ("train", "clip_grad_norm = -1", "train.clip_grad_norm"),
        ("model", "dropout = 1.0", "model.dropout"),
    ],
)
def test_a_spec_file_value_out_of_range_names_the_field(table, line, named, tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text(f'backbone = "mmgcn"\n[{table}]\n{line}\n')
    message, _ = _refused(["run", "--spec", str(spec), "--workers", "0", "--storage", f"sqlite:///{tmp_path / 'v.db'}"], tmp_path)
    assert named in message and str(spec) in message


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--lr", "-0.1"], "--lr"),
        (["--lr", "0"], "--lr"),
        (["--weight-decay", "-1"], "--weight-decay"),
        (["--batch-size", "0"], "--batch-size"),
        (["--clip", "-1"], "--clip"),
        (["--epochs", "-3"], "--epochs"),
        (["--patience", "-1"], "--patience"),
        (["--seed", "-1"], "--seed"),
        (["--threads", "0"], "--threads"),
        (["--method", "ogm_ge", "--method-option", "alpha=-1"], "--method ogm_ge"),
        (["--method", "opm", "--method-option", "p_exe=1.5"], "--method opm"),
    ],
)
def test_train_refuses_a_value_out_of_range_before_loading_data_or_drawing(args, named, tmp_path):
    message, output = _refused(["train", "--dataset", str(tmp_path / "not-loaded.pkl"), *args], tmp_path)
    assert named in message and "not-loaded" not in message  # refused before the (missing) file was read
    assert output == ""  # no progress bar


def test_train_with_negative_epochs_prints_one_error_line_and_nothing_else(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--epochs", "-3"])
    out, err = capsys.readouterr()
    assert done.value.code == 2 and out == ""
    assert err.strip() == "error: --epochs must be an integer >= 1, got -3"


def test_every_limit_says_what_it_allows():
    assert LIMITS["dropout"].describe() == "a number in [0, 1)"
    assert LIMITS["lr"].describe() == "a number > 0"
    assert LIMITS["batch_size"].describe() == "an integer >= 1"
    assert not LIMITS["dropout"].holds(1.0) and LIMITS["dropout"].holds(0.0)
    assert not LIMITS["seed"].holds(1.5) and not LIMITS["threads"].holds(True)


# ------------------------------------------------------------------------------ trials failing alike


def _trial(number, state, error=None, reason=None, minute=0):
    when = datetime.datetime(2026, 1, 1, 12, minute)
    attrs = {} if error is None else {"error": error, "fail_reason": reason or "error"}
    values = None if state != TrialState.COMPLETE else [1.0]
    trial = create_trial(state=state, values=values, user_attrs=attrs)
    trial.number, trial.datetime_start, trial.datetime_complete = number, when, when
    return trial


def test_three_trials_failing_with_one_error_are_a_repeated_failure():
    trials = [_trial(i, TrialState.FAIL, "ValueError: bad seed", minute=i) for i in range(3)]
    assert repeated_failure(trials, frozenset()) == "ValueError: bad seed"


def test_a_trial_that_completes_among_the_first_three_is_no_repeated_failure():
    trials = [_trial(0, TrialState.FAIL, "E"), _trial(1, TrialState.COMPLETE, minute=1), _trial(2, TrialState.FAIL, "E", minute=2)]
    trials.append(_trial(3, TrialState.FAIL, "E", minute=3))
    assert repeated_failure(trials, frozenset()) is None


def test_different_errors_interrupted_trials_and_trials_finished_before_joining_do_not_count():
    assert repeated_failure([_trial(i, TrialState.FAIL, f"E{i}", minute=i) for i in range(3)], frozenset()) is None
    interrupted = [_trial(i, TrialState.FAIL, "interrupted", reason="interrupted", minute=i) for i in range(3)]
    assert repeated_failure(interrupted, frozenset()) is None
    old = [_trial(i, TrialState.FAIL, "E", minute=i) for i in range(3)]
    assert repeated_failure(old, frozenset({0, 1, 2})) is None
    assert repeated_failure([*old, _trial(3, TrialState.FAIL, "E", minute=5)], frozenset({0})) == "E"


def test_a_worker_stops_after_the_first_three_trials_fail_with_the_same_error(tmp_path):
    rdb = open_storage(f"sqlite:///{tmp_path / 'fail.db'}", heartbeat_interval=1, grace_period=3)
    open_study(rdb, {"name": "alike", "backbone": "mmgcn", "n_trials": 10, "epochs": 2})
    with pytest.raises(StudyFailing, match="first 3 trials .* same error.*RuntimeError: boom"):
        run_worker(rdb, "alike", trainer=simulated.raising(RuntimeError("boom")))
    trials = optuna.load_study(study_name="alike", storage=rdb).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 3


def _cli(args, cwd, **settings):
    env = {**os.environ, **simulated.env(**settings)}
    return subprocess.run([sys.executable, "-m", "spcl_search", *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_run_stops_when_the_first_trials_fail_alike_and_prints_the_error_and_the_log(tmp_path):
    result = _cli(["run", "--backbone", "mmgcn", "--n-trials", "20", "--epochs", "2", "--workers", "1"], tmp_path, fault="error")
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "same error" in line and "simulated failure at epoch 1" in line
    assert "spcl-search-logs/mmgcn-synthetic-search/worker-0.log" in line


def test_run_exits_non_zero_when_failed_trials_are_left(tmp_path):
    url = f"sqlite:///{tmp_path / 'left.db'}"
    study = open_study(open_storage(url, heartbeat_interval=1), {"name": "left", "backbone": "mmgcn", "n_trials": 2, "epochs": 1}).study
    study.enqueue_trial({"cl_threshold": 1.4, "cl_growth": 1.0})  # fails (fault_above 1.0)
    study.enqueue_trial({"cl_threshold": 0.5, "cl_growth": 1.2})  # completes
    result = _cli(["run", "--study", "left", "--storage", url, "--workers", "1"], tmp_path, fault="error", fault_above=1.0)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "finished its budget of 2 trials" in " ".join(result.stdout.split())
    line = result.stderr.strip().splitlines()[-1]
    assert "1 trial(s) of study 'left' failed" in line and "simulated failure at epoch 1" in line
    states = sorted(t.state.name for t in optuna.load_study(study_name="left", storage=url).trials)
    assert states == ["COMPLETE", "FAIL"]


def test_trials_whose_workers_died_are_no_repeated_failure():
    """Trials failed by the heartbeat check (a killed worker; they are retried) say nothing about the setting."""
    dead = [_trial(i, TrialState.FAIL, "no heartbeat for over 8 s", reason="heartbeat", minute=i) for i in range(3)]
    assert repeated_failure(dead, frozenset()) is None


@pytest.mark.parametrize("reason", ["non_finite_loss", "out_of_memory"])
def test_settings_that_diverge_alike_are_no_repeated_failure(reason):
    """Three searched learning rates too high give the same NaN message: the search goes on (other settings train)."""
    nan = [_trial(i, TrialState.FAIL, "training loss became nan at epoch 1; lower --lr", reason=reason, minute=i) for i in range(3)]
    assert repeated_failure(nan, frozenset()) is None
