"""Defaults of a training run and of a study that neither a backbone form nor a balance method owns (no torch).

A backbone form's own defaults (constructor arguments, training protocol per dataset) live with its form
(:mod:`backbones.registry`, :mod:`backbones.cards`); a balance method's options and search space with the method
(:mod:`spcl_search.methods.registry`). Here: the arithmetic of the forward passes, the rest of a training run
(:class:`spcl_search.train.TrainConfig`) and a study's size and quick demo (:mod:`spcl_search.schema.spec`).
"""

from __future__ import annotations

from typing import Any

#: arithmetic of the forward passes (``--precision``): float32 throughout, or bfloat16 autocast; fp32 until measured
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
DEFAULT_PRECISION = PRECISIONS[0]

#: the rest of a training run (``spcl_search.train.TrainConfig``): gradient-norm clipping as the SPCL scripts
RUN: dict[str, Any] = {"clip_grad_norm": 2.0, "seed": 0}

#: a study's defaults that are not the training protocol, as (synthetic demo, real dataset); epochs None:
#: the form's protocol. 5 epochs at the protocol's lr 2e-4 barely move DialogueGCN (dev weighted-F1 12
#: after 5 epochs, 38 at 1e-3, measured on the synthetic set), so the quick demo trains faster.
STUDY: dict[str, tuple[Any, Any]] = {
    "epochs": (5, None),
    "n_trials_search": (8, 100),
    "n_trials_balance": (8, 60),
    "train": ({"lr": 1e-3}, {}),
}
