"""One epoch numbering, counted from 1, in the progress bar, the summary, the JSON (which says its base), trial
records and the report (trials stored before counted from 0 and are shown counted from 1 too)."""

from __future__ import annotations

import json
import re

import pytest
from optuna.trial import TrialState, create_trial

from spcl_search.cli import main
from spcl_search.reports import records


def test_train_bar_summary_and_json_count_epochs_from_one(tmp_path, capsys):
    out = tmp_path / "run.json"
    with pytest.raises(SystemExit) as done:
        main(["train", "-b", "late_fusion", "--epochs", "2", "--threads", "1", "--patience", "0", "--json", str(out)])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["epoch_base"] == 1
    assert [e["epoch"] for e in result["history"]] == [1, 2] and result["best_epoch"] in (1, 2)
    assert "2/2" in printed  # the bar's last step
    (best,) = re.findall(r"best: epoch (\d+) of (\d+)", printed)
    assert best == (str(result["best_epoch"]), "2")


def _trial(attrs):
    return create_trial(state=TrialState.COMPLETE, values=[50.0], user_attrs={"dev_f1_atv": 50.0, **attrs})


def test_a_trial_stored_counting_from_zero_is_shown_counting_from_one():
    assert records.best_epoch(_trial({"best_epoch_atv": 0}), "atv") == 1  # before epoch_base existed
    assert records.best_epoch(_trial({"best_epoch_atv": 7, "epoch_base": 1}), "atv") == 7
    assert records.best_epoch(_trial({}), "at") is None
