"""What the report holds: figures from Optuna's plots and evaluators, notices where a study is thin."""

from __future__ import annotations

import random
import warnings

import optuna
import pytest
from optuna.trial import create_trial
from report_fixtures import DISTRIBUTIONS, balance_study, search_study

from spcl_search.errors import ConfigError
from spcl_search.reports import figures
from spcl_search.reports.html import render_html
from spcl_search.reports.importance import param_importances
from spcl_search.reports.report import build_report


def _section(report, key):
    return next(s for s in report.sections if s.key == key)


def _planted_study() -> optuna.Study:
    """Objective 0 rises with cl_threshold and drops sharply in the lowest fifth of cl_growth;
    objective 1 the other way round. A ranking of *low* values would swap the winners."""
    study = optuna.create_study(directions=["maximize", "maximize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.set_metric_names(["dev_f1_atv", "gain"])
    study.set_user_attr("kind", "balance")
    n = 60
    xs = [(i + 0.5) / n for i in range(n)]
    ys = xs[:]
    random.Random(0).shuffle(ys)
    for x, y in zip(xs, ys):
        v0 = x - 5.0 * (y < 0.2)
        v1 = y - 5.0 * (x < 0.2)
        params = {"cl_threshold": 0.1 + 1.4 * x, "cl_growth": 1.0 + y}
        study.add_trial(
            create_trial(
                values=[v0, v1],
                params=params,
                distributions=DISTRIBUTIONS,
                user_attrs={"use_cl": True},
            )
        )
    return study


def test_ped_anova_ranks_the_param_that_drives_high_values_of_a_maximised_objective():
    first, second = param_importances(_planted_study(), "ped-anova")
    assert next(iter(first.importances)) == "cl_threshold"
    assert next(iter(second.importances)) == "cl_growth"


def test_fanova_is_used_on_request_and_names_itself():
    results = param_importances(balance_study(), "fanova")
    assert [r.evaluator for r in results] == ["fANOVA", "fANOVA"]
    assert next(iter(results[0].importances)) == "cl_threshold"


def test_importance_states_the_number_of_trials_it_rests_on():
    results = param_importances(balance_study(n_spcl=16), "ped-anova")
    assert all(r.n_trials == 16 and "16 trials" in r.figure.layout.title.text for r in results)


def test_importance_with_too_few_trials_is_a_notice_not_a_failure():
    results = param_importances(balance_study(n_spcl=2), "ped-anova")
    assert all(r.figure is None and "at least" in r.notice for r in results)


def test_importance_on_few_trials_is_flagged_as_rough_and_on_many_is_not():
    few = param_importances(balance_study(n_spcl=6), "ped-anova")
    many = param_importances(balance_study(n_spcl=24), "ped-anova")
    assert all(r.figure is not None and "rough" in r.notice for r in few)
    assert all(r.notice is None for r in many)


def test_unknown_importance_evaluator_is_a_config_error():
    with pytest.raises(ConfigError, match="`importance`"):
        param_importances(balance_study(n_spcl=3), "shap")


def test_pareto_front_hover_shows_params_four_dev_f1_and_test_f1():
    fig = figures.pareto_front(balance_study())
    front = next(t for t in fig.data if t.name == "Pareto front")
    hover = front.text[0]
    for part in (
        "cl_threshold",
        "cl_growth",
        "dev F1 T+A+V",
        "dev F1 T+A",
        "dev F1 T+V",
        "dev F1 A+V",
        "test F1 T+A+V",
    ):
        assert part in hover


def test_pareto_front_marks_the_no_spcl_baseline_beneath_the_trials():
    fig = figures.pareto_front(balance_study())
    base = fig.data[0]
    assert base.name == "No SPCL (baseline)" and base.marker.symbol == "star-open"
    # drawn first, an open star: the trial points on top stay visible, one with the baseline's values included
    assert any((base.x[0], base.y[0]) in zip(t.x, t.y) for t in fig.data[1:])


def test_single_objective_study_has_a_pareto_notice_instead_of_a_figure():
    pareto = _section(build_report(search_study()), "pareto")
    assert not pareto.figures and "Single-objective" in pareto.notices[0]


def test_gain_chart_puts_without_and_with_spcl_side_by_side_for_f1_and_accuracy():
    report = build_report(balance_study())
    fig = _section(report, "gain").figures[0].figure
    assert [t.name for t in fig.data] == ["without SPCL"] * 2 + ["with SPCL (best)"] * 2
    assert list(fig.data[0].x) == ["vs T+A", "vs T+V", "vs A+V"]


def test_study_without_baseline_says_so_in_the_gain_section():
    gain = _section(build_report(balance_study(baseline=False)), "gain")
    assert gain.figures and any("No no-SPCL baseline" in n for n in gain.notices)


def test_landscape_is_a_contour_when_trials_span_both_params():
    report = build_report(balance_study())
    titles = [f.title for f in _section(report, "landscape").figures]
    assert titles[0].startswith("Contour: cl_threshold x cl_growth -> dev_f1_atv")


def test_landscape_falls_back_to_a_slice_with_two_trials():
    report = build_report(balance_study(n_spcl=2))
    assert _section(report, "landscape").figures[0].title.startswith("Slice:")


def test_empty_study_builds_a_page_of_notices():
    study = optuna.create_study(directions=["maximize", "maximize"])
    report = build_report(study)
    assert report.figures == []
    page = render_html(report)
    for sentence in ("Pareto front is empty", "no history", "timeline is empty"):
        assert sentence in page


def test_timeline_and_history_use_optunas_plots():
    report = build_report(balance_study())
    assert _section(report, "timeline").figures[0].figure.data[0].type == "bar"
    assert [f.title for f in _section(report, "history").figures] == [
        "Optimisation history: dev_f1_atv",
        "Optimisation history: gain",
    ]


def test_a_study_on_surrogate_features_says_so_at_the_top_of_the_page():
    study = search_study()
    params = study.trials[0].params
    study.add_trial(create_trial(params=params, distributions=study.trials[0].distributions, value=50.0,
                                 user_attrs={"data_surrogate": "av", "use_cl": True}))
    page = render_html(build_report(study))
    assert "SURROGATE data:</strong> the a, v features" in page


def test_a_study_on_real_features_has_no_surrogate_notice():
    assert "SURROGATE data" not in render_html(build_report(search_study()))
