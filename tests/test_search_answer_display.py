"""What every reader shows of a study's answer: never the baseline as best, the verdict, the learning curves."""

from __future__ import annotations

import optuna
import pytest
import simulated
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from spcl_search.reports.dashboard import report_note
from spcl_search.reports.figures import learning_curves
from spcl_search.reports.report import build_report
from spcl_search.schema.best import best_settings
from spcl_search.search.status import study_status
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import run_worker

NAME = "mmgcn-synthetic-balance"


@pytest.fixture(scope="module")
def balance(tmp_path_factory):
    """A balance study (simulated trainer) plus a baseline trial whose figures beat every SPCL trial."""
    rdb = open_storage(f"sqlite:///{tmp_path_factory.mktemp('answer') / 'a.db'}", heartbeat_interval=1, grace_period=3)
    open_study(rdb, {"backbone": "mmgcn", "kind": "balance", "epochs": 3, "n_trials": 4, "seeds": [0, 1]})
    run_worker(rdb, NAME, trainer=simulated.factory())
    study = optuna.load_study(study_name=NAME, storage=rdb)
    dist = {"cl_threshold": FloatDistribution(0.1, 1.5), "cl_growth": FloatDistribution(1.0, 2.0)}
    attrs = {"use_cl": False, "seeds": [0, 1], "dev_f1_atv": 99.0, "dev_f1_at": 90.0, "dev_f1_curve_atv": [98.0, 99.0]}
    study.add_trial(optuna.create_trial(state=TrialState.COMPLETE, values=[99.0, 9.0], params={"cl_threshold": 1.5, "cl_growth": 2.0},
                                        distributions=dist, user_attrs=attrs))  # fmt: skip
    return rdb, study


def test_the_baseline_is_never_best_so_far_even_when_its_figures_are_the_highest(balance):
    rdb, study = balance
    baselines = {t.number for t in study.trials if not t.user_attrs.get("use_cl", True)}
    status = study_status(rdb, NAME)
    assert status.best_trial is not None and status.best_trial not in baselines
    assert all(row.trial not in baselines for row in best_settings(study))


def test_status_gives_the_answer_with_its_stage_and_verdict(balance):
    rdb, _ = balance
    answer = study_status(rdb, NAME).answers[0]
    assert answer.startswith("atv ") and "unconfirmed: maximum of 2-seed means" in answer and "no curriculum" in answer


def test_the_report_opens_with_the_answer_and_names_the_baseline_trials(balance):
    _, study = balance
    report = build_report(study)
    answer = next(s for s in report.sections if s.key == "answer")
    assert [s.key for s in report.sections][:2] == ["summary", "answer"]
    row = answer.tables[0].rows[0]
    assert row[2].startswith("unconfirmed") and ("no curriculum" in row[-1])
    baselines = sorted(t.number for t in study.trials if not t.user_attrs.get("use_cl", True))
    assert any(f"Trial(s) {', '.join(map(str, baselines))} are the no-curriculum baseline" in n for n in answer.notices)
    assert "Answer: the setting to use" in report_note(report)  # the dashboard's note carries it too


def test_the_curves_highlight_the_chosen_trial_and_dot_the_baseline(balance):
    _, study = balance
    (row, *_) = best_settings(study)
    fig = learning_curves(study, "atv", (row.source, row.trial))
    chosen = [t for t in fig.data if t.legendgroup == "chosen"]
    assert len(chosen) == 3 and chosen[0].name.startswith(f"trial {row.trial} ")  # dev F1, take rate, threshold
    assert {t.line.dash for t in fig.data if t.legendgroup == "baseline (no curriculum)"} == {"dot"}
    assert list(chosen[0].x) == [1, 2, 3]  # epochs counted from 1
