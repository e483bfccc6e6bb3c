"""Racing over seeds: a setting gets the next seed only while it is not significantly worse than the incumbent."""

from __future__ import annotations

import uuid

import optuna
import pytest
import simulated
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from spcl_search.errors import ConfigError
from spcl_search.schema.records import TrialRecord
from spcl_search.schema.spec import build
from spcl_search.search.racing import RacingPruner, incumbent
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import run_worker

DIST = {"x": FloatDistribution(0, 1)}


def _done(values: dict[int, float], use_cl: bool = True) -> optuna.trial.FrozenTrial:
    return optuna.create_trial(
        state=TrialState.COMPLETE, value=sum(values.values()) / len(values), params={"x": 0.5}, distributions=DIST,
        intermediate_values=values, user_attrs={"use_cl": use_cl},
    )  # fmt: skip


def _challenger(study: optuna.Study, values: dict[int, float]) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    for seed, value in values.items():
        trial.report(value, step=seed)
    return study._storage.get_trial(trial._trial_id)


@pytest.fixture
def raced() -> optuna.Study:
    """An incumbent and a runner-up, each on seeds 0-3: the study knows the seed-to-seed spread (about 0.1)."""
    study = optuna.create_study(direction="maximize")
    study.add_trial(_done({0: 60.0, 1: 61.0, 2: 60.5, 3: 61.5}))
    study.add_trial(_done({0: 59.0, 1: 60.1, 2: 59.4, 3: 60.6}))
    return study


def test_a_setting_far_worse_than_the_incumbent_stops_after_its_first_seed(raced):
    assert RacingPruner(0.1).prune(raced, _challenger(raced, {0: 50.0}))


def test_a_setting_within_the_seed_spread_of_the_incumbent_goes_on(raced):
    assert not RacingPruner(0.1).prune(raced, _challenger(raced, {0: 59.9}))


def test_nothing_is_stopped_before_the_study_knows_the_spread():
    study = optuna.create_study(direction="maximize")
    study.add_trial(_done({0: 60.0, 1: 61.0}))
    assert not RacingPruner(0.1).prune(study, _challenger(study, {0: 10.0}))


def test_a_baseline_is_never_the_incumbent_and_never_stopped(raced):
    raced.add_trial(_done({0: 90.0, 1: 90.0, 2: 90.0, 3: 90.0}, use_cl=False))
    assert incumbent(raced.trials).value == pytest.approx(60.75)
    trial = raced.ask()
    trial.set_user_attr("use_cl", False)
    trial.report(1.0, step=0)
    assert not RacingPruner(0.1).prune(raced, raced._storage.get_trial(trial._trial_id))


def test_the_wilcoxon_race_stops_a_setting_below_the_incumbent_on_every_seed_even_when_a_baseline_leads(raced):
    raced.add_trial(_done({0: 90.0, 1: 90.0, 2: 90.0, 3: 90.0}, use_cl=False))  # not the incumbent
    # 4 shared seeds all below: the exact one-sided p-value is 1/16 < 0.1
    assert RacingPruner(0.1, test="wilcoxon").prune(raced, _challenger(raced, {0: 59.0, 1: 60.0, 2: 59.5, 3: 60.5}))
    assert not RacingPruner(0.1, test="wilcoxon").prune(raced, _challenger(raced, {0: 59.0, 1: 60.0, 2: 61.0}))


def test_racing_needs_several_seeds_and_a_search_study():
    with pytest.raises(ConfigError, match="several seeds"):
        build({"backbone": "mmgcn", "race": {"enabled": True}, "seeds": [0]})
    with pytest.raises(ConfigError, match="search studies"):
        build({"backbone": "mmgcn", "kind": "balance", "race": {"enabled": True}, "pruner": "none"})


def test_a_racing_spec_races_over_five_seeds_without_an_epoch_pruner():
    spec = build({"backbone": "mmgcn", "race": {"enabled": True}})
    assert spec.racing and spec.seeds == (0, 1, 2, 3, 4) and spec.pruner == "none" and spec.race["alpha"] == 0.1


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'race.db'}"
    return request.getfixturevalue("pg_url")


def test_a_raced_study_stops_a_bad_setting_after_one_seed_and_records_the_seeds_reached(url):
    name = f"race-{uuid.uuid4().hex[:8]}"
    rdb = open_storage(url, heartbeat_interval=1, grace_period=3)
    opened = open_study(rdb, {"name": name, "backbone": "mmgcn", "epochs": 2, "n_trials": 3, "sampler": "random",
                              "race": {"enabled": True}, "seeds": [0, 1, 2, 3]})  # fmt: skip
    for params in ({"cl_threshold": 0.7, "cl_growth": 1.3}, {"cl_threshold": 0.72, "cl_growth": 1.3}, {"cl_threshold": 1.5, "cl_growth": 2.0}):
        opened.study.enqueue_trial(params)
    try:
        run_worker(rdb, name, trainer=simulated.factory())
        first, second, bad = optuna.load_study(study_name=name, storage=rdb).trials
        assert first.state == TrialState.COMPLETE and TrialRecord.of(first).seeds_reached == 4
        assert sorted(first.intermediate_values) == [0, 1, 2, 3]  # one step per seed, named by the seed
        assert len(TrialRecord.of(first).sets["atv"].per_seed) == 4
        assert TrialRecord.of(second).seeds_reached >= 2
        assert bad.state == TrialState.PRUNED and TrialRecord.of(bad).seeds_reached == 1 and list(bad.intermediate_values) == [0]
        assert TrialRecord.of(bad).metric("dev_f1", "atv") == pytest.approx(bad.intermediate_values[0])
    finally:
        optuna.delete_study(study_name=name, storage=rdb)
