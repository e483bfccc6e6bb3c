"""Gain and best-settings tables read from study records (fixture studies, in memory)."""

from __future__ import annotations

import csv
import io

import optuna
import pytest
from report_fixtures import balance_study, search_study

from spcl_search.reports import records
from spcl_search.reports.gain import gain_csv, gain_rows
from spcl_search.schema.best import best_settings, paper_table


def _trial(study, number):
    return study.get_trials(deepcopy=False)[number]


def test_balance_gain_without_spcl_is_baseline_tri_minus_bi_modal_test_f1():
    study = balance_study()
    base = records.baseline_trials(records.complete_trials(study))[0]
    for row in gain_rows(study):
        expected = base.user_attrs["test_f1_atv"] - base.user_attrs[f"test_f1_{row.versus}"]
        assert row.f1_without == pytest.approx(expected)
        assert row.baseline_trial == base.number


def test_balance_gain_with_spcl_uses_the_trial_with_best_tri_modal_dev_f1():
    study = balance_study()
    spcl = records.spcl_trials(records.complete_trials(study))
    best = max(spcl, key=lambda t: t.user_attrs["dev_f1_atv"])
    for row in gain_rows(study):
        assert row.spcl_trial == best.number
        expected = best.user_attrs["test_acc_atv"] - best.user_attrs[f"test_acc_{row.versus}"]
        assert row.acc_with == pytest.approx(expected)


def test_gain_rows_cover_each_bimodal_set_in_paper_order():
    assert [r.versus for r in gain_rows(balance_study())] == ["at", "tv", "av"]


def test_gain_without_baseline_trial_is_empty_on_that_side():
    rows = gain_rows(balance_study(baseline=False))
    assert rows and all(r.f1_without is None and r.baseline_trial is None for r in rows)
    assert all(r.f1_with is not None for r in rows)


def test_search_gain_takes_the_best_trial_per_modality_set():
    study = search_study(baseline=True)
    spcl = records.spcl_trials(records.complete_trials(study))
    best_atv = max(
        (t for t in spcl if "dev_f1_atv" in t.user_attrs), key=lambda t: t.user_attrs["dev_f1_atv"]
    )
    best_at = max(
        (t for t in spcl if "dev_f1_at" in t.user_attrs), key=lambda t: t.user_attrs["dev_f1_at"]
    )
    row = next(r for r in gain_rows(study) if r.versus == "at")
    assert row.f1_with == pytest.approx(
        best_atv.user_attrs["test_f1_atv"] - best_at.user_attrs["test_f1_at"]
    )


def test_gain_is_empty_when_no_tri_modal_result_exists():
    study = search_study(n_trials=3)  # trials 0..2 train atv, at, tv: drop the atv one
    only_bimodal = records.sub_study(
        study, [t for t in study.trials if "dev_f1_atv" not in t.user_attrs]
    )
    assert gain_rows(only_bimodal) == []


def test_gain_csv_has_one_row_per_comparison_and_blank_missing_values():
    rows = gain_rows(balance_study(baseline=False))
    parsed = list(csv.DictReader(io.StringIO(gain_csv(rows))))
    assert [p["versus"] for p in parsed] == ["at", "tv", "av"]
    assert all(p["f1_without"] == "" and float(p["f1_with"]) for p in parsed)


def test_best_settings_choose_on_dev_f1_per_modality_set():
    study = search_study(baseline=True)
    spcl = records.spcl_trials(records.complete_trials(study))
    for row in best_settings(study):
        key = f"dev_f1_{row.modalities}"
        best = max((t for t in spcl if key in t.user_attrs), key=lambda t: t.user_attrs[key])
        assert row.trial == best.number
        assert row.setting == f"{best.params['cl_growth']:.3g}/{best.params['cl_threshold']:.3g}"


def test_best_settings_carry_the_baseline_of_the_same_modality_set():
    rows = {r.modalities: r for r in best_settings(balance_study())}
    assert rows["av"].baseline_test_f1 == pytest.approx(56.8 - 1.0)


def test_paper_table_has_one_row_per_backbone_and_dataset_modality_columns():
    rows = best_settings(balance_study(backbone="mmgcn")) + best_settings(
        balance_study(backbone="biddin", dataset="iemocap")
    )
    header, body = paper_table(rows)
    assert header == [
        "Backbone",
        "synthetic atv",
        "synthetic at",
        "synthetic tv",
        "synthetic av",
        "iemocap atv",
        "iemocap at",
        "iemocap tv",
        "iemocap av",
    ]
    assert [line[0] for line in body] == ["mmgcn [spcl]", "biddin [spcl]"]
    assert body[0][5:] == ["", "", "", ""] and all("/" in c for c in body[1][5:])


def test_a_study_stored_before_backbones_had_forms_reads_as_the_original_form():
    legacy = optuna.create_study(study_name="legacy", storage=optuna.storages.InMemoryStorage())
    for key, value in {"kind": "search", "backbone": "mmgcn", "dataset": "iemocap", "spec": {"backbone": "mmgcn"}}.items():
        legacy.set_user_attr(key, value)
    assert records.study_info(legacy).variant == "original"
    assert records.study_info(search_study()).variant == "spcl"


def test_modality_label_follows_the_papers_names():
    assert [records.modality_label(m) for m in ("at", "av", "tv", "atv")] == [
        "T+A",
        "A+V",
        "T+V",
        "T+A+V",
    ]
