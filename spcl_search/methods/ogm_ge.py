"""OGM-GE (Peng et al., CVPR 2022): on-the-fly gradient modulation with generalisation enhancement.

After the backward of the joint loss, each modality's score is the sum over the batch's utterances of its
own probability of the true label. The dominant modality's encoder gradients are scaled down,

    k_m = 1 - tanh(alpha * relu(ratio_m - 1)),   ratio_m = score_m / min_m' score_m'

(:func:`~spcl_search.methods.base.dominance`: with two modalities exactly the paper's ``score_a /
score_v``; with three, each modality is measured against the weakest, which keeps ``k = 1``). "GE" adds
Gaussian noise with the gradient's own spread to every encoder gradient, ``g <- k g + N(0, std(g))``, as
the released code does for both modalities. As there, vectors (biases, norms) are left alone and the
modulation runs from the first epoch to the last. Departure, on purpose: the released code writes
``relu(ratio)`` where the paper (and this module) write ``relu(ratio - 1)``; both give ``k < 1`` only to
the dominant modality.
"""

from __future__ import annotations

import math

import torch

from spcl_search.data.batching import Batch
from spcl_search.methods.base import Trainable, dominance, encoder_parts, plain_loss
from spcl_search.spcl import StepOutput


def ogm_coefficients(scores: dict[str, float], alpha: float) -> dict[str, float]:
    """``k_m = 1 - tanh(alpha * relu(ratio_m - 1))`` per modality (1 for the weakest)."""
    return {m: 1.0 - math.tanh(alpha * max(r - 1.0, 0.0)) for m, r in dominance(scores).items()}


def is_vector(part_grad: torch.Tensor, stacked: bool) -> bool:
    """A bias-like part: at most one dimension longer than 1 per modality (per group when ``stacked``)."""
    shape = part_grad.shape[1:] if stacked else part_grad.shape
    return sum(n > 1 for n in shape) <= 1


class OGMGE:
    """OGM-GE with strength ``alpha``; ``noise=False`` gives plain OGM."""

    name = "ogm_ge"
    threshold = None

    def __init__(self, alpha: float, noise: bool = True) -> None:
        self.alpha, self.noise = float(alpha), bool(noise)
        self.last_coefficients: dict[str, float] = {}

    def step(self, model: Trainable, batch: Batch) -> StepOutput:
        out = plain_loss(model(batch), batch)
        out.loss.backward()
        self.last_coefficients = ogm_coefficients({m: float(p) for m, p in out.weighted_p.items()}, self.alpha)
        for m, k in self.last_coefficients.items():
            self.modulate(model, m, k)
        return out

    @torch.no_grad()
    def modulate(self, model: Trainable, modality: str, k: float) -> None:
        """``g <- k g (+ N(0, std(g)))`` on every non-vector part of ``modality``'s encoder gradient, in place."""
        for part in encoder_parts(model, modality):
            g = part.grad()
            if g is None or is_vector(g, stacked=isinstance(part.index, slice)):
                continue
            noise = torch.randn_like(g) * (g.std() + 1e-8) if self.noise and g.numel() > 1 else None
            g.mul_(k)
            if noise is not None:
                g.add_(noise)

    def end_epoch(self) -> None:
        pass


__all__ = ["OGMGE", "is_vector", "ogm_coefficients"]
