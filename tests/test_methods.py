"""Balance methods: each rule checked on a hand-made example (spcl_search/methods)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import DIMS, make_dialogues

import backbones
from spcl_search.data.batching import collate
from spcl_search.errors import ConfigError
from spcl_search.methods import make_method, method_options
from spcl_search.methods.base import dominance, plain_loss, unimodal_loss
from spcl_search.methods.mmpareto import MMPareto, min_norm_weight
from spcl_search.methods.ogm_ge import OGMGE
from spcl_search.methods.opm import OPM, drop_probabilities


def _late_fusion(modalities: str = "at", hidden: int = 64):
    torch.manual_seed(0)
    dims = {m: DIMS[m] for m in modalities}
    return backbones.build("late_fusion", modalities, dims, 4, 2, variant="original", hidden=hidden, dropout=0.0)


def _batch(modalities: str = "at"):
    return collate(make_dialogues(4, seed=5), modalities, 2)


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_dominance_is_the_two_modality_ratio_and_measures_three_against_the_weakest():
    assert dominance({"a": 3.0, "t": 1.5}) == {"a": 2.0, "t": 1.0}
    assert dominance({"a": 2.0, "t": 4.0, "v": 1.0}) == {"a": 2.0, "t": 4.0, "v": 1.0}


def test_ogm_scales_the_encoder_weight_gradients_and_nothing_else():
    model, batch = _late_fusion(), _batch()
    reference = copy.deepcopy(model)
    plain_loss(reference(batch), batch).loss.backward()
    expected = _grads(reference)

    method = OGMGE(alpha=0.8, noise=False)
    method.step(model, batch)
    got = _grads(model)
    k = method.last_coefficients
    assert max(k.values()) == 1.0 and min(k.values()) < 1.0  # the weakest keeps its gradient, the leader is slowed
    for m in "at":
        torch.testing.assert_close(got[f"heads.{m}.0.weight"], k[m] * expected[f"heads.{m}.0.weight"])
        torch.testing.assert_close(got[f"heads.{m}.0.bias"], expected[f"heads.{m}.0.bias"])  # vectors untouched
        torch.testing.assert_close(got[f"heads.{m}.3.weight"], expected[f"heads.{m}.3.weight"])  # heads untouched


def test_ogm_ge_adds_noise_with_the_gradients_own_spread():
    model, batch = _late_fusion(hidden=256), _batch()
    reference = copy.deepcopy(model)
    plain_loss(reference(batch), batch).loss.backward()
    g = reference.heads["a"][0].weight.grad
    method = OGMGE(alpha=0.8, noise=True)
    torch.manual_seed(1)
    method.step(model, batch)
    noise = model.heads["a"][0].weight.grad - method.last_coefficients["a"] * g
    assert noise.std().item() == pytest.approx(g.std().item(), rel=0.1)


def test_opm_drop_probability_follows_the_dominance_of_the_modality():
    q = drop_probabilities({"a": 3.0, "t": 1.0}, alpha=1.0, q_base=0.5)
    assert q["a"] == pytest.approx(min(0.5 * (1 + math.tanh(2.0)), 1.0))
    assert q["t"] == 0.0
    assert drop_probabilities({"a": 1.0, "t": 1.0}, alpha=1.0, q_base=0.5) == {"a": 0.0, "t": 0.0}


def test_opm_drops_whole_modalities_per_utterance_and_rescales_the_kept_ones():
    method = OPM(alpha=1.0, q_base=0.5, p_exe=1.0)
    batch = _batch()
    method.last_drop = {"a": 1.0, "t": 0.0}
    dropped, mask = method.dropped(batch)
    assert torch.equal(dropped.feature_scale["a"], torch.zeros_like(batch.mask))
    torch.testing.assert_close(dropped.feature_scale["t"], torch.full_like(batch.mask, 1 / (1 - 0.5 + 1e-5)))
    assert torch.equal(mask, batch.mask)
    method.last_drop = {"a": 1.0, "t": 1.0}
    _, none_left = method.dropped(batch)
    assert none_left.sum() == 0


def test_opm_trains_on_the_modulated_forward():
    model, batch = _late_fusion(), _batch()
    method = OPM(alpha=1.0, q_base=1.0, p_exe=1.0)
    out = method.step(model, batch)
    dominant = max(method.last_drop, key=method.last_drop.get)
    assert method.last_drop[dominant] == 1.0  # q_base 1: the leading modality is dropped everywhere ...
    assert torch.count_nonzero(model.heads[dominant][0].weight.grad) == 0  # ... so its encoder learns nothing
    assert out.n_utterances == int(batch.mask.sum())


def test_min_norm_weight_is_the_minimum_norm_point_between_two_conflicting_gradients():
    v1, v2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    w = min_norm_weight(float(v1 @ v1), float(v1 @ v2), float(v2 @ v2))
    assert w == pytest.approx(0.6)
    grid = [k / 100 for k in range(101)]
    best = min(grid, key=lambda c: float((c * v1 + (1 - c) * v2).norm()))
    assert best == pytest.approx(w, abs=0.01)


def test_mmpareto_combines_each_encoders_gradients_and_restores_the_magnitude():
    model, batch = _late_fusion(), _batch()
    reference = copy.deepcopy(model)
    logits = reference(batch)
    joint = plain_loss(logits, batch).loss
    uni = {m: unimodal_loss(z, batch) for m, z in logits.items()}
    encoder = [reference.heads["a"][0].weight, reference.heads["a"][0].bias]
    g_mm = torch.autograd.grad(joint, encoder, retain_graph=True)
    g_a = torch.autograd.grad(uni["a"], encoder, retain_graph=True)
    (joint + sum(uni.values())).backward()
    g_total = encoder[0].grad.clone()

    method = MMPareto(gamma=1.5)
    method.step(model, batch)
    w = method.last_weights["a"]
    assert w == MMPareto.weight(torch.cat([g.flatten() for g in g_mm]), torch.cat([g.flatten() for g in g_a]))
    new = 2 * w * g_mm[0] + 2 * (1 - w) * g_a[0]
    expected = new * max(1.0, float(g_total.norm() / new.norm())) * 1.5
    torch.testing.assert_close(model.heads["a"][0].weight.grad, expected, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(model.heads["a"][3].weight.grad, reference.heads["a"][3].weight.grad)  # heads: the summed loss


def test_agreeing_gradients_weigh_one_half_each():
    g = torch.tensor([1.0, 2.0, 0.5])
    assert MMPareto.weight(g, 2 * g) == 0.5


def test_method_options_take_defaults_and_refuse_unknown_keys():
    assert method_options("mmpareto") == {"gamma": 1.5}
    assert method_options("opm", {"alpha": 2}) == {"alpha": 2.0, "q_base": 0.5, "p_exe": 0.7}
    with pytest.raises(ConfigError, match="--method ogm_ge: unknown option\\(s\\) beta; it takes alpha, smooth, modulation_starts, modulation_ends"):
        method_options("ogm_ge", {"beta": 1.0})
    with pytest.raises(ConfigError, match="--method 'sgd': choose one of spcl, none, mmpareto, ogm_ge, opm"):
        method_options("sgd")


def test_gradient_methods_need_two_modalities():
    with pytest.raises(ConfigError, match="--method mmpareto: balancing needs at least two modalities"):
        make_method("mmpareto", None, "t")
