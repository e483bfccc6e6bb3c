"""The ``run``, ``worker``, ``status`` and ``best`` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import optuna
import pytest
import simulated
from typer.testing import CliRunner

from spcl_search.cli import app
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import run_worker

CHEAP_SPEC = """
backbone = "mmgcn"
epochs = 3
[search]
n_trials = 6
modalities = ["atv", "at"]
"""


def _cli(*args, cwd, env=None, timeout=600, simulate=True):
    """``python -m spcl_search ARGS``; its workers use the simulated trainer unless ``simulate`` is False."""
    return subprocess.run(
        [sys.executable, "-m", "spcl_search", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(simulated.env() if simulate else {}), **(env or {})},
    )


@pytest.fixture
def finished_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'done.db'}"
    rdb = open_storage(url, heartbeat_interval=1, grace_period=3)
    requested = {"backbone": "mmgcn", "epochs": 2, "n_trials": 6, "modalities": "atv,at", "baseline": True}
    study = open_study(rdb, requested).study  # enqueues one baseline per modality set
    for m in ("atv", "at"):
        study.enqueue_trial({"modalities": m, "cl_threshold": 0.7, "cl_growth": 1.3})
    run_worker(rdb, "mmgcn-synthetic-search", trainer=simulated.factory())
    return url


def test_status_json_counts_trials_by_state(finished_db):
    result = CliRunner().invoke(app, ["status", "--storage", finished_db, "--study", "mmgcn-synthetic-search", "--json"])
    assert result.exit_code == 0, result.output
    (st,) = json.loads(result.output)
    assert st["counts"]["finished"] == 6 and st["done"] and st["n_trials"] == 6
    assert st["best_values"] is not None and "cl_threshold" in st["best_params"]


def test_status_without_study_lists_every_study(finished_db):
    result = CliRunner().invoke(app, ["status", "--storage", finished_db])
    assert result.exit_code == 0 and "mmgcn-synthetic-search" in result.output


def test_status_names_the_backbone_form_literally(finished_db):
    # "[spcl form]" is text: rich must not swallow it as a markup tag
    result = CliRunner().invoke(app, ["status", "--storage", finished_db, "--study", "mmgcn-synthetic-search"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "mmgcn [spcl form] on synthetic" in result.output


def test_best_json_gives_one_row_per_modality_set_with_the_baseline(finished_db):
    result = CliRunner().invoke(app, ["best", "--storage", finished_db, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert sorted(r["modalities"] for r in rows) == ["at", "atv"]
    for r in rows:
        assert set(r["params"]) == {"cl_threshold", "cl_growth"}
        assert r["baseline_dev_f1"] is not None and r["spcl_gain_dev"] == pytest.approx(r["dev_f1"] - r["baseline_dev_f1"])


def test_best_table_shows_growth_over_threshold_like_the_paper(finished_db):
    result = CliRunner().invoke(app, ["best", "--storage", finished_db], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "synthetic atv" in result.output and "mmgcn" in result.output
    assert any("/" in line and "mmgcn" in line for line in result.output.splitlines())


def test_unknown_study_is_a_one_line_error(finished_db, tmp_path):
    result = _cli("status", "--storage", finished_db, "--study", "nope", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no study 'nope'" in result.stderr


def test_worker_with_a_conflicting_spec_is_refused_in_one_line(finished_db, tmp_path):
    spec = tmp_path / "other.toml"
    spec.write_text('backbone = "mmgcn"\nepochs = 9\n')
    result = _cli("worker", "--spec", str(spec), "--storage", finished_db, cwd=tmp_path)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "epochs is 2 there but 9 here" in line and "new --study name" in line


@pytest.mark.slow
def test_run_with_two_local_workers_finishes_the_study(tmp_path):
    (tmp_path / "cheap.toml").write_text(CHEAP_SPEC)
    result = _cli("run", "--spec", "cheap.toml", "--workers", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "finished its budget of 6 trials" in result.stdout.replace("\n", " ")
    assert (tmp_path / "spcl_search.db").exists()
    logs = sorted((tmp_path / "spcl-search-logs" / "mmgcn-synthetic-search").glob("worker-*.log"))
    assert len(logs) == 2 and not any("database is locked" in p.read_text() for p in logs)


@pytest.mark.slow
def test_run_with_only_a_backbone_finishes_a_small_synthetic_study(tmp_path):
    result = _cli("run", "--backbone", "dialoguegcn", cwd=tmp_path, timeout=1500, simulate=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "finished its budget" in result.stdout.replace("\n", " ")
    status = _cli("status", "--json", cwd=tmp_path)
    (st,) = json.loads(status.stdout)
    assert st["name"] == "dialoguegcn-synthetic-search" and st["done"]


def test_run_takes_the_precision_into_the_study_spec(tmp_path):
    result = _cli("run", "--backbone", "mmgcn", "--precision", "bf16", "--workers", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    status = _cli("status", "--json", cwd=tmp_path)
    (st,) = json.loads(status.stdout)
    assert st["precision"] == "bf16"


def test_run_takes_a_fixed_method_option_into_the_study_spec(tmp_path):
    url = f"sqlite:///{tmp_path / 'opts.db'}"
    args = ["run", "--backbone", "mmgcn", "--method", "ogm_ge", "--method-option", "smooth=true", "--workers", "0", "--storage", url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rdb = open_storage(url, heartbeat_interval=None)
    study = optuna.load_study(study_name="mmgcn-synthetic-ogm_ge-search", storage=rdb)
    assert study.user_attrs["spec"]["method_options"] == {"smooth": True}
