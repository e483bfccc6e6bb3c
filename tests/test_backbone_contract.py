"""Every registered backbone form, every modality subset: the properties the SPCL engine relies on.

A new form is one file (its form class and model) plus its entry in :data:`SMALL` here."""

from __future__ import annotations

import pytest
import torch

import backbones
from spcl_search.data.batching import collate
from spcl_search.data.types import MODALITY_SUBSETS
from spcl_search.spcl import SPCL, SPCLConfig

from conftest import DIMS, make_dialogues

FORMS = [(name, variant) for name in backbones.names() for variant in backbones.forms(name)]
N_CLASSES = 4
#: small sizes per (backbone, form), so that every contract test runs in a fraction of a second; every registered
#: form needs its entry
SMALL = {
    ("late_fusion", "spcl"): {"hidden": 16},
    ("late_fusion", "original"): {"hidden": 16},
    ("mmgcn", "spcl"): {"hidden": 16},
    ("mmgcn", "original"): {"hidden": 16, "n_layers": 2},
    ("mm_dfn", "spcl"): {"hidden": 16},
    ("mm_dfn", "original"): {"hidden": 16, "n_layers": 2},
    ("dialoguegcn", "spcl"): {"hidden": 16, "graph_hidden": 8},
    ("dialoguegcn", "original"): {},
    ("biddin", "spcl"): {"d_global": 16, "d_party": 16, "d_emotion": 8, "hidden": 8, "dropout": 0.1},
    ("biddin", "original"): {},
}


@pytest.fixture(params=FORMS, ids=lambda f: f"{f[0]}-{f[1]}")
def form(request):
    return request.param


def _build(form: tuple[str, str], modalities: str, seed: int = 0):
    name, variant = form
    torch.manual_seed(seed)
    return backbones.build(name, modalities, {m: DIMS[m] for m in modalities}, N_CLASSES, 2, variant=variant, **SMALL[form])


@pytest.mark.parametrize("modalities", MODALITY_SUBSETS)
def test_gives_one_logit_tensor_per_modality_with_the_batch_shape(form, modalities):
    dlg = make_dialogues(3)
    batch = collate(dlg, modalities, 2)
    model = _build(form, modalities).eval()
    out = model(batch)
    assert list(out) == list(modalities)
    for z in out.values():
        assert z.shape == (batch.seq_len, batch.batch_size, N_CLASSES)
        assert torch.isfinite(z).all()


@pytest.mark.parametrize("modalities", ["atv", "at"])
def test_gradients_reach_every_parameter(form, modalities):
    batch = collate(make_dialogues(4), modalities, 2)
    model = _build(form, modalities).train()
    out = SPCL(SPCLConfig(enabled=False), modalities).loss(model(batch), batch.labels, batch.mask)
    out.loss.backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or torch.count_nonzero(p.grad) == 0)]
    assert dead == []


@pytest.mark.parametrize("modalities", ["atv", "tv", "a"])
def test_padding_does_not_change_real_utterances_logits(form, modalities):
    dlg = make_dialogues(3)
    model = _build(form, modalities).eval()
    with torch.no_grad():
        tight = model(collate(dlg, modalities, 2))
        padded = model(collate(dlg, modalities, 2, pad_to=max(len(d) for d in dlg) + 5))
    for m in modalities:
        for j, d in enumerate(dlg):
            torch.testing.assert_close(padded[m][: len(d), j], tight[m][: len(d), j], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("modalities", ["atv", "av"])
def test_a_dialogues_logits_do_not_depend_on_its_batch_mates(form, modalities):
    dlg = make_dialogues(5)
    model = _build(form, modalities).eval()
    with torch.no_grad():
        alone = model(collate([dlg[0]], modalities, 2))
        shared = model(collate([dlg[3], dlg[0], dlg[4]], modalities, 2))
    n = len(dlg[0])
    for m in modalities:
        torch.testing.assert_close(shared[m][:n, 1], alone[m][:n, 0], atol=1e-5, rtol=1e-4)


def test_short_training_lowers_the_loss(form):
    modalities = "atv"
    batches = [collate(make_dialogues(4, seed=s), modalities, 2) for s in range(3)]
    model = _build(form, modalities).train()
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


def test_reset_parameters_changes_the_weights(form):
    model = _build(form, "atv")
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(123)
    model.reset_parameters()
    changed = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert changed >= len(before) // 2


def test_same_seed_gives_the_same_logits(form):
    batch = collate(make_dialogues(2), "atv", 2)
    a = _build(form, "atv", seed=7).eval()(batch)
    b = _build(form, "atv", seed=7).eval()(batch)
    for m in "atv":
        assert torch.equal(a[m], b[m])


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match="unknown backbone 'resnet'; choose one of"):
        backbones.lookup("resnet")


def test_every_registered_form_has_its_small_sizes_here():
    assert sorted(FORMS) == sorted(SMALL)


def test_the_spcl_form_is_the_default_and_is_recorded(form):
    name, variant = form
    built = _build(form, "atv")
    assert built.extra_config()["variant"] == variant
    default = backbones.build(name, "atv", DIMS, N_CLASSES, 2, **SMALL[(name, "spcl")])
    assert default.variant == "spcl"


@pytest.mark.parametrize("form", [f for f in FORMS if "reference_arithmetic" in backbones.lookup(*f).accepts], ids="-".join)
def test_reference_arithmetic_lets_padding_reach_the_real_utterances(form):
    """The SPCL code's defect, reproduced on purpose when asked: its attention sees the padded positions."""
    dlg = make_dialogues(3)
    model = backbones.build(form[0], "atv", DIMS, N_CLASSES, 2, variant=form[1], reference_arithmetic=True, **SMALL[form]).eval()
    assert model.extra_config()["reference_arithmetic"] is True
    with torch.no_grad():
        tight = model(collate(dlg, "atv", 2))
        padded = model(collate(dlg, "atv", 2, pad_to=max(len(d) for d in dlg) + 5))
    n = len(dlg[0])
    assert not torch.allclose(padded["t"][:n, 0], tight["t"][:n, 0], atol=1e-4)


def test_an_unknown_variant_names_the_choices():
    with pytest.raises(ValueError, match="unknown variant 'paper'; choose one of spcl, original"):
        backbones.build("mmgcn", "atv", DIMS, N_CLASSES, 2, variant="paper")


def test_each_modality_has_its_own_encoder_parts(form):
    model = _build(form, "atv")
    owned: dict[tuple[int, str], str] = {}
    for m in "atv":
        parts = model.encoder_parts(m)
        assert parts, f"{form} has no encoder parts for {m}"
        for part in parts:
            marker = torch.zeros_like(part.param, dtype=torch.bool)
            part.view(marker).fill_(True)
            for idx in marker.flatten().nonzero().flatten().tolist():
                key = (id(part.param), idx)
                assert key not in owned, f"{form}: an element of a parameter belongs to {owned[key]} and {m}"
                owned[key] = m
    assert all(any(p is q for q in model.parameters()) for m in "atv" for p in (part.param for part in model.encoder_parts(m)))


def test_a_modalitys_own_loss_reaches_its_encoder(form):
    batch = collate(make_dialogues(3), "atv", 2)
    model = _build(form, "atv").train()
    out = model(batch)
    for m in "atv":
        model.zero_grad()
        (out[m] * batch.mask.unsqueeze(-1)).sum().backward(retain_graph=True)
        grads = [part.grad() for part in model.encoder_parts(m)]
        assert any(g is not None and torch.count_nonzero(g) > 0 for g in grads)


def test_feature_scale_of_one_changes_nothing_and_of_zero_silences_a_modalitys_encoder(form):
    dlg = make_dialogues(3)
    model = _build(form, "atv").eval()
    batch = collate(dlg, "atv", 2)
    with torch.no_grad():
        plain = model(batch)
        batch.feature_scale = {"a": torch.ones_like(batch.mask)}
        ones = model(batch)
        batch.feature_scale = {"a": torch.zeros_like(batch.mask)}
        zeros = model(batch)
    real = batch.mask > 0
    for m in "atv":
        torch.testing.assert_close(ones[m][real], plain[m][real])
    assert not torch.allclose(zeros["a"][real], plain["a"][real])


def test_a_second_backward_through_the_same_graph_doubles_every_gradient(form):
    """Methods such as MMPareto run several backwards through one forward (retain_graph): hand-written
    backwards must not carry state from one pass into the next."""
    batch = collate(make_dialogues(3), "atv", 2)
    model = _build(form, "atv").eval()
    loss = SPCL(SPCLConfig(enabled=False), "atv").loss(model(batch), batch.labels, batch.mask).loss
    loss.backward(retain_graph=True)
    once = [p.grad.clone() for p in model.parameters()]
    loss.backward()
    for p, g in zip(model.parameters(), once, strict=True):
        torch.testing.assert_close(p.grad, 2 * g)
