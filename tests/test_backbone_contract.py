"""Every backbone, every modality subset: the properties the SPCL engine relies on."""

from __future__ import annotations

import pytest
import torch

import backbones
from spcl_search.data.batching import collate
from spcl_search.data.types import MODALITY_SUBSETS
from spcl_search.spcl import SPCL, SPCLConfig

from conftest import DIMS, make_dialogues

NAMES = backbones.names()
N_CLASSES = 4
SMALL = {
    "late_fusion": {"hidden": 16},
    "mmgcn": {"hidden": 16, "n_layers": 2},
    "mm_dfn": {"hidden": 16, "n_layers": 2},
    "dialoguegcn": {},
    "biddin": {},
}


def _build(name: str, modalities: str, seed: int = 0):
    torch.manual_seed(seed)
    model = backbones.build(name, modalities, {m: DIMS[m] for m in modalities}, N_CLASSES, 2, **SMALL.get(name, {}))
    return model


@pytest.fixture(params=NAMES)
def name(request):
    return request.param


@pytest.mark.parametrize("modalities", MODALITY_SUBSETS)
def test_gives_one_logit_tensor_per_modality_with_the_batch_shape(name, modalities):
    dlg = make_dialogues(3)
    batch = collate(dlg, modalities, 2)
    model = _build(name, modalities).eval()
    out = model(batch)
    assert list(out) == list(modalities)
    for z in out.values():
        assert z.shape == (batch.seq_len, batch.batch_size, N_CLASSES)
        assert torch.isfinite(z).all()


@pytest.mark.parametrize("modalities", ["atv", "at"])
def test_gradients_reach_every_parameter(name, modalities):
    batch = collate(make_dialogues(4), modalities, 2)
    model = _build(name, modalities).train()
    out = SPCL(SPCLConfig(enabled=False), modalities).loss(model(batch), batch.labels, batch.mask)
    out.loss.backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or torch.count_nonzero(p.grad) == 0)]
    assert dead == []


@pytest.mark.parametrize("modalities", ["atv", "tv", "a"])
def test_padding_does_not_change_real_utterances_logits(name, modalities):
    dlg = make_dialogues(3)
    model = _build(name, modalities).eval()
    with torch.no_grad():
        tight = model(collate(dlg, modalities, 2))
        padded = model(collate(dlg, modalities, 2, pad_to=max(len(d) for d in dlg) + 5))
    for m in modalities:
        for j, d in enumerate(dlg):
            torch.testing.assert_close(padded[m][: len(d), j], tight[m][: len(d), j], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("modalities", ["atv", "av"])
def test_a_dialogues_logits_do_not_depend_on_its_batch_mates(name, modalities):
    dlg = make_dialogues(5)
    model = _build(name, modalities).eval()
    with torch.no_grad():
        alone = model(collate([dlg[0]], modalities, 2))
        shared = model(collate([dlg[3], dlg[0], dlg[4]], modalities, 2))
    n = len(dlg[0])
    for m in modalities:
        torch.testing.assert_close(shared[m][:n, 1], alone[m][:n, 0], atol=1e-5, rtol=1e-4)


def test_short_training_lowers_the_loss(name):
    modalities = "atv"
    batches = [collate(make_dialogues(4, seed=s), modalities, 2) for s in range(3)]
    model = _build(name, modalities).train()
    engine = SPCL(SPCLConfig(enabled=False), modalities)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def total() -> float:
        model.eval()
        with torch.no_grad():
            value = sum(engine.loss(model(b), b.labels, b.mask).loss.item() for b in batches)
        model.train()
        return value

    before = total()
    for _ in range(15):
        for b in batches:
            opt.zero_grad()
            engine.loss(model(b), b.labels, b.mask).loss.backward()
            opt.step()
    assert total() < 0.8 * before


def test_reset_parameters_changes_the_weights(name):
    model = _build(name, "atv")
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(123)
    model.reset_parameters()
    changed = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert changed >= len(before) // 2


def test_same_seed_gives_the_same_logits(name):
    batch = collate(make_dialogues(2), "atv", 2)
    a = _build(name, "atv", seed=7).eval()(batch)
    b = _build(name, "atv", seed=7).eval()(batch)
    for m in "atv":
        assert torch.equal(a[m], b[m])


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match="unknown backbone 'resnet'; choose one of"):
        backbones.get_class("resnet")
