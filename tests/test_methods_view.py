"""Balance methods side by side: one study per method, the method view of compare and the report."""

from __future__ import annotations

import csv
import statistics

import optuna
import pytest
import simulated
from typer.testing import CliRunner

from spcl_search.cli import app
from spcl_search.reports.methods import method_rows, sibling_studies
from spcl_search.reports.report import build_report
from spcl_search.schema.records import TrialRecord
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import run_worker

BUDGETS = {"spcl": 4, "ogm_ge": 4, "opm": 2, "none": 1}


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """One search study per method on the same backbone and data, two seeds each, the simulated trainer."""
    url = f"sqlite:///{tmp_path_factory.mktemp('methods') / 'methods.db'}"
    rdb = open_storage(url, heartbeat_interval=1, grace_period=3)
    for method, n in BUDGETS.items():
        opened = open_study(rdb, {"backbone": "mmgcn", "method": method, "epochs": 2, "n_trials": n, "seeds": [0, 1], "sampler": "random"})
        run_worker(rdb, opened.spec.name, trainer=simulated.factory())
    return url


def _studies(url):
    rdb = open_storage(url, heartbeat_interval=None)
    return [optuna.load_study(study_name=name, storage=rdb) for name in optuna.get_all_study_names(rdb)]


def test_each_method_has_its_own_study_named_after_it(storage):
    names = sorted(s.study_name for s in _studies(storage))
    assert names == ["mmgcn-synthetic-none-search", "mmgcn-synthetic-ogm_ge-search", "mmgcn-synthetic-opm-search", "mmgcn-synthetic-search"]


def test_trials_record_their_method_and_search_its_own_settings(storage):
    study = next(s for s in _studies(storage) if s.study_name == "mmgcn-synthetic-ogm_ge-search")
    trial = study.trials[0]
    assert TrialRecord.of(trial).method == "ogm_ge"
    assert set(trial.params) == {"alpha"}


def test_the_view_has_one_row_per_method_in_a_fixed_order(storage):
    assert [r.method for r in method_rows(_studies(storage))] == ["none", "spcl", "ogm_ge", "opm"]


def test_a_tunable_method_with_fewer_finished_trials_is_flagged(storage):
    rows = {r.method: r for r in method_rows(_studies(storage))}
    assert rows["opm"].flagged and rows["opm"].n_trials == 2
    assert not rows["spcl"].flagged and not rows["ogm_ge"].flagged
    assert not rows["none"].flagged  # nothing to tune: one trial is its whole budget


def test_figures_are_mean_and_spread_over_the_best_trials_seeds(storage):
    studies = _studies(storage)
    row = next(r for r in method_rows(studies) if r.method == "spcl")
    best = next(s for s in studies if s.study_name == row.study).trials[row.trial]
    seeds = TrialRecord.of(best).sets["atv"].per_seed
    assert row.n_seeds == 2
    assert row.dev_f1 == pytest.approx(statistics.fmean(s["dev_f1"] for s in seeds))
    assert row.test_f1_std == pytest.approx(statistics.stdev(s["test_f1"] for s in seeds))
    others = [TrialRecord.of(t).metric("dev_f1", "atv") for t in next(s for s in studies if s.study_name == row.study).trials]
    assert row.dev_f1 == pytest.approx(max(others))  # chosen on dev


def test_compare_prints_the_method_view(storage):
    result = CliRunner().invoke(app, ["compare", *sorted(s.study_name for s in _studies(storage)), "--storage", storage], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "Balance methods" in result.output
    assert "opm *" in result.output and "ogm_ge" in result.output


def test_a_report_on_one_method_shows_every_method_of_its_backbone_and_data(storage):
    rdb = open_storage(storage, heartbeat_interval=None)
    study = optuna.load_study(study_name="mmgcn-synthetic-ogm_ge-search", storage=rdb)
    report = build_report(study, siblings=sibling_studies(rdb, study))
    section = next(s for s in report.sections if s.key == "methods")
    assert [line[0] for line in section.tables[0].rows] == ["none", "spcl", "ogm_ge", "opm (fewer trials)"]
    assert len(section.figures) == 1 and len(section.figures[0].figure.data) == 4


def test_compare_csv_writes_every_table_compare_prints(storage, tmp_path):
    out = tmp_path / "cmp.csv"
    names = sorted(s.study_name for s in _studies(storage))
    result = CliRunner().invoke(app, ["compare", *names, "--storage", storage, "--csv", str(out)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp-answers.csv", "cmp-best.csv", "cmp-methods.csv", "cmp.csv"]
    methods = list(csv.DictReader((tmp_path / "cmp-methods.csv").open()))
    shown = {r.method: r for r in method_rows(_studies(storage))}
    assert [r["method"] for r in methods] == list(shown) == ["none", "spcl", "ogm_ge", "opm"]
    assert all(float(r["dev_f1"]) == pytest.approx(shown[r["method"]].dev_f1, abs=1e-4) for r in methods)
    best = list(csv.reader((tmp_path / "cmp-best.csv").open()))
    assert len(best) >= 2 and all(cell in result.output for cell in best[0] if cell)  # the printed table's header
    assert next(csv.reader(out.open()))[:2] == ["study", "backbone"]  # the gain table (no bi-modal sets here: header only)
    answers = list(csv.DictReader((tmp_path / "cmp-answers.csv").open()))
    assert {r["study"] for r in answers} == set(names) and all(r["verdict"] for r in answers)  # the answers table


def test_a_fixed_method_option_reaches_training_and_is_recorded_with_each_trial(tmp_path):
    rdb = open_storage(f"sqlite:///{tmp_path / 'smooth.db'}", heartbeat_interval=1, grace_period=3)
    request = {"backbone": "mmgcn", "method": "ogm_ge", "method_options": {"smooth": True}, "epochs": 2, "n_trials": 2, "sampler": "random"}
    opened = open_study(rdb, request)
    seen = []

    class Spy(simulated.SimulatedTrainer):
        def run(self, modalities, seed, setting):
            seen.append(setting.method_options)
            return (yield from super().run(modalities, seed, setting))

    run_worker(rdb, opened.spec.name, trainer=lambda spec: Spy(spec.epochs))
    trials = optuna.load_study(study_name=opened.spec.name, storage=rdb).trials
    assert [s["smooth"] for s in seen] == [True, True]
    for trial in trials:
        assert TrialRecord.of(trial).method_options == {"alpha": trial.params["alpha"], "smooth": True, "modulation_starts": 1, "modulation_ends": None}
    (row,) = method_rows([optuna.load_study(study_name=opened.spec.name, storage=rdb)])
    assert row.setting.endswith(" smooth=true")
