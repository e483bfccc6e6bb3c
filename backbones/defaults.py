"""Defaults every backbone shares, in one place (no torch import: studies read it too).

A backbone form's own defaults (constructor arguments, training protocol per dataset) live with its form
class (:mod:`backbones.registry`, :mod:`backbones.cards`). Here: ``SPCL`` (the engine's switches),
``RUN`` (the rest of a training run) and ``STUDY`` (a study's size and the quick synthetic demo), read by
``spcl_search.spcl.SPCLConfig``, ``spcl_search.train.TrainConfig``, ``spcl-search train`` and the study
schema (``spcl_search.schema.spec``).
"""

from __future__ import annotations

from typing import Any

#: SPCL's switches (``spcl_search.spcl.SPCLConfig``): cl_threshold (the paper's epsilon), cl_growth (alpha),
#: the threshold's cap, the loss normaliser and the dialogue score of the reference code
SPCL: dict[str, Any] = {"cl_threshold": 0.4, "cl_growth": 1.1, "cap": 60.0, "normalise": "all", "score": "sum"}

#: balance methods (``spcl_search.methods``), the default first; ``none`` is SPCL switched off
METHODS: tuple[str, ...] = ("spcl", "none", "ogm_ge", "opm", "mmpareto")
DEFAULT_METHOD = METHODS[0]

#: arithmetic of the forward passes (``--precision``): float32 throughout, or bfloat16 autocast; fp32 until measured
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
DEFAULT_PRECISION = PRECISIONS[0]

#: method -> option -> default (SPCL's own settings are the SPCL table above). OGM-GE: BalanceBenchmark's alpha,
#: the paper's Eq. 10 (``smooth`` true: OPM's ``tanh(relu(ratio - 1))`` instead), modulated from the first epoch to
#: the last (``modulation_ends`` None); OPM: the released Modality_drop's drop frequency 0.7, base rate and
#: strength mid-range; MMPareto: the released code's magnitude factor gamma. An option's type is its default's
#: (true/false, a number), except the :data:`EPOCH_OPTIONS`.
METHOD_OPTIONS: dict[str, dict[str, float | bool | int | None]] = {
    "spcl": {},
    "none": {},
    "ogm_ge": {"alpha": 0.3, "smooth": False, "modulation_starts": 1, "modulation_ends": None},
    "opm": {"alpha": 1.0, "q_base": 0.5, "p_exe": 0.7},
    "mmpareto": {"gamma": 1.5},
}

#: options that are epochs (counted from 1 as everywhere, both ends included, as OGM-GE's window): whole numbers >= 1;
#: None: no bound
EPOCH_OPTIONS: tuple[str, ...] = ("modulation_starts", "modulation_ends")

#: method -> searched parameter -> (low, high, log scale): what a study of the method searches; every default
#: above lies inside; SPCL's ranges hold every value of the paper's table
METHOD_SPACES: dict[str, dict[str, tuple[float, float, bool]]] = {
    "spcl": {"cl_threshold": (0.1, 1.5, False), "cl_growth": (1.0, 2.0, False)},
    "none": {},
    "ogm_ge": {"alpha": (0.05, 2.0, True)},
    "opm": {"alpha": (0.1, 3.0, True), "q_base": (0.05, 0.8, False), "p_exe": (0.2, 1.0, False)},
    "mmpareto": {"gamma": (1.0, 2.0, False)},
}

#: the rest of a training run (``spcl_search.train.TrainConfig``): gradient-norm clipping as the SPCL scripts
RUN: dict[str, Any] = {"clip_grad_norm": 2.0, "seed": 0}

#: a study's defaults that are not the training protocol, as (synthetic demo, real dataset); epochs None:
#: the form's protocol above. 5 epochs at the protocol's lr 2e-4 barely move DialogueGCN (dev weighted-F1 12
#: after 5 epochs, 38 at 1e-3, measured on the synthetic set), so the quick demo trains faster.
STUDY: dict[str, tuple[Any, Any]] = {
    "epochs": (5, None),
    "n_trials_search": (8, 100),
    "n_trials_balance": (8, 60),
    "train": ({"lr": 1e-3}, {}),
}
