"""Experiment tracking with MLflow (``--track mlflow[:URI]``): each trial an MLflow run nested under its study's run,
with the effective settings, per-epoch figures, final dev/test figures and tags; the report as an artifact; against
the local file store (the default ``./mlruns``) and a real ``mlflow server`` this module starts (SQLite backend).
A tracking server that is down fails no trial: one warning, and the study goes on."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import mlflow  # the dev extra has it (the 'track' extra): a missing mlflow fails here, never skips
import optuna
import pytest
import simulated
from optuna.trial import TrialState
from typer.testing import CliRunner

from spcl_search.cli import app, main
from spcl_search.errors import ConfigError
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import run_worker
from spcl_search.tracking import ROLE_TAG, Target, parse_target

EPOCHS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server on 127.0.0.1 with a SQLite backend and served artifacts (one per module)."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts"),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no background job runners
    with (folder / "server.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (folder / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker, by their group
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _runs(uri: str, experiment: str):
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r} at {uri}"
    runs = client.search_runs([found.experiment_id])
    parents = [r for r in runs if r.data.tags.get(ROLE_TAG) == "study"]
    trials = sorted((r for r in runs if r.data.tags.get(ROLE_TAG) == "trial"), key=lambda r: int(r.data.tags["trial"]))
    return client, parents, trials


def _steps(client, run, key):
    return [m.step for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]


def test_track_takes_mlflow_with_an_optional_uri_or_none():
    assert parse_target("mlflow") == Target("mlflow", None)
    assert parse_target("mlflow:http://127.0.0.1:5000") == Target("mlflow", "http://127.0.0.1:5000")
    assert parse_target({"backend": "mlflow", "uri": "sqlite:///m.db"}) == Target("mlflow", "sqlite:///m.db")
    assert parse_target("none") is None and parse_target(None) is None
    with pytest.raises(ConfigError, match="--track 'wandb'"):
        parse_target("wandb")


def test_without_mlflow_track_is_a_one_line_error_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the extra were not installed
    db = tmp_path / "t.db"
    result = CliRunner().invoke(app, ["run", "--backbone", "mmgcn", "--workers", "0", "--storage", f"sqlite:///{db}", "--track", "mlflow"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == "`track` mlflow needs the mlflow package: pip install 'spcl-search[track]'"
    assert not db.exists() or not optuna.get_all_study_names(f"sqlite:///{db}")


def test_each_trial_is_a_run_nested_under_the_studys_in_the_default_local_mlruns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default URI is ./mlruns
    rdb = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=1, grace_period=3)
    study = open_study(rdb, {"name": "tracked", "backbone": "mmgcn", "n_trials": 2, "epochs": EPOCHS, "pruner": "none", "track": "mlflow"}).study
    study.enqueue_trial({"cl_threshold": 1.4, "cl_growth": 1.0})  # fails (fault_above 1.0)
    study.enqueue_trial({"cl_threshold": 0.5, "cl_growth": 1.2})
    run_worker(rdb, "tracked", trainer=simulated.factory(fault="error", fault_above=1.0, fault_epoch=1))
    assert (tmp_path / "mlruns").is_dir()
    client, (parent,), (failed, complete) = _runs((tmp_path / "mlruns").as_uri(), "tracked")
    assert parent.info.run_name == "tracked" and parent.data.params["backbone"] == "mmgcn" and parent.info.status == "FINISHED"
    for run, number in ((failed, 0), (complete, 1)):
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert {k: tags[k] for k in ("study", "trial", "form", "method", "gpu")} == {
            "study": "tracked", "trial": str(number), "form": "spcl", "method": "spcl", "gpu": "none",
        }  # fmt: skip
        assert tags["worker"] == f"{socket.gethostname()}:{os.getpid()}"
    params = complete.data.params
    assert float(params["cl_threshold"]) == 0.5 and float(params["lr"]) == 1e-3 and params["epochs"] == str(EPOCHS)
    assert params["batch_size"] == "32" and params["clip_grad_norm"] == "2.0" and params["modalities"] == "atv"
    for key in ("train_loss_atv", "dev_f1_atv", "take_rate_atv", "threshold_atv"):
        assert _steps(client, complete, key) == list(range(1, EPOCHS + 1)), key
    trial = optuna.load_study(study_name="tracked", storage=rdb).trials[1]
    assert complete.data.metrics["final_test_f1_atv"] == pytest.approx(trial.user_attrs["test_f1_atv"])
    assert complete.data.metrics["final_dev_f1_atv"] == pytest.approx(trial.value)
    assert complete.info.status == "FINISHED" and complete.data.tags["state"] == "COMPLETE"
    assert failed.info.status == "FAILED" and _steps(client, failed, "dev_f1_atv") == [1]  # it failed in epoch 2


def test_a_tracking_server_that_is_down_fails_no_trial_and_warns_once(tmp_path, caplog):
    rdb = open_storage(f"sqlite:///{tmp_path / 'd.db'}", heartbeat_interval=1, grace_period=3)
    down = f"mlflow:http://127.0.0.1:{_free_port()}"  # nothing listens there
    open_study(rdb, {"name": "untracked", "backbone": "mmgcn", "n_trials": 3, "epochs": 2, "track": down})
    with caplog.at_level(logging.WARNING, logger="spcl_search.tracking"):
        report = run_worker(rdb, "untracked", trainer=simulated.factory())
    assert report.states == {"COMPLETE": 3}
    warnings = [r.getMessage() for r in caplog.records if r.name == "spcl_search.tracking"]
    assert len(warnings) == 1 and "experiment tracking at http://127.0.0.1" in warnings[0] and "trials go on" in warnings[0]


def test_train_track_logs_one_run_with_its_epochs(tmp_path):
    uri = (tmp_path / "mlruns").as_uri()
    with pytest.raises(SystemExit) as done:
        main(["train", "-b", "late_fusion", "--epochs", "2", "--threads", "1", "--patience", "0", "--track", f"mlflow:{uri}"])
    assert done.value.code == 0
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("spcl-search-train").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["backbone"] == "late_fusion" and "lr" in run.data.params
    assert _steps(client, run, "dev_f1_atv") == [1, 2] and "final_test_f1_atv" in run.data.metrics
    assert run.data.tags["form"] == "spcl" and run.data.tags["method"] == "spcl"


@pytest.mark.slow  # starts a real MLflow server (about 15 s)
def test_run_tracks_its_trials_on_a_real_mlflow_server_and_report_logs_the_page(mlflow_server, tmp_path):
    env = {**os.environ, **simulated.env(), "SPCL_SEARCH_STORAGE": f"sqlite:///{tmp_path / 'r.db'}"}
    cmd = [sys.executable, "-m", "spcl_search", "run", "--backbone", "mmgcn", "--n-trials", "2", "--epochs", str(EPOCHS),
           "--pruner", "none", "--workers", "1", "--track", f"mlflow:{mlflow_server}"]  # fmt: skip
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    client, (parent,), trials = _runs(mlflow_server, "mmgcn-synthetic-search")
    assert [t.data.tags["trial"] for t in trials] == ["0", "1"]
    assert all(t.data.tags["mlflow.parentRunId"] == parent.info.run_id and t.info.status == "FINISHED" for t in trials)
    assert all(_steps(client, t, "dev_f1_atv") == list(range(1, EPOCHS + 1)) for t in trials)
    assert not (tmp_path / "mlruns").exists()  # everything went to the server

    with pytest.raises(SystemExit) as done:  # the study's own --track: report logs the page to its run
        main(["report", "--study", "mmgcn-synthetic-search", "--storage", env["SPCL_SEARCH_STORAGE"], "--out", str(tmp_path / "page.html")])
    assert done.value.code == 0
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "report")] == ["report/page.html"]
    assert optuna.load_study(study_name="mmgcn-synthetic-search", storage=env["SPCL_SEARCH_STORAGE"]).trials[0].state == TrialState.COMPLETE
