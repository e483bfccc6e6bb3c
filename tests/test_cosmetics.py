"""What a new user reads: piped output ends each table on its own line, settings are never cut, compare names the
method it compares, the CLI and the HTML give the same gain columns, an empty study says so, trial ticks are whole."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
import simulated
from report_fixtures import balance_study
from typer.testing import CliRunner

from spcl_search.cli import app
from spcl_search.reports import figures
from spcl_search.reports.records import modality_label
from spcl_search.reports.report import build_report
from spcl_search.schema.best import GAIN_COLUMNS
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import run_worker


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """An SPCL balance study and an OGM-GE one (simulated trainer), and an empty study."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cosmetics') / 'c.db'}"
    rdb = open_storage(url, heartbeat_interval=1, grace_period=3)
    for method in ("spcl", "ogm_ge"):
        name = open_study(rdb, {"backbone": "mmgcn", "kind": "balance", "method": method, "epochs": 1, "n_trials": 3}).spec.name
        run_worker(rdb, name, trainer=simulated.factory())
    open_study(rdb, {"name": "empty", "backbone": "mmgcn", "n_trials": 7})
    return url


def _cli(*args):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})  # a pipe: not a terminal


def test_best_piped_at_80_columns_shows_every_setting_whole(url):
    result = _cli("best", "--storage", url)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="mmgcn-synthetic-balance", storage=url)
    growths = {f"cl_growth={t.params['cl_growth']:.4g}" for t in study.best_trials}  # the chosen one is on the Pareto front
    assert not [line for line in result.output.splitlines() if "…" in line]  # nothing cut short
    assert "cl_threshold=" in result.output and any(g in result.output for g in growths)


def test_compare_names_the_method_of_each_row_and_its_own_setting(url):
    result = _cli("compare", "mmgcn-synthetic-balance", "mmgcn-synthetic-ogm_ge-balance", "--storage", url)
    assert result.exit_code == 0, result.output
    assert "best SPCL setting" not in result.output
    ogm = [line for line in result.output.splitlines() if "ogm_ge" in line and "vs " in line]
    assert len(ogm) == 3 and all("alpha=" in line for line in ogm)


def test_the_cli_and_the_html_report_give_the_same_spcl_gain_columns(url):
    study = optuna.load_study(study_name="mmgcn-synthetic-balance", storage=url)
    (table,) = [t for s in build_report(study).sections for t in s.tables if t.caption == "Best trial per modality set"]
    html_gains = [i for i, h in enumerate(table.header) if "gain" in h]
    result = CliRunner().invoke(app, ["best", "--storage", url, "--study", study.study_name], env={"COLUMNS": "400"})
    header = next(line for line in result.output.splitlines() if "SPCL gain" in line)
    assert [table.header[i] for i in html_gains] == list(GAIN_COLUMNS) and all(h in header for h in GAIN_COLUMNS)
    sets = {modality_label(m): m for m in ("atv", "at", "tv", "av")}
    for row in table.rows:  # the same numbers too
        line = next(line for line in result.output.splitlines() if f"│ {sets[row[0]]} " in line)
        assert all(row[i] in line for i in html_gains), (row, line)


def test_an_empty_studys_report_gives_its_budget_not_zero_of_zero(url):
    study = optuna.load_study(study_name="empty", storage=url)
    summary = next(s for s in build_report(study).sections if s.key == "summary").tables[0].rows
    assert dict((k, v) for k, v in summary)["trials"] == "none run yet (budget 7)"


def test_the_optimisation_history_ticks_whole_trial_numbers():
    for n in (3, 16, 40):
        (fig,) = figures.optimization_history(balance_study(n_spcl=n))[:1]
        assert fig.layout.xaxis.tick0 == 0 and float(fig.layout.xaxis.dtick).is_integer() and fig.layout.xaxis.dtick >= 1
        assert (n + 1) / fig.layout.xaxis.dtick <= 10


def test_a_piped_run_ends_the_live_view_on_its_own_line(tmp_path):
    env = {**os.environ, **simulated.env(), "COLUMNS": "80"}
    result = subprocess.run(
        [sys.executable, "-m", "spcl_search", "run", "--backbone", "mmgcn", "--n-trials", "2", "--epochs", "1", "--workers", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert not [line for line in lines if "┘" in line and not line.rstrip().endswith("┘")]  # nothing runs on after a table
    assert any(line.startswith("details") for line in lines)
