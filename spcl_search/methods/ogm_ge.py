"""OGM-GE (Peng et al., CVPR 2022): on-the-fly gradient modulation with generalisation enhancement.

After the backward of the joint loss, each modality's score is the sum over the batch's utterances of its
own probability of the true label, and its ratio ``rho_m = score_m / min_m' score_m'``
(:func:`~spcl_search.methods.base.dominance`: with two modalities the paper's ``score_a / score_v``). The
encoder gradients of every modality ahead of the weakest are scaled by the paper's Eq. 10,

    k_m = 1 - tanh(alpha * rho_m)   if rho_m > 1,   else 1,

so a modality just ahead is already cut to ``1 - tanh(alpha)``. "GE" then adds Gaussian noise with the
gradient's own spread to every modulated gradient, ``g <- k g + N(0, std(g))``, for the weakest modality too.
Modulation and noise run in the epochs ``modulation_starts <= epoch <= modulation_ends`` (counted from 1, both ends
included; by default the whole run); vectors (biases, norms) are never touched.

Checked against two public sources, GeWu-Lab/OGM-GE_CVPR2022 ``main.py`` (two modalities) and
GeWu-Lab/BalanceBenchmark ``balancemm/trainer/OGM_trainer.py`` (two or three):

* the coefficient: both quote Eq. 10 and compute ``1 - tanh(alpha * relu(rho))`` for ``rho > 1``, as here (the
  relu is a no-op there). ``smooth=True`` (``--method-option smooth=true``, recorded with the run) uses
  ``1 - tanh(alpha * relu(rho - 1))`` instead, the ratio shaping of BalanceBenchmark's OPM, not OGM-GE: it
  barely touches a modality just ahead (k = 0.90 against Eq. 10's 0.46 at rho = 1.2, alpha = 0.5);
* three modalities: BalanceBenchmark divides by the weakest score, as here, but scores only the utterances a
  modality predicts right, with the softmax of the cosine of its logits. Departure: here three modalities keep
  the two-modality score (the true label's probability, summed over every utterance);
* what is modulated: ``main.py`` scales only the 4-D (convolution) gradients of its audio and visual networks,
  BalanceBenchmark every encoder parameter but the 1-D ones. Departure: here every encoder part with more than
  one dimension longer than 1 (:func:`is_vector`), BalanceBenchmark's rule read per modality where a backbone
  stacks the modalities' parameters in one tensor (these encoders have no convolutions);
* the window: both test ``starts <= epoch <= ends``. Departure: ``main.py`` defaults to epochs 0 to 50, here
  the default is the whole run (BalanceBenchmark's window comes from its configuration);
* both add ``1e-8`` to the noise's spread, as here; BalanceBenchmark adds ``1e-5`` to the ratio's denominator
  and clips ``k`` at 0, which changes nothing while the scores are positive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from spcl_search.errors import ConfigError
from spcl_search.methods.base import Trainable, dominance, encoder_parts, plain_loss
from spcl_search.methods.registry import Range, needs_modalities, option, register

if TYPE_CHECKING:
    import torch

    from spcl_search.data.batching import Batch
    from spcl_search.spcl import StepOutput


@register
@dataclass(frozen=True)
class OGMGEOptions:
    """OGM-GE's options: BalanceBenchmark's alpha, the paper's Eq. 10, modulated from the first epoch to the last."""

    name: ClassVar[str] = "ogm_ge"
    summary: ClassVar[str] = "gradient modulation: the leading modalities' encoder gradients scaled down, plus noise"
    space: ClassVar[dict[str, Range]] = {"alpha": (0.05, 2.0, True)}

    alpha: float = option(0.3, "modulation strength (Eq. 10's alpha)")
    smooth: bool = option(False, "true: tanh(alpha * (ratio - 1)), OPM's shaping, in place of Eq. 10's tanh(alpha * ratio)")
    modulation_starts: int | None = option(1, "first modulated epoch (counted from 1)", epoch=True)
    modulation_ends: int | None = option(None, "last modulated epoch (none: the last epoch)", epoch=True)

    def check(self) -> None:
        starts, ends = self.modulation_starts, self.modulation_ends
        if isinstance(starts, int) and isinstance(ends, int) and ends < starts:
            raise ConfigError(f"--method {self.name}: option modulation_ends ({ends}) comes before modulation_starts ({starts})")

    def build(self, modalities: str) -> OGMGE:
        needs_modalities(self.name, modalities)
        return OGMGE(self.alpha, smooth=self.smooth, starts=self.modulation_starts or 1, ends=self.modulation_ends)


def ogm_coefficients(scores: dict[str, float], alpha: float, smooth: bool = False) -> dict[str, float]:
    """Eq. 10 per modality: ``1 - tanh(alpha * rho_m)`` where ``rho_m > 1``, else 1; ``smooth``: ``rho_m - 1``
    in place of ``rho_m``."""
    out = {}
    for m, rho in dominance(scores).items():
        out[m] = 1.0 - math.tanh(alpha * (rho - 1.0 if smooth else rho)) if rho > 1.0 else 1.0
    return out


def is_vector(part_grad: torch.Tensor, stacked: bool) -> bool:
    """A bias-like part: at most one dimension longer than 1 per modality (per group when ``stacked``)."""
    shape = part_grad.shape[1:] if stacked else part_grad.shape
    return sum(n > 1 for n in shape) <= 1


class OGMGE:
    """OGM-GE with strength ``alpha``, modulating epochs ``starts`` to ``ends`` (None: the last); ``noise=False``
    gives plain OGM, ``smooth=True`` the ``rho - 1`` variant."""

    name = "ogm_ge"
    threshold = None

    def __init__(self, alpha: float, noise: bool = True, smooth: bool = False, starts: int = 1, ends: int | None = None) -> None:
        self.alpha, self.noise, self.smooth = float(alpha), bool(noise), bool(smooth)
        self.starts, self.ends = int(starts), ends
        self.epoch = 1  # the epoch being trained, counted from 1
        self.last_coefficients: dict[str, float] = {}

    @property
    def modulating(self) -> bool:
        """Whether the current epoch lies in the modulation window."""
        return self.starts <= self.epoch and (self.ends is None or self.epoch <= self.ends)

    def step(self, model: Trainable, batch: Batch) -> StepOutput:
        out = plain_loss(model(batch), batch)
        out.loss.backward()
        scores = {m: float(p) for m, p in out.weighted_p.items()}
        self.last_coefficients = ogm_coefficients(scores, self.alpha, self.smooth) if self.modulating else {}
        for m, k in self.last_coefficients.items():
            self.modulate(model, m, k)
        return out

    def modulate(self, model: Trainable, modality: str, k: float) -> None:
        """``g <- k g (+ N(0, std(g)))`` on every non-vector part of ``modality``'s encoder gradient, in place."""
        import torch

        with torch.no_grad():
            for part in encoder_parts(model, modality):
                g = part.grad()
                if g is None or is_vector(g, stacked=isinstance(part.index, slice)):
                    continue
                noise = torch.randn_like(g) * (g.std() + 1e-8) if self.noise and g.numel() > 1 else None
                g.mul_(k)
                if noise is not None:
                    g.add_(noise)

    def end_epoch(self) -> None:
        self.epoch += 1


__all__ = ["OGMGE", "OGMGEOptions", "is_vector", "ogm_coefficients"]
