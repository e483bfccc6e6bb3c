"""One selection of the best SPCL settings, whoever reads it: ``best``, the report, ``compare``, the dashboard note."""

from __future__ import annotations

import json
import re

import optuna
import pytest
import simulated
from typer.testing import CliRunner

from spcl_search.cli import app
from spcl_search.reports.dashboard import report_note
from spcl_search.reports.report import build_report
from spcl_search.schema.records import SetResult, TrialRecord
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import run_worker

STUDY = "mmgcn-synthetic-search"


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """A search study over two modality sets, trained by workers with the simulated trainer (with baselines)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('best') / 'best.db'}"
    rdb = open_storage(url, heartbeat_interval=1, grace_period=3)
    open_study(rdb, {"backbone": "mmgcn", "epochs": 2, "n_trials": 10, "modalities": "atv,tv", "baseline": True, "sampler": "random",
                         "pruner": "none"})  # every set gets complete trials, whatever the random draws
    run_worker(rdb, STUDY, trainer=simulated.factory())
    return url


def _cli(*args):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def _cells(text):
    """``growth/threshold`` cells of the ``mmgcn [spcl]`` row of a paper table, wherever it is printed."""
    line = next(line for line in text.splitlines() if "mmgcn [spcl]" in line)
    return re.findall(r"\d[\d.]*/\d[\d.]*", line)


def test_best_report_and_compare_choose_the_same_settings(storage):
    rows = json.loads(_cli("best", "--storage", storage, "--json"))
    chosen = {r["modalities"]: (r["trial"], r["setting"]) for r in rows}
    assert list(chosen) == ["atv", "tv"]  # the paper's order

    study = optuna.load_study(study_name=STUDY, storage=storage)
    report = build_report(study)
    assert {r.modalities: (r.trial, r.setting) for r in report.best} == chosen
    assert _cells(report_note(report)) == [s for _, s in chosen.values()]  # the dashboard's note

    assert _cells(_cli("compare", STUDY, "--storage", storage)) == [s for _, s in chosen.values()]
    assert _cells(_cli("best", "--storage", storage)) == [s for _, s in chosen.values()]


def test_the_best_setting_is_the_highest_dev_f1_of_the_spcl_trials(storage):
    study = optuna.load_study(study_name=STUDY, storage=storage)
    for row in json.loads(_cli("best", "--storage", storage, "--json")):
        m = row["modalities"]
        spcl = [t for t in study.trials if t.state.is_finished() and t.user_attrs.get("use_cl") and f"dev_f1_{m}" in t.user_attrs]
        assert row["trial"] == max(spcl, key=lambda t: t.user_attrs[f"dev_f1_{m}"]).number


def test_a_record_reads_back_the_attrs_it_wrote():
    record = TrialRecord(variant="spcl", use_cl=False, seeds=[0, 1], gain=1.5, gain_vs={"at": 2.0}, extra={"custom": 1})
    record.sets["atv"] = SetResult(dev_f1=61.0, dev_f1_curve=[60.0, 61.0], per_seed=[{"dev_f1": 61.0}])
    attrs = record.to_attrs()
    assert attrs == {
        "variant": "spcl", "use_cl": False, "seeds": [0, 1], "gain": 1.5, "gain_vs_at": 2.0, "custom": 1,
        "dev_f1_atv": 61.0, "dev_f1_curve_atv": [60.0, 61.0], "per_seed_atv": [{"dev_f1": 61.0}],
    }
    assert TrialRecord.from_attrs(attrs) == record
    assert TrialRecord.from_attrs(attrs).is_baseline and record.trained == ["atv"]
