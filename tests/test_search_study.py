"""Creating and joining studies: stored spec, conflicts, warm start and baseline."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from spcl_search.errors import ConfigError
from spcl_search.search.storage import open_storage
from spcl_search.search.study import budget, open_study


@pytest.fixture
def rdb(tmp_path):
    return open_storage(f"sqlite:///{tmp_path / 'studies.db'}", heartbeat_interval=1, grace_period=3)


def test_created_study_stores_the_records_reports_read(rdb):
    opened = open_study(rdb, {"backbone": "mmgcn"})
    attrs = opened.study.user_attrs
    assert opened.created
    assert attrs["spec"] == opened.spec.to_dict()
    assert (attrs["kind"], attrs["backbone"], attrs["dataset"]) == ("search", "mmgcn", "synthetic")
    assert opened.study.metric_names == ["dev_f1"]


def test_balance_study_has_two_named_maximised_objectives(rdb):
    study = open_study(rdb, {"backbone": "mmgcn", "kind": "balance"}).study
    assert study.metric_names == ["dev_f1_atv", "gain"]
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE] * 2


def test_joining_adopts_the_stored_spec(rdb):
    open_study(rdb, {"backbone": "mmgcn", "epochs": 3})
    joined = open_study(rdb, {"name": "mmgcn-synthetic-search"})
    assert not joined.created and joined.spec.epochs == 3


def test_joining_with_a_conflicting_option_is_refused_naming_it(rdb):
    open_study(rdb, {"backbone": "mmgcn", "epochs": 3})
    with pytest.raises(ConfigError, match=r"epochs is 3 there but 4 here") as err:
        open_study(rdb, {"backbone": "mmgcn", "epochs": 4})
    assert "\n" not in str(err.value)


def test_joining_with_a_new_budget_changes_it_for_every_worker(rdb):
    opened = open_study(rdb, {"backbone": "mmgcn", "n_trials": 4})
    study_id = rdb.get_study_id_from_name(opened.spec.name)
    open_study(rdb, {"name": opened.spec.name, "n_trials": 9})
    assert budget(rdb, study_id) == 9


def test_joining_a_missing_study_without_create_is_refused(rdb):
    with pytest.raises(ConfigError, match="no study 'nope'"):
        open_study(rdb, {"name": "nope"}, create=False)


def test_study_without_spec_is_refused(rdb, monkeypatch):
    import spcl_search.search.study as study_module

    monkeypatch.setattr(study_module, "CREATION_WAIT", 0.5)  # how long a joiner waits for a spec being stored
    optuna.create_study(study_name="foreign", storage=rdb)
    with pytest.raises(ConfigError, match="not created by spcl-search"):
        open_study(rdb, {"name": "foreign"})


def test_warm_start_enqueues_the_papers_settings_first(rdb):
    study = open_study(
        rdb, {"backbone": "mmgcn", "dataset": "iemocap", "data": "x.pkl", "warm_start": "paper", "modalities": "atv,at,av,tv"}
    ).study
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [
        {"cl_growth": 1.1, "cl_threshold": 0.4, "modalities": "atv"},
        {"cl_growth": 1.4, "cl_threshold": 1.3, "modalities": "at"},
        {"cl_growth": 1.4, "cl_threshold": 1.3, "modalities": "av"},
        {"cl_growth": 1.4, "cl_threshold": 1.3, "modalities": "tv"},
    ]
    assert all(t.user_attrs == {"use_cl": True, "enqueued": "paper"} for t in waiting)


def test_balance_enqueues_the_no_spcl_baseline(rdb):
    study = open_study(rdb, {"backbone": "mmgcn", "kind": "balance"}).study
    (baseline,) = study.get_trials(states=(TrialState.WAITING,))
    assert baseline.user_attrs["use_cl"] is False
    assert baseline.system_attrs["fixed_params"] == {"cl_threshold": 1.5, "cl_growth": 2.0}


def test_paper_setting_outside_the_range_is_refused_before_creating(rdb):
    requested = {"backbone": "mmgcn", "warm_start": "paper:iemocap", "modalities": "at", "space": {"cl_threshold": {"low": 0.1, "high": 1.0}}}
    with pytest.raises(ConfigError, match="outside the search range"):
        open_study(rdb, requested)
    assert optuna.get_all_study_names(rdb) == []


def test_the_backbone_form_is_part_of_the_study_and_recorded(rdb):
    opened = open_study(rdb, {"backbone": "mmgcn"})
    assert opened.spec.variant == "spcl" and opened.study.user_attrs["variant"] == "spcl"
    original = open_study(rdb, {"backbone": "mmgcn", "variant": "original"})
    assert original.spec.name == "mmgcn-synthetic-original-search" and original.study.user_attrs["variant"] == "original"


def test_a_worker_asking_for_another_form_is_refused_naming_the_field(rdb):
    open_study(rdb, {"backbone": "mmgcn"})
    with pytest.raises(ConfigError, match=r"variant is 'spcl' there but 'original' here"):
        open_study(rdb, {"name": "mmgcn-synthetic-search", "variant": "original"})
