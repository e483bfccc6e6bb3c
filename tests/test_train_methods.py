"""``train --method M`` for every balance method, backbone and form: it runs, is recorded and changes training."""

from __future__ import annotations

import math
from functools import cache

import pytest
from conftest import DIMS, make_dialogues
from test_backbone_contract import FORMS, SMALL

from spcl_search.data.types import ERCDataset
from spcl_search.methods import registry
from spcl_search.train import TrainConfig, TrainResult, train

METHODS = [m for m in registry.names() if m != "none"]


@cache
def _tiny() -> ERCDataset:
    return ERCDataset(
        name="tiny",
        classes=("a", "b", "c", "d"),
        n_speakers=2,
        dims=dict(DIMS),
        train=make_dialogues(8, seed=1),
        dev=make_dialogues(3, seed=2),
        test=make_dialogues(3, seed=3),
    )


@cache
def _train(form: tuple[str, str], method: str) -> TrainResult:
    name, variant = form
    config = TrainConfig(
        backbone=name,
        variant=variant,
        modalities="atv",
        epochs=2,
        lr=3e-3,
        batch_size=4,
        model=SMALL[form],
        threads=1,
        method=method,
        # a threshold that leaves utterances out: with every utterance admitted SPCL is plain training
        method_options={"cl_threshold": 0.05, "cl_growth": 1.1} if method == "spcl" else {},
    )
    return train(_tiny(), config)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("form", FORMS, ids=lambda f: f"{f[0]}-{f[1]}")
def test_every_method_trains_every_backbone_form_and_changes_the_run(form, method):
    result = _train(form, method)
    plain = _train(form, "none")
    assert result.config["method"] == method and result.config["variant"] == form[1]
    assert all(math.isfinite(e.train_loss) for e in result.history)
    # the method took part: the same seed without it gives another run
    assert [e.train_loss for e in result.history] != [e.train_loss for e in plain.history]
