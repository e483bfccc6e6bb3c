"""Writing a trial's user attrs together."""

from __future__ import annotations

import optuna
import pytest

from spcl_search.search.optuna_internals import set_trial_user_attrs as set_user_attrs
from spcl_search.search.storage import open_storage


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
def test_user_attrs_are_written_and_overwritten(tmp_path, backend):
    storage = open_storage(f"sqlite:///{tmp_path / 'r.db'}", heartbeat_interval=None) if backend == "sqlite" else None
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    trial.set_user_attr("seed", 1)
    set_user_attrs(trial, {"seed": 0, "dev_f1_atv": 61.5, "versions": {"torch": "x"}, "curve": [1.0, 2.0]})
    study.tell(trial, 1.0)
    assert study.trials[0].user_attrs == {"seed": 0, "dev_f1_atv": 61.5, "versions": {"torch": "x"}, "curve": [1.0, 2.0]}


def test_finished_trial_is_not_updated(tmp_path):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 'r.db'}", heartbeat_interval=None))
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_user_attrs(trial, {"late": 1})
