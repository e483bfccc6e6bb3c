"""SPCL, self-paced curriculum learning over modality imbalance, as a balance method (and ``none``: no method).

The arithmetic is :class:`spcl_search.spcl.SPCL`'s; this adapter gives it the training step every method
has. ``none`` is the same engine switched off: plain NLL of the joint prediction on every utterance.
SPCL's options are the engine's switches: the starting threshold ``cl_threshold`` (the paper's epsilon) and
its per-epoch factor ``cl_growth`` (alpha), which a study searches under these names, the threshold's cap,
the loss normaliser and the dialogue score (the reference code's by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from spcl_search.methods.registry import Range, option, register

if TYPE_CHECKING:
    from spcl_search.data.batching import Batch
    from spcl_search.methods.base import Trainable
    from spcl_search.spcl import SPCLConfig, StepOutput


@register
@dataclass(frozen=True)
class SPCLOptions:
    """SPCL's switches (:class:`spcl_search.spcl.SPCLConfig`)."""

    name: ClassVar[str] = "spcl"
    summary: ClassVar[str] = "self-paced curriculum: only utterances under a growing difficulty threshold train"
    #: every value of the paper's table lies inside
    space: ClassVar[dict[str, Range]] = {"cl_threshold": (0.1, 1.5, False), "cl_growth": (1.0, 2.0, False)}

    cl_threshold: float = option(0.4, "starting difficulty threshold (the paper's epsilon)", above=True)
    cl_growth: float = option(1.1, "per-epoch threshold factor (the paper's alpha; the threshold only grows)", minimum=1.0)
    cap: float = option(60.0, "upper bound of the threshold", above=True)
    normalise: str = option("all", "loss normaliser: 'all' utterances (reference code) or 'selected' (paper)", choices=("all", "selected"))
    score: str = option("sum", "dialogue score: 'sum' (reference) or 'mean' (length-fair)", choices=("sum", "mean"))

    def check(self) -> None:
        pass

    def config(self) -> SPCLConfig:
        """The engine's configuration."""
        from spcl_search.spcl import SPCLConfig

        return SPCLConfig(
            threshold=self.cl_threshold,
            growth=self.cl_growth,
            cap=self.cap,
            normalise=self.normalise,  # type: ignore[arg-type]
            score=self.score,  # type: ignore[arg-type]
        )

    def build(self, modalities: str) -> Curriculum:
        return Curriculum(self.config(), modalities)


@register
@dataclass(frozen=True)
class NoMethod:
    """No balance method: plain NLL of the joint prediction (the baseline every method is measured against)."""

    name: ClassVar[str] = "none"
    summary: ClassVar[str] = "no balance method: plain NLL of the joint prediction (the baseline)"
    space: ClassVar[dict[str, Range]] = {}

    def check(self) -> None:
        pass

    def build(self, modalities: str) -> Curriculum:
        from spcl_search.spcl import SPCLConfig

        return Curriculum(SPCLConfig(enabled=False), modalities)


class Curriculum:
    """SPCL (``config.enabled``) or no balance method at all (``none``)."""

    def __init__(self, config: SPCLConfig, modalities: str) -> None:
        from spcl_search.spcl import SPCL

        self.engine = SPCL(config, modalities)
        self.name = "spcl" if config.enabled else "none"

    @property
    def threshold(self) -> float:
        return self.engine.threshold

    def step(self, model: Trainable, batch: Batch) -> StepOutput:
        out = self.engine.loss(model(batch), batch.labels, batch.mask)
        out.loss.backward()
        return out

    def end_epoch(self) -> None:
        self.engine.step_epoch()


__all__ = ["Curriculum", "NoMethod", "SPCLOptions"]
