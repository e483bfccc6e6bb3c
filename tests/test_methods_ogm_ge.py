"""OGM-GE's coefficient (the paper's Eq. 10) and OPM's drop probability, each against a hand-worked example;
OGM-GE's options (smooth variant, modulation window) as the training loop and the CLI take them.

The expected numbers are worked out by hand from the formulas, not by calling them:
    Eq. 10:  k = 1 - tanh(alpha * rho) if rho > 1 else 1;  smooth: 1 - tanh(alpha * (rho - 1))
    OPM:     q = clip(q_base * (1 + alpha * tanh(relu(rho - 1))), 0, 1) if rho > 1 else 0
with rho a modality's score over the weakest one's.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import DIMS, make_dialogues

import backbones
from spcl_search.data.batching import collate
from spcl_search.errors import ConfigError
from spcl_search.methods import make_method
from spcl_search.methods.base import plain_loss
from spcl_search.methods.ogm_ge import OGMGE, ogm_coefficients
from spcl_search.methods.opm import drop_probabilities
from spcl_search.schema.method_options import method_options, parse_option

# ------------------------------------------------------------------------ Eq. 10, hand-worked


def test_eq10_two_modalities_at_ratio_1_2():
    # rho_a = 6 / 5 = 1.2, alpha = 0.5: k_a = 1 - tanh(0.6) = 1 - 0.537050 = 0.462950; the weaker t keeps 1
    assert ogm_coefficients({"a": 6.0, "t": 5.0}, alpha=0.5) == pytest.approx({"a": 0.462950, "t": 1.0}, abs=1e-6)


def test_eq10_cuts_a_modality_just_ahead_by_about_one_minus_tanh_alpha():
    # rho_t = 1001 / 1000 = 1.001, alpha = 0.5: k_t = 1 - tanh(0.5005) = 1 - 0.462510 = 0.537490 (1 - tanh(0.5) = 0.537883)
    assert ogm_coefficients({"a": 1000.0, "t": 1001.0}, alpha=0.5) == pytest.approx({"a": 1.0, "t": 0.537490}, abs=1e-6)


def test_eq10_leaves_tied_modalities_alone():
    assert ogm_coefficients({"a": 4.0, "t": 4.0, "v": 4.0}, alpha=2.0) == {"a": 1.0, "t": 1.0, "v": 1.0}


def test_eq10_three_modalities_measures_each_against_the_weakest():
    # scores a 3, t 6, v 4; alpha = 0.3: rho_t = 2 -> 1 - tanh(0.6) = 0.462950; rho_v = 4/3 -> 1 - tanh(0.4) =
    # 1 - 0.379949 = 0.620051; a is the weakest: 1
    got = ogm_coefficients({"a": 3.0, "t": 6.0, "v": 4.0}, alpha=0.3)
    assert got == pytest.approx({"a": 1.0, "t": 0.462950, "v": 0.620051}, abs=1e-6)


def test_smooth_variant_uses_the_excess_over_one():
    # rho_a = 1.2, alpha = 0.5: 1 - tanh(0.1) = 1 - 0.099668 = 0.900332 (Eq. 10 gives 0.462950)
    assert ogm_coefficients({"a": 6.0, "t": 5.0}, alpha=0.5, smooth=True) == pytest.approx({"a": 0.900332, "t": 1.0}, abs=1e-6)
    # three modalities, alpha = 0.3: rho_t = 2 -> 1 - tanh(0.3) = 0.708687; rho_v = 4/3 -> 1 - tanh(0.1) = 0.900332
    got = ogm_coefficients({"a": 3.0, "t": 6.0, "v": 4.0}, alpha=0.3, smooth=True)
    assert got == pytest.approx({"a": 1.0, "t": 0.708687, "v": 0.900332}, abs=1e-6)


# ------------------------------------------------------------------------ OPM, hand-worked


def test_opm_drop_probability_two_modalities_at_ratio_1_2():
    # rho_a = 1.2, q_base 0.5, alpha 1: 0.5 * (1 + tanh(0.2)) = 0.5 * 1.197375 = 0.598688; the weaker t: 0
    assert drop_probabilities({"a": 6.0, "t": 5.0}, alpha=1.0, q_base=0.5) == pytest.approx({"a": 0.598688, "t": 0.0}, abs=1e-6)


def test_opm_drop_probability_three_modalities_against_the_weakest():
    # scores a 3, t 6, v 4; q_base 0.5, alpha 1: t (rho 2) 0.5 * (1 + tanh(1)) = 0.5 * 1.761594 = 0.880797;
    # v (rho 4/3) 0.5 * (1 + tanh(1/3)) = 0.5 * 1.321513 = 0.660756; a: 0
    got = drop_probabilities({"a": 3.0, "t": 6.0, "v": 4.0}, alpha=1.0, q_base=0.5)
    assert got == pytest.approx({"a": 0.0, "t": 0.880797, "v": 0.660756}, abs=1e-6)


def test_opm_drop_probability_is_clipped_to_one():
    # rho_a = 2, q_base 0.8, alpha 2: 0.8 * (1 + 2 tanh(1)) = 0.8 * 2.523188 = 2.018551 -> 1
    assert drop_probabilities({"a": 2.0, "t": 1.0}, alpha=2.0, q_base=0.8) == {"a": 1.0, "t": 0.0}


def test_opm_drops_nothing_while_the_modalities_tie():
    assert drop_probabilities({"a": 5.0, "t": 5.0}, alpha=1.0, q_base=0.5) == {"a": 0.0, "t": 0.0}


# ------------------------------------------------------------------------ the window and the options


def _late_fusion():
    torch.manual_seed(0)
    return backbones.build("late_fusion", "at", {m: DIMS[m] for m in "at"}, 4, 2, variant="original", hidden=64, dropout=0.0)


def _plain_grads(model, batch) -> dict[str, torch.Tensor]:
    reference = copy.deepcopy(model)
    plain_loss(reference(batch), batch).loss.backward()
    return {n: p.grad.clone() for n, p in reference.named_parameters() if p.grad is not None}


def _step_grads(method: OGMGE, model, batch) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    method.step(model, batch)
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_ogm_ge_modulates_and_adds_noise_only_inside_its_window():
    model, batch = _late_fusion(), collate(make_dialogues(4, seed=5), "at", 2)
    plain = _plain_grads(model, batch)
    method = OGMGE(alpha=0.8, starts=2, ends=2)  # the second epoch; with noise: outside the window nothing may change at all
    seen = []
    for _ in range(3):
        got = _step_grads(method, model, batch)
        seen.append(all(torch.equal(got[n], plain[n]) for n in plain))
        method.end_epoch()
    assert seen == [True, False, True]


def test_make_method_passes_the_smooth_switch_and_the_window():
    method = make_method("ogm_ge", {"smooth": True, "modulation_starts": 2, "modulation_ends": 5}, "at")
    assert isinstance(method, OGMGE)
    assert (method.smooth, method.starts, method.ends, method.alpha) == (True, 2, 5, 0.3)


def test_ogm_ge_defaults_to_eq10_over_the_whole_run():
    assert method_options("ogm_ge") == {"alpha": 0.3, "smooth": False, "modulation_starts": 1, "modulation_ends": None}


def test_an_option_value_is_a_number_true_false_or_a_word_the_method_checks():
    assert parse_option("smooth=true") == ("smooth", True)
    assert parse_option("smooth=False") == ("smooth", False)
    assert parse_option("modulation_ends=9") == ("modulation_ends", 9)
    assert parse_option("alpha=0.5") == ("alpha", 0.5)
    assert parse_option("normalise=selected") == ("normalise", "selected")
    with pytest.raises(ConfigError, match=r"^--method ogm_ge: option smooth must be true or false, got 'yes'$"):
        method_options("ogm_ge", dict([parse_option("smooth=yes")]))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"smooth": 1}, "--method ogm_ge: option smooth must be true or false, got 1"),
        ({"modulation_starts": 1.5}, "--method ogm_ge: option modulation_starts is an epoch, a whole number >= 1 (epochs count from 1), got 1.5"),
        ({"modulation_ends": 0}, "--method ogm_ge: option modulation_ends is an epoch, a whole number >= 1 (epochs count from 1), got 0"),
        ({"alpha": True}, "--method ogm_ge: option alpha must be a number, got True"),
        ({"modulation_starts": 4, "modulation_ends": 2}, "--method ogm_ge: option modulation_ends (2) comes before modulation_starts (4)"),
    ],
)
def test_an_ill_typed_option_is_one_line_naming_it(given, message):
    with pytest.raises(ConfigError) as info:
        method_options("ogm_ge", given)
    assert str(info.value) == message
