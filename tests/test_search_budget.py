"""Budget accounting: which trials use a slot of ``n_trials``."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from spcl_search.search import budget


def _trial(number: int, state: TrialState, retry_of: int | None = None) -> optuna.trial.FrozenTrial:
    system_attrs = {} if retry_of is None else {"failed_trial": retry_of, "retry_history": [retry_of]}
    t = optuna.trial.create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None, system_attrs=system_attrs)
    t.number = number
    return t


def test_complete_pruned_and_failed_trials_are_finished():
    c = budget.count([_trial(0, TrialState.COMPLETE), _trial(1, TrialState.PRUNED), _trial(2, TrialState.FAIL)])
    assert (c.finished, c.used) == (3, 3)


def test_running_trials_reserve_slots_but_are_not_finished():
    c = budget.count([_trial(0, TrialState.COMPLETE), _trial(1, TrialState.RUNNING)])
    assert (c.finished, c.used) == (1, 2)
    assert not budget.may_start(c, 2) and not budget.is_done(c, 2)


def test_waiting_trials_use_no_slot():
    c = budget.count([_trial(0, TrialState.WAITING), _trial(1, TrialState.WAITING)])
    assert (c.used, c.waiting) == (0, 2)


def test_failed_trial_with_a_retry_gives_its_slot_to_the_retry():
    c = budget.count([_trial(0, TrialState.FAIL), _trial(1, TrialState.RUNNING, retry_of=0)])
    assert (c.failed, c.retried, c.running, c.used) == (0, 1, 1, 1)


def test_failed_trial_counts_as_finished_until_its_retry_exists():
    # between "mark stale trial FAIL" and "enqueue retry" the slot must not look free
    c = budget.count([_trial(0, TrialState.FAIL)])
    assert c.used == 1


def test_retry_of_a_retry_frees_only_its_direct_predecessor():
    retry2 = _trial(2, TrialState.COMPLETE)
    retry2.system_attrs = {"failed_trial": 0, "retry_history": [0, 1]}
    c = budget.count([_trial(0, TrialState.FAIL), _trial(1, TrialState.FAIL, retry_of=0), retry2])
    assert (c.retried, c.complete, c.used) == (2, 1, 1)
