"""What every balance method is to the training loop, and the pieces several share.

A method owns one training step's forward and backward: it calls the backbone, forms its loss, runs the
backward and leaves the (possibly modulated) gradients in ``.grad``; the loop then clips and steps the
optimiser. Methods compare on equal terms: same backbone, data, optimiser, clipping, epochs, selection on
dev. The statistics a step returns (:class:`~spcl_search.spcl.StepOutput`) are those the loop logs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # torch is imported where a method trains: describing the methods needs none
    import torch

    from backbones.base import ParameterPart
    from spcl_search.data.batching import Batch
    from spcl_search.spcl import StepOutput


class Trainable(Protocol):
    """What a method needs of the model: its forward (per-modality logits) and each modality's encoder
    parameters. A :class:`~backbones.base.Backbone` is one; the training loop may wrap it (bf16 autocast)."""

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]: ...

    def encoder_parts(self, modality: str) -> list[ParameterPart]: ...


class BalanceMethod(Protocol):
    """One way of training a multimodal backbone against modality imbalance."""

    #: registry name (:mod:`spcl_search.methods.registry`)
    name: str

    def step(self, model: Trainable, batch: Batch) -> StepOutput:
        """Forward, loss and backward of one batch; gradients are left in ``.grad`` for the optimiser."""
        ...

    def end_epoch(self) -> None:
        """Called after every training epoch (the SPCL threshold grows here)."""
        ...

    @property
    def threshold(self) -> float | None:
        """The SPCL threshold used by the coming epoch (``None`` for methods without one)."""
        ...


def plain_loss(logits: dict[str, torch.Tensor], batch: Batch) -> StepOutput:
    """NLL of the joint prediction (the sum of the modality logits) averaged over the real utterances.

    Its ``weighted_p[m]`` is modality ``m``'s score, the sum over the batch's utterances of its own
    probability of the true label, which OGM-GE and OPM compare across modalities.
    """
    from spcl_search.spcl import SPCL, SPCLConfig

    return SPCL(SPCLConfig(enabled=False), batch.modalities).loss(logits, batch.labels, batch.mask)


def unimodal_loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """NLL of one modality's own prediction, averaged over the real utterances (MMPareto's unimodal loss)."""
    import torch.nn.functional as F

    mask = batch.mask
    logp = F.log_softmax(logits, dim=-1).gather(-1, batch.labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return -(logp * mask).sum() / mask.sum().clamp_min(1)


def dominance(scores: dict[str, float]) -> dict[str, float]:
    """``ratio_m = score_m / min_m' score_m'``: how far each modality is ahead of the weakest.

    With two modalities this is OGM-GE's ``score_a / score_v`` for the stronger one and 1 for the other, so
    the two-modality rule carries over unchanged; with three, every modality is measured against the
    weakest (the SPCL code's logging ratio does the same).
    """
    low = min(scores.values())
    return {m: (s / low if low > 0 else float("inf")) for m, s in scores.items()}


def encoder_parts(model: Trainable, modality: str) -> list[ParameterPart]:
    """The modality's encoder parts that hold parameters taking part in training."""
    return [p for p in model.encoder_parts(modality) if p.param.requires_grad]


__all__ = ["BalanceMethod", "Trainable", "dominance", "encoder_parts", "plain_loss", "unimodal_loss"]
