"""Pruning a study's trials by epoch: the mean over seeds, and the curriculum-aware warm-up (take rate)."""

from __future__ import annotations

import optuna
import pytest
import simulated
from optuna.trial import TrialState

from spcl_search.errors import ConfigError
from spcl_search.schema.spec import build
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import run_worker


def _slow_after_good(tmp_path, **options):
    """A good setting, then one whose curriculum admits 10% of the data forever (and whose dev F1 is lower)."""
    rdb = open_storage(f"sqlite:///{tmp_path / 'p.db'}", heartbeat_interval=1, grace_period=3)
    opened = open_study(rdb, {"backbone": "mmgcn", "epochs": 6, "n_trials": 2, "pruner": "median",
                              "pruner_options": {"n_startup_trials": 1, "n_warmup_steps": 1, **options}})  # fmt: skip
    opened.study.enqueue_trial({"cl_threshold": 0.7, "cl_growth": 1.3})
    opened.study.enqueue_trial({"cl_threshold": 0.1, "cl_growth": 1.0})
    run_worker(rdb, opened.spec.name, trainer=simulated.factory())
    return optuna.load_study(study_name=opened.spec.name, storage=rdb).trials[1]


def test_the_median_pruner_stops_a_slow_curriculum_at_its_first_check(tmp_path):
    slow = _slow_after_good(tmp_path)
    assert slow.state == TrialState.PRUNED and slow.user_attrs["pruned_at_step"] == 1


def test_a_take_rate_warm_up_holds_the_check_until_the_curriculum_admits_the_data_or_half_the_epochs(tmp_path):
    slow = _slow_after_good(tmp_path, warmup_take_rate=0.95)
    assert slow.state == TrialState.PRUNED and slow.user_attrs["pruned_at_step"] == 3  # never reaches 0.95: half of 6 epochs


def test_a_take_rate_warm_up_outside_0_1_is_refused():
    with pytest.raises(ConfigError, match="warmup_take_rate"):
        build({"backbone": "mmgcn", "pruner_options": {"warmup_take_rate": 1.5}})


def _finished(values: dict[int, float]) -> optuna.trial.FrozenTrial:
    from optuna.distributions import FloatDistribution

    return optuna.create_trial(state=TrialState.COMPLETE, value=max(values.values()), params={"x": 0.5},
                               distributions={"x": FloatDistribution(0, 1)}, intermediate_values=values)  # fmt: skip


def _running(study: optuna.Study, values: dict[int, float]) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    for step, value in values.items():
        trial.report(value, step)
    return study._storage.get_trial(trial._trial_id)


@pytest.fixture
def median_30() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for v in (29.0, 30.0, 31.0):  # the median at step 1 is 30
        study.add_trial(_finished({0: v / 2, 1: v}))
    return study


def test_the_margin_rule_spares_a_trial_just_below_the_median(median_30):
    from spcl_search.search.pruning import MarginMedianPruner

    assert not MarginMedianPruner(margin=0.15, n_startup_trials=3).prune(median_30, _running(median_30, {0: 10.0, 1: 25.6}))


def test_the_margin_rule_stops_a_trial_far_below_the_median(median_30):
    from spcl_search.search.pruning import MarginMedianPruner

    assert MarginMedianPruner(margin=0.15, n_startup_trials=3).prune(median_30, _running(median_30, {0: 10.0, 1: 25.4}))


def test_a_new_search_prunes_by_the_margin_rule_from_half_its_epochs():
    from spcl_search.search.algorithms import make_pruner
    from spcl_search.search.pruning import MarginMedianPruner

    spec = build({"backbone": "mmgcn", "epochs": 10})
    assert spec.pruner_options == {"margin": 0.15, "n_warmup_steps": 5} and isinstance(make_pruner(spec), MarginMedianPruner)
    assert build({"backbone": "mmgcn", "pruner_options": {"n_startup_trials": 2}}).pruner_options == {"n_startup_trials": 2}


def test_a_margin_given_without_a_warm_up_checks_from_half_the_epochs_too():
    from spcl_search.search.algorithms import first_prunable_step, make_pruner

    spec = build({"backbone": "mmgcn", "epochs": 10, "pruner_options": {"margin": 0.2}})
    assert first_prunable_step(spec) == 5 and make_pruner(spec).n_warmup_steps == 5
