"""OPM (Wei et al., TPAMI 2024): on-the-fly prediction modulation by dropping the dominant modality's features.

Each step first predicts the batch without gradients; from each modality's score (the sum of its own
probability of the true label) the dominant modality gets a drop probability

    r_m = tanh(relu(ratio_m - 1)),   q_m = clip(q_base * (1 + alpha * r_m), 0, 1) if r_m > 0 else 0,

with ``ratio_m = score_m / min_m' score_m'`` (:func:`~spcl_search.methods.base.dominance`). With two
modalities this is GeWu-Lab/BalanceBenchmark's ``balancemm/trainer/OPM_trainer.py`` (``score_m`` over the other
score). With three it is not: BalanceBenchmark divides ``score_m`` by the *sum* of the other two scores, so a
modality gets a drop probability only when it outscores the other two together (rarely, with three
comparable modalities); here it is measured against the weakest, as OGM-GE's three-modality rule there does,
so every modality ahead of the weakest is dropped now and then. With probability ``p_exe`` the step drops:
each utterance keeps modality ``m``'s encoder output with probability ``1 - q_m`` (``batch.feature_scale``,
rescaled by ``1 / (1 - theta)``, ``theta`` the mean drop probability: the encoders' outputs have equal
widths here), and utterances that lost every modality leave the loss. The joint loss of that second,
modulated forward is back-propagated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from spcl_search.errors import ConfigError
from spcl_search.methods.base import Trainable, dominance
from spcl_search.methods.registry import Range, needs_modalities, option, register

if TYPE_CHECKING:
    import torch

    from spcl_search.data.batching import Batch
    from spcl_search.spcl import StepOutput


@register
@dataclass(frozen=True)
class OPMOptions:
    """OPM's options: the released Modality_drop's drop frequency 0.7, base rate and strength mid-range."""

    name: ClassVar[str] = "opm"
    summary: ClassVar[str] = "prediction modulation: the leading modalities' features dropped now and then"
    space: ClassVar[dict[str, Range]] = {"alpha": (0.1, 3.0, True), "q_base": (0.05, 0.8, False), "p_exe": (0.2, 1.0, False)}

    alpha: float = option(1.0, "how much a modality's lead raises its drop probability")
    q_base: float = option(0.5, "base drop probability (in [0, 1])")
    p_exe: float = option(0.7, "probability that a step drops (in [0, 1])")

    def check(self) -> None:
        if not (0 <= self.q_base <= 1 and 0 <= self.p_exe <= 1):
            raise ConfigError(f"--method opm: q_base and p_exe are probabilities in [0, 1], got {self.q_base} and {self.p_exe}")

    def build(self, modalities: str) -> OPM:
        needs_modalities(self.name, modalities)
        return OPM(alpha=self.alpha, q_base=self.q_base, p_exe=self.p_exe)


def drop_probabilities(scores: dict[str, float], alpha: float, q_base: float) -> dict[str, float]:
    """``q_m`` per modality (0 for any modality that does not lead the weakest)."""
    out = {}
    for m, ratio in dominance(scores).items():
        r = math.tanh(max(ratio - 1.0, 0.0))
        out[m] = min(max(q_base * (1.0 + alpha * r), 0.0), 1.0) if r > 0 else 0.0
    return out


class OPM:
    """OPM with strength ``alpha``, base drop rate ``q_base`` and drop frequency ``p_exe``."""

    name = "opm"
    threshold = None

    def __init__(self, alpha: float, q_base: float, p_exe: float) -> None:
        self.alpha, self.q_base, self.p_exe = float(alpha), float(q_base), float(p_exe)
        self.last_drop: dict[str, float] = {}

    def step(self, model: Trainable, batch: Batch) -> StepOutput:
        import torch

        from spcl_search.spcl import SPCL, SPCLConfig

        engine = SPCL(SPCLConfig(enabled=False), batch.modalities)
        with torch.no_grad():
            probe = engine.loss(model(batch), batch.labels, batch.mask)
        self.last_drop = drop_probabilities({m: float(p) for m, p in probe.weighted_p.items()}, self.alpha, self.q_base)
        mask = batch.mask
        if any(q > 0 for q in self.last_drop.values()) and float(torch.rand(())) < self.p_exe:
            batch, mask = self.dropped(batch)
        out = engine.loss(model(batch), batch.labels, mask)
        out.loss.backward()
        return out

    def dropped(self, batch: Batch) -> tuple[Batch, torch.Tensor]:
        """The batch with per-utterance feature keep-masks, and the loss mask without fully dropped utterances."""
        import torch

        theta = sum(self.last_drop.values()) / len(self.last_drop)
        keep = {m: (torch.rand_like(batch.mask) >= q).to(batch.mask.dtype) for m, q in self.last_drop.items()}
        scale = {m: k / (1.0 - theta + 1e-5) for m, k in keep.items()}
        alive = torch.stack(list(keep.values())).amax(0)
        return replace(batch, feature_scale=scale), batch.mask * alive

    def end_epoch(self) -> None:
        pass


__all__ = ["OPM", "OPMOptions", "drop_probabilities"]
