"""The training loop: selection on dev, test at the best dev epoch, seeds, callbacks, errors."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import DIMS, make_dialogues

from spcl_search.data.types import ERCDataset
from spcl_search.errors import ConfigError
from spcl_search.train import NonFiniteLossError, TrainConfig, train


@pytest.fixture
def tiny() -> ERCDataset:
    return ERCDataset(
        name="tiny",
        classes=("a", "b", "c", "d"),
        n_speakers=2,
        dims=dict(DIMS),
        train=make_dialogues(12, seed=1),
        dev=make_dialogues(4, seed=2),
        test=make_dialogues(4, seed=3),
    )


def _cfg(**kw) -> TrainConfig:
    base = dict(backbone="late_fusion", modalities="atv", epochs=4, lr=3e-3, batch_size=4, model={"hidden": 16}, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_test_figures_are_those_of_the_best_dev_epoch(tiny):
    result = train(tiny, _cfg(epochs=6))
    best = max(result.history, key=lambda r: r.dev_f1)
    assert result.best_epoch == best.epoch
    assert (result.dev_f1, result.test_f1, result.test_acc) == (best.dev_f1, best.test_f1, best.test_acc)


def test_the_earliest_epoch_wins_a_dev_tie(tiny):
    result = train(tiny, _cfg(epochs=6))
    best = max(r.dev_f1 for r in result.history)
    assert result.best_epoch == min(r.epoch for r in result.history if r.dev_f1 == best)


def test_same_seed_gives_the_same_numbers(tiny):
    a = train(tiny, _cfg(seed=3))
    b = train(tiny, _cfg(seed=3))
    assert [r.train_loss for r in a.history] == [r.train_loss for r in b.history]
    assert [r.dev_f1 for r in a.history] == [r.dev_f1 for r in b.history]


def test_different_seeds_give_different_runs(tiny):
    a = train(tiny, _cfg(seed=3))
    b = train(tiny, _cfg(seed=4))
    assert [r.train_loss for r in a.history] != [r.train_loss for r in b.history]


def test_training_learns_the_signal(tiny):
    result = train(tiny, _cfg(epochs=10, method="none"))
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.dev_acc > 40.0  # 4 balanced classes: chance is 25 %


def test_callback_runs_after_every_epoch_with_the_threshold_used(tiny):
    seen = []
    train(tiny, _cfg(epochs=3, method_options={"cl_threshold": 0.5, "cl_growth": 2.0}), callback=seen.append)
    assert [r.epoch for r in seen] == [1, 2, 3]  # epochs count from 1
    assert [r.threshold for r in seen] == pytest.approx([0.5, 1.0, 2.0])
    assert all(0.0 <= r.take_rate <= 1.0 for r in seen)


def test_an_exception_from_the_callback_stops_training(tiny):
    class Prune(Exception):
        pass

    def prune(record):
        if record.epoch == 2:
            raise Prune

    with pytest.raises(Prune):
        train(tiny, _cfg(epochs=5), callback=prune)


def test_patience_stops_after_epochs_without_improvement(tiny):
    result = train(tiny, _cfg(epochs=30, patience=2, lr=1e-6))
    assert len(result.history) < 30
    assert len(result.history) - result.best_epoch == 2  # 1-based: the last epoch is len(history)


def test_take_rate_is_one_without_spcl(tiny):
    result = train(tiny, _cfg(epochs=2, method="none"))
    assert all(r.take_rate == 1.0 for r in result.history)


def test_a_tiny_threshold_selects_fewer_utterances_than_a_large_one(tiny):
    low = train(tiny, _cfg(epochs=1, method_options={"cl_threshold": 0.05, "cl_growth": 1.0}))
    high = train(tiny, _cfg(epochs=1, method_options={"cl_threshold": 50.0, "cl_growth": 1.0}))
    assert low.history[0].take_rate < high.history[0].take_rate


def test_a_missing_modality_is_named(tiny):
    tiny.dims.pop("v")
    with pytest.raises(ConfigError, match="has no v features"):
        train(tiny, _cfg(modalities="tv"))


def test_a_bad_modality_string_is_named(tiny):
    with pytest.raises(ConfigError, match="--modalities"):
        train(tiny, _cfg(modalities="xyz"))


def test_a_nan_loss_is_reported_not_trained_through(tiny):
    tiny.train[0].features["t"][0, 0] = math.nan
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        train(tiny, _cfg(epochs=2, method="none"))


def test_cuda_on_a_machine_without_it_is_a_clear_error(tiny):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="--device cuda: CUDA is not available"):
        train(tiny, _cfg(device="cuda"))


def test_checkpoint_of_the_best_epoch_is_written(tiny, tmp_path):
    path = tmp_path / "ckpt" / "best.pt"
    result = train(tiny, _cfg(epochs=3, checkpoint=str(path)))
    saved = torch.load(path, weights_only=False)
    assert saved["meta"]["epoch"] == result.best_epoch
    assert not list(path.parent.glob(".*.tmp"))


def test_result_records_versions_device_and_effective_config(tiny):
    result = train(tiny, _cfg(epochs=1))
    assert result.device == "cpu"
    assert {"torch", "optuna", "numpy"} <= set(result.versions)
    assert result.config["lr"] == 3e-3 and result.config["method_options"]["normalise"] == "all"


def test_the_spcl_form_is_the_default_and_the_form_is_recorded(tiny):
    spcl = train(tiny, _cfg(epochs=1, model={"hidden": 8}))
    original = train(tiny, _cfg(epochs=1, variant="original"))
    assert spcl.config["variant"] == "spcl" and spcl.model["variant"] == "spcl"
    assert original.config["variant"] == "original" and original.model["variant"] == "original"


def test_unset_protocol_values_come_from_the_form(tiny):
    result = train(tiny, TrainConfig(backbone="mmgcn", variant="spcl", modalities="at", epochs=1, model={"hidden": 8}, threads=1))
    assert (result.config["lr"], result.config["batch_size"], result.config["patience"]) == (1e-4, 32, 20)
    original = train(tiny, TrainConfig(backbone="mmgcn", variant="original", modalities="at", epochs=1, model={"hidden": 8}, threads=1))
    assert (original.config["lr"], original.config["batch_size"], original.config["patience"]) == (2e-4, 16, None)


def test_patience_zero_turns_early_stopping_off(tiny):
    result = train(tiny, TrainConfig(backbone="mmgcn", modalities="at", epochs=1, patience=0, model={"hidden": 8}, threads=1))
    assert result.config["patience"] is None


def test_an_unknown_form_is_a_config_error_naming_the_option(tiny):
    with pytest.raises(ConfigError, match="--variant: unknown variant 'paper'; choose one of spcl, original"):
        train(tiny, _cfg(variant="paper"))


def test_standardised_features_are_recorded_with_the_run(tiny):
    result = train(tiny, _cfg(epochs=1, standardise=True))
    assert result.config["standardise"] is True and result.dataset["standardised"] is True
