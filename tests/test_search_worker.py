"""One worker in this process (SQLite, simulated or tiny real training): budget, records, pruning,
interruption, stale trials."""

from __future__ import annotations

import time

import optuna
import pytest
import simulated
from optuna.trial import TrialState

from spcl_search.errors import ConfigError
from spcl_search.search.objectives import Setting
from spcl_search.search.storage import open_storage
from spcl_search.search.study import stored_spec
from spcl_search.search.worker import WorkerOptions
from spcl_search.search.worker import run_worker as _run_worker

CONTRACT_ATTRS = {"use_cl", "seed", "device", "versions", "worker", "trial_seconds"}
PER_SET = ("dev_f1", "test_f1", "dev_acc", "test_acc", "best_epoch", "take_rate", "epoch_seconds")


@pytest.fixture
def rdb(tmp_path):
    return open_storage(f"sqlite:///{tmp_path / 'w.db'}", heartbeat_interval=1, grace_period=2)


def _cheap(**fields):
    return {"backbone": "mmgcn", "epochs": 3, **fields}


def run_worker(*args, **kwargs):
    """A worker with the simulated trainer (``tests/simulated.py``) unless the test gives another."""
    kwargs.setdefault("trainer", simulated.factory())
    return _run_worker(*args, **kwargs)


def _study(rdb, name):
    return optuna.load_study(study_name=name, storage=rdb)


def test_worker_finishes_exactly_the_budget(rdb):
    report = run_worker(rdb, requested=_cheap(n_trials=5))
    trials = _study(rdb, "mmgcn-synthetic-search").trials
    assert report.reason == "budget" and len(report.trials) == 5
    assert len(trials) == 5 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)


def test_search_trial_records_the_contract_attrs(rdb):
    run_worker(rdb, requested=_cheap(n_trials=1))
    (trial,) = _study(rdb, "mmgcn-synthetic-search").trials
    expected = CONTRACT_ATTRS | {f"{k}_atv" for k in PER_SET}
    assert expected <= set(trial.user_attrs)
    assert trial.value == trial.user_attrs["dev_f1_atv"]
    assert trial.user_attrs["test_f1_atv"] != trial.value  # recorded, never the objective


def test_search_reports_dev_f1_every_epoch(rdb):
    run_worker(rdb, requested=_cheap(n_trials=1, epochs=4))
    (trial,) = _study(rdb, "mmgcn-synthetic-search").trials
    assert sorted(trial.intermediate_values) == [0, 1, 2, 3]


def test_categorical_modalities_record_the_set_trained(rdb):
    run_worker(rdb, requested=_cheap(n_trials=3, modalities="atv,at"))
    for trial in _study(rdb, "mmgcn-synthetic-search").trials:
        m = trial.params["modalities"]
        assert trial.user_attrs["modalities"] == m and f"dev_f1_{m}" in trial.user_attrs


def test_balance_trial_records_all_sets_and_the_gain(rdb):
    run_worker(rdb, requested=_cheap(n_trials=2, kind="balance"))
    trials = _study(rdb, "mmgcn-synthetic-balance").trials
    assert trials[0].user_attrs["use_cl"] is False  # the enqueued baseline runs first
    for trial in trials:
        attrs = trial.user_attrs
        assert {f"{k}_{m}" for k in PER_SET for m in ("atv", "at", "av", "tv")} <= set(attrs)
        best_bi = max(attrs[f"dev_f1_{m}"] for m in ("at", "av", "tv"))
        assert trial.values[0] == pytest.approx(attrs["dev_f1_atv"])
        assert trial.values[1] == pytest.approx(attrs["dev_f1_atv"] - best_bi, abs=1e-5)
        assert {"gain_test", "gain_vs_at", "gain_vs_av", "gain_vs_tv"} <= set(attrs)


def test_median_pruner_prunes_a_bad_trial_and_keeps_its_partial_figures(rdb):
    from spcl_search.search.study import open_study

    req = _cheap(n_trials=2, epochs=4, pruner_options={"n_startup_trials": 1, "n_warmup_steps": 0})
    s = open_study(rdb, req).study
    s.enqueue_trial({"cl_threshold": 0.7, "cl_growth": 1.3})
    s.enqueue_trial({"cl_threshold": 1.5, "cl_growth": 2.0})
    run_worker(rdb, "mmgcn-synthetic-search")
    good, bad = _study(rdb, "mmgcn-synthetic-search").trials
    assert good.state == TrialState.COMPLETE and bad.state == TrialState.PRUNED
    assert {"pruned_at_step", "dev_f1_atv", "test_f1_atv", "best_epoch_atv", "epoch_seconds_atv", "device", "versions"} <= set(bad.user_attrs)


def test_hyperband_study_runs(rdb):
    report = run_worker(rdb, requested=_cheap(n_trials=4, epochs=6, pruner="hyperband"))
    assert len(report.trials) == 4


def test_several_seeds_average_and_record_each(rdb):
    run_worker(rdb, requested=_cheap(n_trials=1, seeds=[0, 1]))
    (trial,) = _study(rdb, "mmgcn-synthetic-search").trials
    per_seed = trial.user_attrs["per_seed_atv"]
    assert [p["seed"] for p in per_seed] == [0, 1]
    assert trial.value == pytest.approx(sum(p["dev_f1"] for p in per_seed) / 2, abs=1e-5)


def test_the_pruner_sees_the_mean_over_seeds_at_each_epoch(rdb):
    """Seeds train in lockstep: step e is epoch e, its value the seeds' mean dev F1 at that epoch."""
    run_worker(rdb, requested=_cheap(n_trials=1, seeds=[0, 1], epochs=3))
    (trial,) = _study(rdb, "mmgcn-synthetic-search").trials
    spec = stored_spec(_study(rdb, "mmgcn-synthetic-search"))
    trainer = simulated.SimulatedTrainer(3)
    setting = Setting(("atv",), "spcl", {"cl_threshold": trial.params["cl_threshold"], "cl_growth": trial.params["cl_growth"]})
    curves = [[r.dev_f1 for r in trainer.run("atv", seed, setting)] for seed in spec.seeds]
    assert sorted(trial.intermediate_values) == [0, 1, 2]
    for epoch, value in trial.intermediate_values.items():
        assert value == pytest.approx((curves[0][epoch] + curves[1][epoch]) / 2, abs=1e-9)


def test_timeout_stops_the_worker_before_new_trials(rdb):
    report = run_worker(rdb, options=WorkerOptions(timeout=0), requested=_cheap(n_trials=3))
    assert report.reason == "timeout" and report.trials == []


def test_interrupted_trial_is_failed_and_re_enqueued(rdb):
    with pytest.raises(KeyboardInterrupt):
        run_worker(rdb, requested=_cheap(n_trials=2), trainer=simulated.raising(KeyboardInterrupt()))
    failed, retry = _study(rdb, "mmgcn-synthetic-search").trials
    assert failed.state == TrialState.FAIL and retry.state == TrialState.WAITING
    assert retry.system_attrs["failed_trial"] == failed.number and retry.params == failed.params
    run_worker(rdb, "mmgcn-synthetic-search")
    states = [t.state for t in _study(rdb, "mmgcn-synthetic-search").trials]
    assert states.count(TrialState.COMPLETE) == 2  # the retry plus one new trial: the budget


def test_config_error_in_a_trial_stops_the_worker(rdb):
    with pytest.raises(ConfigError, match="bad option"):
        run_worker(rdb, requested=_cheap(n_trials=3), trainer=simulated.raising(ConfigError("bad option")))
    (trial,) = _study(rdb, "mmgcn-synthetic-search").trials
    assert trial.state == TrialState.FAIL and "bad option" in trial.user_attrs["error"]
    assert {"seed", "device", "versions", "use_cl", "worker"} <= set(trial.user_attrs)


def test_other_trial_errors_fail_the_trial_and_use_its_slot(rdb):
    report = run_worker(rdb, requested=_cheap(n_trials=2), trainer=simulated.raising(RuntimeError("nan")))
    assert report.reason == "budget" and report.states == {"FAIL": 2}


def test_trial_of_a_dead_worker_is_retried_and_completed(rdb):
    from spcl_search.search.study import open_study

    study = open_study(rdb, _cheap(n_trials=2)).study
    dead = study.ask()  # a worker took this trial and died: one heartbeat, then silence
    rdb.record_heartbeat(dead._trial_id)
    time.sleep(3)
    run_worker(rdb, "mmgcn-synthetic-search", WorkerOptions(poll_interval=0.2))
    trials = _study(rdb, "mmgcn-synthetic-search").trials
    assert trials[dead.number].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert not any(t.state == TrialState.RUNNING for t in trials)


def test_real_training_trial_on_synthetic_records_device_and_versions(rdb):
    _run_worker(rdb, options=WorkerOptions(threads=1, device="cpu"), requested={"backbone": "late_fusion", "epochs": 2, "n_trials": 1})
    (trial,) = _study(rdb, "late_fusion-synthetic-search").trials
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["device"] == "cpu" and "torch" in trial.user_attrs["versions"]
    assert 1 <= trial.user_attrs["best_epoch_atv"] <= 2 and trial.user_attrs["epoch_base"] == 1
    assert len(trial.intermediate_values) == 2


def test_a_trainer_named_in_the_environment_trains_the_trials(rdb, monkeypatch):
    for key, value in simulated.env(seconds=0).items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(simulated.env()["PYTHONPATH"].split(":")[0])
    report = _run_worker(rdb, requested=_cheap(n_trials=1))
    (trial,) = _study(rdb, "mmgcn-synthetic-search").trials
    assert report.states == {"COMPLETE": 1} and "torch" not in trial.user_attrs["versions"]


def test_a_trainer_the_environment_names_wrongly_is_a_one_line_config_error(rdb, monkeypatch):
    monkeypatch.setenv("SPCL_SEARCH_TRAINER", "no_such_module:factory")
    with pytest.raises(ConfigError, match=r"SPCL_SEARCH_TRAINER='no_such_module:factory': cannot load it"):
        _run_worker(rdb, requested=_cheap(n_trials=1))


def test_trials_record_the_precision_of_their_study(rdb):
    run_worker(rdb, requested=_cheap(n_trials=1, precision="bf16"))
    (trial,) = _study(rdb, "mmgcn-synthetic-search").trials
    assert trial.user_attrs["precision"] == "bf16"


def test_real_training_trials_train_at_the_studys_precision(rdb, monkeypatch):
    import spcl_search.train as training

    seen = []
    real = training.training
    monkeypatch.setattr(training, "training", lambda data, config: seen.append(config.precision) or real(data, config))
    _run_worker(rdb, options=WorkerOptions(threads=1, device="cpu"),
                requested={"backbone": "late_fusion", "epochs": 1, "n_trials": 1, "precision": "bf16"})
    (trial,) = _study(rdb, "late_fusion-synthetic-search").trials
    assert seen == ["bf16"] and trial.state == TrialState.COMPLETE and trial.user_attrs["precision"] == "bf16"
