"""The confirmation stage: a study's top settings and the baseline trained again on fresh shared seeds, through
the study's storage and workers (SQLite and the real PostgreSQL), and the answer every reader then gives."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import optuna
import pytest
import simulated
from optuna.trial import TrialState

from spcl_search.errors import ConfigError
from spcl_search.schema.best import best_settings
from spcl_search.schema.records import TrialRecord
from spcl_search.search.confirm import confirm, confirmation_of, fresh_seeds
from spcl_search.search.status import study_status
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study, stored_spec
from spcl_search.search.worker import run_worker


@pytest.fixture(params=["sqlite", "postgres"])
def searched(request, tmp_path):
    """(storage, study name): a finished search of 6 trials on seed 0 (simulated trainer), deleted afterwards."""
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    name = f"confirm-{uuid.uuid4().hex[:8]}"
    rdb = open_storage(url, heartbeat_interval=1, grace_period=3)
    open_study(rdb, {"name": name, "backbone": "mmgcn", "epochs": 2, "n_trials": 6, "sampler": "random", "pruner": "none"})
    run_worker(rdb, name, trainer=simulated.factory())
    yield rdb, name
    for study in (name, f"{name}-confirm"):
        if study in optuna.get_all_study_names(rdb):
            optuna.delete_study(study_name=study, storage=rdb)


def _dev(trial):
    return TrialRecord.of(trial).metric("dev_f1", "atv")


def test_confirm_trains_the_top_settings_and_the_baseline_on_fresh_seeds(searched):
    rdb, name = searched
    made = confirm(rdb, name, top=2)
    parent = optuna.load_study(study_name=name, storage=rdb)
    top2 = sorted(parent.trials, key=lambda t: -_dev(t))[:2]
    assert made.name == f"{name}-confirm" and made.seeds == fresh_seeds(stored_spec(parent)) == (1, 2, 3, 4, 5)
    waiting = made.opened.study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting[:2]] == [t.params for t in top2]  # enqueued: fixed params
    assert [t.user_attrs.get("confirms") for t in waiting] == [top2[0].number, top2[1].number, None]
    assert waiting[2].user_attrs["use_cl"] is False and stored_spec(made.opened.study).n_trials == 3


def test_the_confirmed_answer_is_the_best_mean_over_the_confirmation_seeds_with_paired_intervals(searched):
    rdb, name = searched
    made = confirm(rdb, name, top=2)
    run_worker(rdb, made.name, trainer=simulated.factory())
    parent = optuna.load_study(study_name=name, storage=rdb)
    child = confirmation_of(rdb, parent)
    (row,) = best_settings(parent, child)
    done = [t for t in child.trials if t.user_attrs["use_cl"]]
    winner = max(done, key=_dev)
    assert row.confirmed and row.source == made.name and row.trial == winner.number and row.seeds == (1, 2, 3, 4, 5)
    assert row.vs_baseline.n == 5 and row.vs_baseline.low < row.vs_baseline.mean < row.vs_baseline.high
    assert row.vs_runner_up.n == 5 and row.stage == "confirmed on 5 seeds (seeds 1-5)"
    # the simulated baseline is 3 points below any good SPCL setting, far beyond its seed noise
    assert row.verdict.startswith("better than no curriculum at 95%")
    assert study_status(rdb, name).answers[0].startswith(f"atv {row.setting}: dev")


def test_an_unconfirmed_answer_says_it_is_a_single_seed_maximum(searched):
    rdb, name = searched
    (row,) = best_settings(optuna.load_study(study_name=name, storage=rdb))
    assert not row.confirmed and row.stage == "unconfirmed: single-seed maximum" and row.seeds == (0,)


def test_confirming_again_resumes_and_other_seeds_are_refused(searched):
    rdb, name = searched
    confirm(rdb, name, top=1, seeds=[3, 4])
    again = confirm(rdb, name, top=1, seeds=[3, 4])
    assert not again.opened.created and len(again.opened.study.trials) == 2
    with pytest.raises(ConfigError, match=r"already confirmed on seeds \[3, 4\]"):
        confirm(rdb, name, top=1, seeds=[5, 6])


def test_a_study_still_searching_is_not_confirmed(searched):
    rdb, name = searched
    optuna.load_study(study_name=name, storage=rdb).ask()
    with pytest.raises(ConfigError, match=r"1 running\); confirm once its search is done"):
        confirm(rdb, name)


def test_a_study_whose_budget_left_enqueued_trials_waiting_is_confirmed(tmp_path):
    """Warm-start settings past the budget wait for ever: the search is done all the same."""
    rdb = open_storage(f"sqlite:///{tmp_path / 'w.db'}", heartbeat_interval=1, grace_period=3)
    opened = open_study(rdb, {"backbone": "mmgcn", "epochs": 2, "n_trials": 1, "pruner": "none"})
    opened.study.enqueue_trial({"cl_threshold": 0.7, "cl_growth": 1.3})
    opened.study.enqueue_trial({"cl_threshold": 0.9, "cl_growth": 1.2})
    run_worker(rdb, opened.spec.name, trainer=simulated.factory())
    assert confirm(rdb, opened.spec.name, top=1, seeds=[1]).picks == [0]


def test_a_confirmation_is_not_confirmed_again(searched):
    rdb, name = searched
    confirm(rdb, name, top=1, seeds=[7])
    with pytest.raises(ConfigError, match="itself a confirmation"):
        confirm(rdb, f"{name}-confirm")


def test_spcl_search_confirm_runs_the_confirmation_with_local_workers_and_prints_the_verdict(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    rdb = open_storage(url, heartbeat_interval=1, grace_period=3)
    open_study(rdb, {"backbone": "mmgcn", "epochs": 2, "n_trials": 4, "pruner": "none"})
    run_worker(rdb, "mmgcn-synthetic-search", trainer=simulated.factory())
    env = {**os.environ, **simulated.env(), "COLUMNS": "250"}
    cmd = [sys.executable, "-m", "spcl_search", "confirm", "--study", "mmgcn-synthetic-search", "--top", "1", "--seeds", "3,4",
           "--storage", url, "--workers", "1", "--log-dir", str(tmp_path / "logs")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "confirmed on 2 seeds (seeds 3, 4)" in done.stdout and "no curriculum at 95%" in done.stdout
    best = subprocess.run([sys.executable, "-m", "spcl_search", "best", "--storage", url], capture_output=True, text=True, env=env)
    assert "confirmed on 2 seeds" in best.stdout and "mmgcn-synthetic-search-confirm" not in best.stdout.split("details")[0]


def test_a_balance_study_confirms_its_best_tri_modal_settings_on_every_set(tmp_path):
    rdb = open_storage(f"sqlite:///{tmp_path / 'b.db'}", heartbeat_interval=1, grace_period=3)
    open_study(rdb, {"backbone": "mmgcn", "kind": "balance", "epochs": 2, "n_trials": 4})
    run_worker(rdb, "mmgcn-synthetic-balance", trainer=simulated.factory())
    made = confirm(rdb, "mmgcn-synthetic-balance", top=2, seeds=[1, 2, 3])
    run_worker(rdb, made.name, trainer=simulated.factory())
    rows = best_settings(optuna.load_study(study_name="mmgcn-synthetic-balance", storage=rdb), confirmation_of(rdb, "mmgcn-synthetic-balance"))
    assert [r.modalities for r in rows] == ["atv", "at", "tv", "av"] and all(r.confirmed and r.seeds == (1, 2, 3) for r in rows)
    assert len(made.opened.study.trials) == 3 and sum(not t.user_attrs["use_cl"] for t in made.opened.study.trials) == 1
