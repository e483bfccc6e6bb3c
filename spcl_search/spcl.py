"""The SPCL engine: self-paced curriculum learning over modality imbalance.

A backbone gives one logit tensor per modality. The engine sums them into the joint prediction,
measures how unevenly the modalities explain each dialogue (the difficulty measurer) and lets only
utterances whose difficulty is under a growing threshold into the loss (the learning scheduler).
See ``shared/design/SPCL.md`` for the reference algorithm; the switches in :class:`SPCLConfig` keep
the reference's choices reproducible where we default to something else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from spcl_search.errors import ConfigError

Normalise = Literal["all", "selected"]
Score = Literal["sum", "mean"]


@dataclass(frozen=True)
class SPCLConfig:
    """SPCL switches, all recorded with every run. The defaults are the reference code's, as are those of the
    ``spcl`` method's options (:class:`~spcl_search.methods.curriculum.SPCLOptions`, which builds this; a test keeps
    the two equal: the engine does not import the method that builds it).

    enabled:   False trains with plain NLL on the joint prediction (the baseline).
    threshold: the starting threshold (``cl_threshold``, the paper's epsilon).
    growth:    per-epoch factor (``cl_growth``, the paper's alpha).
    cap:       the threshold never exceeds this (60 in the reference).
    normalise: ``"all"`` divides the selected loss by every utterance of the batch (the reference
               code); ``"selected"`` by the selected ones (the paper's formula).
    score:     dialogue score as the ``"sum"`` of per-utterance probabilities (reference; grows with
               dialogue length) or their ``"mean"`` (length-fair).
    """

    enabled: bool = True
    threshold: float = 0.4
    growth: float = 1.1
    cap: float = 60.0
    normalise: Normalise = "all"
    score: Score = "sum"

    def __post_init__(self) -> None:
        if self.normalise not in ("all", "selected"):
            raise ConfigError(f"--cl-normalise must be 'all' or 'selected', got {self.normalise!r}")
        if self.score not in ("sum", "mean"):
            raise ConfigError(f"--cl-score must be 'sum' or 'mean', got {self.score!r}")
        if self.enabled:
            if not self.threshold > 0:
                raise ConfigError(f"--cl-threshold must be > 0, got {self.threshold}")
            if not self.growth >= 1:
                raise ConfigError(f"--cl-growth must be >= 1 (the threshold only grows), got {self.growth}")
            if not self.cap > 0:
                raise ConfigError(f"the threshold cap must be > 0, got {self.cap}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StepOutput:
    """What one training batch produced: the loss to back-propagate and detached statistics.

    loss:      scalar tensor with gradient
    take_samp: number of selected utterances (tensor, no gradient)
    n_utterances: real utterances in the batch
    uni_nll:   modality -> summed NLL of that modality's own prediction over real utterances
    weighted_p: modality -> sum over selected utterances of that modality's probability of the label
    """

    loss: torch.Tensor
    take_samp: torch.Tensor
    n_utterances: int
    uni_nll: dict[str, torch.Tensor]
    weighted_p: dict[str, torch.Tensor]


def joint_logits(logits: dict[str, torch.Tensor]) -> torch.Tensor:
    """The joint prediction: the element-wise sum of the modality logits."""
    it = iter(logits.values())
    out = next(it)
    for x in it:
        out = out + x
    return out


def harmonic_difficulty(score: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
    """``rho = 2 s l / (s + l)``, defined as 0 where ``s + l == 0``."""
    denom = score + loss
    return torch.where(denom > 0, 2 * score * loss / denom.clamp_min(torch.finfo(denom.dtype).tiny), torch.zeros_like(denom))


class SPCL:
    """Difficulty measurer + learning scheduler around any backbone's per-modality logits."""

    def __init__(self, config: SPCLConfig, modalities: str) -> None:
        if config.enabled and len(modalities) < 2:
            raise ConfigError(
                f"--modalities {modalities!r}: SPCL needs at least two modalities (the spread over one "
                "modality is undefined); pick two or more, or pass --no-cl"
            )
        self.config = config
        self.modalities = modalities
        self.threshold = float(config.threshold)

    def step_epoch(self) -> None:
        """Grow the threshold after an epoch: ``lambda <- min(lambda * growth, cap)``."""
        if self.config.enabled:
            self.threshold = min(self.threshold * self.config.growth, self.config.cap)

    def dialogue_scores(self, probs: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Per-dialogue imbalance ``s_i``: the (Bessel) std over modalities of each modality's score.

        probs[m]: ``[seq, batch]`` probability of the true label under modality m (0 at padding).
        Returns ``[batch]``.
        """
        per_mod = torch.stack([p.sum(0) for p in probs.values()])  # [M, batch]
        if self.config.score == "mean":
            per_mod = per_mod / mask.sum(0).clamp_min(1)
        return per_mod.std(0, unbiased=True)

    def select(self, utt_loss: torch.Tensor, probs: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """The selection ``v`` (float ``[seq, batch]``): real utterances with difficulty <= threshold."""
        s = self.dialogue_scores(probs, mask).unsqueeze(0).expand_as(utt_loss)
        rho = harmonic_difficulty(s, utt_loss)
        return ((rho <= self.threshold) & (mask > 0)).to(utt_loss.dtype)

    def loss(self, logits: dict[str, torch.Tensor], labels: torch.Tensor, mask: torch.Tensor) -> StepOutput:
        """SPCL loss of one batch.

        logits: modality -> ``[seq, batch, classes]``; labels: ``[seq, batch]`` (-1 at padding);
        mask: ``[seq, batch]`` float, 1 for real utterances.
        """
        target = labels.clamp_min(0).unsqueeze(-1)
        logp = F.log_softmax(joint_logits(logits), dim=-1)
        utt_loss = -logp.gather(-1, target).squeeze(-1) * mask  # [seq, batch]
        n = mask.sum()
        with torch.no_grad():
            uni_logp = {m: F.log_softmax(z.detach(), dim=-1).gather(-1, target).squeeze(-1) * mask for m, z in logits.items()}
            probs = {m: lp.exp() * mask for m, lp in uni_logp.items()}
            if self.config.enabled:
                v = self.select(utt_loss.detach(), probs, mask)
            else:
                v = mask
            take = v.sum()
            uni_nll = {m: -lp.sum() for m, lp in uni_logp.items()}
            weighted_p = {m: (v * p).sum() for m, p in probs.items()}
        selected = (v * utt_loss).sum()
        if self.config.enabled and self.config.normalise == "selected":
            loss = selected / take.clamp_min(1)
        else:
            loss = selected / n.clamp_min(1)
        return StepOutput(loss=loss, take_samp=take, n_utterances=int(n.item()), uni_nll=uni_nll, weighted_p=weighted_p)


def modality_ratio(weighted_p: dict[str, float]) -> dict[str, float]:
    """``ratio[m] = sum v p_m / min_m' sum v p_m'`` (logging only; 1.0 for the weakest modality)."""
    low = min(weighted_p.values()) if weighted_p else 0.0
    return {m: (x / low if low > 0 else float("inf")) for m, x in weighted_p.items()}
