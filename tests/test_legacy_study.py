"""A study stored before methods were plug-ins (tests/data/legacy-pristine.sqlite, made by the code before the
change) still reads the same: status, best, best --command and the confirmation line print what they printed
then (tests/data/legacy-outputs.txt), and a worker can join it and add a trial."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
import simulated
from typer.testing import CliRunner

from spcl_search.cli import app
from spcl_search.schema.study_info import study_info
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import run_worker

DATA = Path(__file__).resolve().parent / "data"
STUDIES = ("legacy-search", "legacy-balance", "legacy-search-confirm")


@pytest.fixture
def legacy_url(tmp_path: Path) -> str:
    copy = tmp_path / "legacy.db"
    shutil.copyfile(DATA / "legacy-pristine.sqlite", copy)  # the pristine file is never opened itself
    return f"sqlite:///{copy}"


def _before() -> dict[str, str]:
    """What the code before the change printed, per study (its ``## NAME`` section)."""
    out: dict[str, str] = {}
    for part in (DATA / "legacy-outputs.txt").read_text().split("## ")[1:]:
        name, _, body = part.partition("\n")
        out[name.strip()] = body
    return out


def _words(text: str) -> list[str]:
    """The printed words, whatever the terminal's width wrapped."""
    return text.split()


@pytest.mark.parametrize("name", STUDIES)
def test_status_best_and_its_command_print_what_they_printed_before(legacy_url, name):
    runner = CliRunner()
    printed = ""
    for args in (["status"], ["best"], ["best", "--command"]):
        result = runner.invoke(app, [*args, "--storage", legacy_url, "--study", name], env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
        printed += result.output
    assert _words(printed) == _words(_before()[name])


def test_the_legacy_attrs_are_read_once_into_typed_fields(legacy_url):
    storage = open_storage(legacy_url, heartbeat_interval=None)
    search = study_info(optuna.load_study(study_name="legacy-search", storage=storage))
    assert (search.method, search.variant, search.precision, search.budget) == ("spcl", "spcl", "fp32", 3)
    assert search.spec is not None and search.spec.method_options == {}
    confirm = study_info(optuna.load_study(study_name="legacy-search-confirm", storage=storage))
    assert confirm.confirms == "legacy-search"
    balance = study_info(optuna.load_study(study_name="legacy-balance", storage=storage))
    assert (balance.kind, balance.method) == ("balance", "ogm_ge")


def test_a_worker_joins_a_legacy_study_and_adds_a_trial(legacy_url):
    storage = open_storage(legacy_url, heartbeat_interval=1, grace_period=3)
    before = len(optuna.load_study(study_name="legacy-search", storage=storage).trials)
    open_study(storage, {"name": "legacy-search", "n_trials": before + 1})
    run_worker(storage, "legacy-search", trainer=simulated.factory())
    trials = optuna.load_study(study_name="legacy-search", storage=storage).trials
    assert len(trials) == before + 1 and trials[-1].state == optuna.trial.TrialState.COMPLETE
    assert set(trials[-1].params) == {"cl_threshold", "cl_growth"}
