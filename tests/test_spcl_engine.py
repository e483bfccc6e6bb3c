"""The SPCL engine's math, pinned on hand-made tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from spcl_search.errors import ConfigError
from spcl_search.spcl import SPCL, SPCLConfig, harmonic_difficulty, joint_logits, modality_ratio


def _one_dialogue_batch():
    """Two dialogues (lengths 2 and 1), 2 modalities, 3 classes; dialogue 1 is padded at step 1."""
    a = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 3.0], [9.0, 9.0, 9.0]]])
    t = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]], [[1.0, 0.0, 0.0], [-9.0, 9.0, 0.0]]])
    labels = torch.tensor([[0, 1], [2, -1]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    return {"a": a, "t": t}, labels, mask


def _reference_rho(logits, labels, mask, score="sum"):
    """Utterance difficulties computed the slow way, utterance by utterance."""
    seq, bsz = labels.shape
    joint = logits["a"] + logits["t"]
    rho = torch.zeros(seq, bsz)
    for j in range(bsz):
        n = int(mask[:, j].sum())
        scores = []
        for m in ("a", "t"):
            p = [F.softmax(logits[m][i, j], -1)[labels[i, j]].item() for i in range(n)]
            scores.append(sum(p) / (n if score == "mean" else 1))
        s = torch.tensor(scores).std().item()
        for i in range(n):
            l = -F.log_softmax(joint[i, j], -1)[labels[i, j]].item()
            rho[i, j] = 0.0 if s + l == 0 else 2 * s * l / (s + l)
    return rho


def test_joint_prediction_is_the_sum_of_modality_logits():
    logits, _, _ = _one_dialogue_batch()
    assert torch.equal(joint_logits(logits), logits["a"] + logits["t"])


def test_harmonic_mean_of_score_and_loss():
    rho = harmonic_difficulty(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([3.0, 0.0, 0.0]))
    assert rho.tolist() == pytest.approx([1.5, 0.0, 0.0])


@pytest.mark.parametrize("score", ["sum", "mean"])
def test_selection_matches_per_utterance_reference(score):
    logits, labels, mask = _one_dialogue_batch()
    rho = _reference_rho(logits, labels, mask, score)
    threshold = float(rho[mask > 0].median())
    engine = SPCL(SPCLConfig(threshold=threshold, score=score), "at")
    out = engine.loss(logits, labels, mask)
    expected = ((rho <= threshold) & (mask > 0)).sum().item()
    assert out.take_samp.item() == expected
    assert 0 < expected < 3


def test_padded_utterances_are_never_selected_nor_counted():
    logits, labels, mask = _one_dialogue_batch()
    engine = SPCL(SPCLConfig(threshold=1e9), "at")
    out = engine.loss(logits, labels, mask)
    assert out.take_samp.item() == 3
    assert out.n_utterances == 3


def test_padding_values_do_not_change_the_loss():
    logits, labels, mask = _one_dialogue_batch()
    engine = SPCL(SPCLConfig(threshold=0.9), "at")
    base = engine.loss(logits, labels, mask)
    noisy = {m: z.clone() for m, z in logits.items()}
    for z in noisy.values():
        z[1, 1] = torch.tensor([100.0, -50.0, 7.0])
    assert engine.loss(noisy, labels, mask).loss.item() == pytest.approx(base.loss.item())


def test_reference_normalisation_divides_by_all_utterances():
    logits, labels, mask = _one_dialogue_batch()
    rho = _reference_rho(logits, labels, mask)
    threshold = float(rho[mask > 0].median())
    joint = logits["a"] + logits["t"]
    nll = -F.log_softmax(joint, -1).gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    v = ((rho <= threshold) & (mask > 0)).float()
    out_all = SPCL(SPCLConfig(threshold=threshold, normalise="all"), "at").loss(logits, labels, mask)
    out_sel = SPCL(SPCLConfig(threshold=threshold, normalise="selected"), "at").loss(logits, labels, mask)
    assert out_all.loss.item() == pytest.approx((v * nll).sum().item() / 3)
    assert out_sel.loss.item() == pytest.approx((v * nll).sum().item() / v.sum().item())


def test_spcl_off_is_plain_nll_on_the_joint_prediction():
    logits, labels, mask = _one_dialogue_batch()
    joint = logits["a"] + logits["t"]
    keep = mask > 0
    expected = F.cross_entropy(joint[keep], labels[keep])
    out = SPCL(SPCLConfig(enabled=False), "at").loss(logits, labels, mask)
    assert out.loss.item() == pytest.approx(expected.item())
    assert out.take_samp.item() == 3


def test_threshold_grows_by_the_factor_each_epoch_and_stops_at_the_cap():
    engine = SPCL(SPCLConfig(threshold=0.4, growth=2.0, cap=60.0), "at")
    seen = []
    for _ in range(10):
        seen.append(engine.threshold)
        engine.step_epoch()
    assert seen[:4] == pytest.approx([0.4, 0.8, 1.6, 3.2])
    assert max(seen) == 60.0 and engine.threshold == 60.0


def test_threshold_does_not_move_when_spcl_is_off():
    engine = SPCL(SPCLConfig(enabled=False, threshold=0.4, growth=2.0), "at")
    engine.step_epoch()
    assert engine.threshold == 0.4


def test_single_modality_with_spcl_is_rejected_with_the_option_named():
    with pytest.raises(ConfigError, match="--modalities 't'.*at least two modalities"):
        SPCL(SPCLConfig(), "t")


def test_single_modality_without_spcl_is_allowed():
    SPCL(SPCLConfig(enabled=False), "t")


def test_uni_nll_is_each_modalitys_own_nll():
    logits, labels, mask = _one_dialogue_batch()
    out = SPCL(SPCLConfig(), "at").loss(logits, labels, mask)
    keep = mask > 0
    for m in "at":
        expected = F.cross_entropy(logits[m][keep], labels[keep], reduction="sum")
        assert out.uni_nll[m].item() == pytest.approx(expected.item())


def test_modality_ratio_is_relative_to_the_weakest_modality():
    assert modality_ratio({"a": 2.0, "t": 6.0, "v": 1.0}) == {"a": 2.0, "t": 6.0, "v": 1.0}
    assert math.isinf(modality_ratio({"a": 0.0, "t": 1.0})["t"])


def test_loss_gradient_flows_only_through_selected_utterances():
    logits, labels, mask = _one_dialogue_batch()
    leaves = {m: z.clone().requires_grad_(True) for m, z in logits.items()}
    engine = SPCL(SPCLConfig(threshold=1e-6), "at")
    out = engine.loss(leaves, labels, mask)
    out.loss.backward()
    assert out.take_samp.item() == 0
    assert all(torch.count_nonzero(z.grad) == 0 for z in leaves.values())


@pytest.mark.parametrize("kwargs,option", [({"growth": 0.5}, "--cl-growth"), ({"threshold": 0.0}, "--cl-threshold"), ({"normalise": "x"}, "--cl-normalise")])
def test_invalid_switches_name_the_option(kwargs, option):
    with pytest.raises(ConfigError, match=option):
        SPCLConfig(**kwargs)
