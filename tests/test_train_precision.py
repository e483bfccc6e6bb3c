"""``--precision fp32|bf16``: bfloat16 autocast for the forward passes, recorded with the run, validated.

Tolerances (CPU, measured on this kind of machine): one forward pass of the same weights gives logits within
0.7 % of their largest magnitude in bf16 (every backbone form; the test allows 2 %); 8 epochs of a small
MMGCN from the same seed end with best dev weighted-F1 within 6.5 points of fp32 (9 runs over three
backbones; the test allows 10). Training trajectories diverge epoch by epoch, as any two roundings do.
"""

from __future__ import annotations

import pytest
import torch
from conftest import DIMS, make_dialogues
from test_backbone_contract import FORMS, N_CLASSES, SMALL

import backbones
from spcl_search.data.batching import collate
from spcl_search.data.types import ERCDataset
from spcl_search.errors import ConfigError
from spcl_search.spcl import SPCL, SPCLConfig
from spcl_search.train import TrainConfig, autocast, float_logits, train

LOGIT_TOLERANCE = 0.02  # of the largest fp32 logit magnitude
DEV_F1_TOLERANCE = 10.0  # points of weighted-F1


@pytest.fixture(scope="module")
def small() -> ERCDataset:
    return ERCDataset(
        name="small",
        classes=("a", "b", "c", "d"),
        n_speakers=2,
        dims=dict(DIMS),
        train=make_dialogues(24, seed=1),
        dev=make_dialogues(8, seed=2),
        test=make_dialogues(8, seed=3),
    )


def _cfg(**kw) -> TrainConfig:
    base = dict(backbone="mmgcn", modalities="atv", epochs=8, lr=3e-3, batch_size=4, model={"hidden": 16}, threads=1, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_precision_defaults_to_fp32_and_is_recorded_with_the_run(small):
    result = train(small, _cfg(epochs=1, backbone="late_fusion"))
    assert TrainConfig().precision == "fp32" and result.config["precision"] == "fp32"


def test_bf16_is_recorded_with_the_run(small):
    result = train(small, _cfg(epochs=1, backbone="late_fusion", precision="bf16"))
    assert result.config["precision"] == "bf16"


def test_an_unknown_precision_is_a_one_line_error_naming_the_option(small):
    with pytest.raises(ConfigError, match=r"^--precision 'fp16': choose one of fp32, bf16$"):
        train(small, _cfg(precision="fp16"))


def test_bf16_trains_and_its_best_dev_f1_stays_within_tolerance_of_fp32(small):
    fp32, bf16 = train(small, _cfg(precision="fp32")), train(small, _cfg(precision="bf16"))
    assert bf16.history[-1].train_loss < bf16.history[0].train_loss  # it learns
    assert abs(bf16.dev_f1 - fp32.dev_f1) <= DEV_F1_TOLERANCE, (fp32.dev_f1, bf16.dev_f1)


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f"{f[0]}-{f[1]}")
def test_every_backbone_form_runs_under_bf16_with_logits_close_to_fp32(form):
    batch = collate(make_dialogues(4, seed=4), "atv", 2)
    torch.manual_seed(0)
    model = backbones.build(form[0], "atv", dict(DIMS), N_CLASSES, 2, variant=form[1], **SMALL[form]).eval()
    cpu = torch.device("cpu")
    fp32 = model(batch)
    with autocast("bf16", cpu):
        bf16 = model(batch)
    assert any(z.dtype == torch.bfloat16 for z in bf16.values())  # autocast did act
    out = SPCL(SPCLConfig(), "atv").loss(float_logits(bf16), batch.labels, batch.mask)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    for m in fp32:
        scale = fp32[m].abs().max().item()
        assert (bf16[m].float() - fp32[m]).abs().max().item() <= LOGIT_TOLERANCE * scale
