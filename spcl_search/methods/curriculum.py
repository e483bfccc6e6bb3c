"""SPCL, self-paced curriculum learning over modality imbalance, as a balance method (and ``none``: no method).

The arithmetic is :class:`spcl_search.spcl.SPCL`'s; this adapter gives it the training step every method
has. ``none`` is the same engine switched off: plain NLL of the joint prediction on every utterance.
"""

from __future__ import annotations

from spcl_search.data.batching import Batch
from spcl_search.methods.base import Trainable
from spcl_search.spcl import SPCL, SPCLConfig, StepOutput


class Curriculum:
    """SPCL (``config.enabled``) or no balance method at all (``none``)."""

    def __init__(self, config: SPCLConfig, modalities: str) -> None:
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


__all__ = ["Curriculum"]
