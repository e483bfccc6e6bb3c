"""Seeds: runs advanced side by side keep their own random streams; ``train --seeds`` trains and reports each."""

from __future__ import annotations

import json
import statistics

import pytest
from conftest import DIMS, make_dialogues
from rich.console import Console

from spcl_search.cli import main
from spcl_search.data.types import ERCDataset
from spcl_search.results import drive
from spcl_search.train import TrainConfig, train, training


@pytest.fixture
def tiny() -> ERCDataset:
    return ERCDataset(
        name="tiny", classes=("a", "b", "c", "d"), n_speakers=2, dims=dict(DIMS),
        train=make_dialogues(12, seed=1), dev=make_dialogues(4, seed=2), test=make_dialogues(4, seed=3),
    )  # fmt: skip


def _cfg(seed: int, **kw) -> TrainConfig:
    # dropout draws from the global torch stream every step: a shared stream would show at once
    base = dict(backbone="late_fusion", modalities="atv", epochs=3, lr=3e-3, batch_size=4, model={"hidden": 16, "dropout": 0.5}, threads=1)
    return TrainConfig(seed=seed, **{**base, **kw})


@pytest.mark.parametrize("method", ["spcl", "opm"])  # OPM draws its drop masks from the global stream too
def test_a_seed_trained_beside_others_gives_what_it_gives_alone(tiny, method):
    alone = [train(tiny, _cfg(s, method=method)) for s in (0, 1, 2)]
    runs = [training(tiny, _cfg(s, method=method)) for s in (0, 1, 2)]
    side_by_side: list[list[float]] = [[], [], []]
    for _ in range(3):
        for i, run in enumerate(runs):
            side_by_side[i].append(next(run).dev_f1)
    assert side_by_side == [[e.dev_f1 for e in r.history] for r in alone]


def test_driving_a_training_to_its_end_returns_its_result(tiny):
    seen = []
    result = drive(training(tiny, _cfg(0)), seen.append)
    assert [e.epoch for e in seen] == [1, 2, 3] and result.history == seen  # epochs count from 1


def _train(*args: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "-b", "late_fusion", "--epochs", "1", "--threads", "1", *args])
    assert exc.value.code in (0, None)


def test_train_seeds_prints_each_seed_and_their_mean_and_std(tmp_path, capsys, monkeypatch):
    import spcl_search.cli.train as cli_train

    monkeypatch.setattr(cli_train, "console", Console(width=200))
    out = tmp_path / "seeds.json"
    _train("--seeds", "0,1,2", "--json", str(out))
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["seeds"] == [0, 1, 2] and [r["config"]["seed"] for r in saved["runs"]] == [0, 1, 2]
    devs = [r["dev_f1"] for r in saved["runs"]]
    assert saved["mean"]["dev_f1"] == pytest.approx(statistics.fmean(devs)) and saved["std"]["dev_f1"] == pytest.approx(statistics.stdev(devs))
    assert "mean ± std" in printed and f"{saved['mean']['dev_f1']:.2f} ± {saved['std']['dev_f1']:.2f}" in printed


def test_each_seed_of_train_seeds_is_the_run_of_that_seed_alone(tmp_path):
    both, one = tmp_path / "both.json", tmp_path / "one.json"
    _train("--seeds", "0,1", "--json", str(both))
    _train("--seed", "1", "--json", str(one))
    assert json.loads(both.read_text())["runs"][1]["dev_f1"] == json.loads(one.read_text())["dev_f1"]


@pytest.mark.parametrize("given", ["0,-1", "a,b", "1,1"])
def test_bad_seeds_are_one_line_errors_naming_the_option(given, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "-b", "late_fusion", "--epochs", "1", "--seeds", given])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--seeds" in err and len(err.strip().splitlines()) == 1
