"""--standardise: per-dimension moments fitted on the train split only."""

from __future__ import annotations

import numpy as np
from conftest import DIMS, make_dialogues

from spcl_search.data.standardise import standardise
from spcl_search.data.types import ERCDataset


def _dataset() -> ERCDataset:
    train = make_dialogues(10, seed=1)
    for d in train:
        d.features["t"][:] = d.features["t"] * 0.05 + 3.0  # small, off-centre: what unit-norm embeddings look like
    return ERCDataset("tiny", ("a", "b", "c", "d"), 2, dict(DIMS), train, make_dialogues(3, seed=2), make_dialogues(3, seed=3))


def test_train_features_have_zero_mean_and_unit_std_per_dimension():
    out = standardise(_dataset())
    stacked = np.concatenate([d.features["t"] for d in out.train])
    np.testing.assert_allclose(stacked.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(stacked.std(0), 1.0, atol=1e-4)


def test_dev_and_test_use_the_train_moments_not_their_own():
    ds = _dataset()
    train = np.concatenate([d.features["a"] for d in ds.train])
    mean, std = train.mean(0), train.std(0)
    out = standardise(ds)
    np.testing.assert_allclose(out.test[0].features["a"], (ds.test[0].features["a"] - mean) / std, rtol=1e-4, atol=1e-5)


def test_a_constant_dimension_is_only_centred_and_the_dataset_says_it_was_standardised():
    ds = _dataset()
    for d in ds.train + ds.dev + ds.test:
        d.features["v"][:, 0] = 7.0
    out = standardise(ds)
    assert np.all(out.test[0].features["v"][:, 0] == 0.0)
    assert out.info["standardised"] is True and "standardised" not in ds.info
