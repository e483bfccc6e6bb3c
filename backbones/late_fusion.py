"""Late fusion: one utterance-level encoder and linear head per modality, no graph, in two forms.

The simplest backbone SPCL can wrap; it sets the floor any contextual backbone must beat and makes the
engine's tests fast.

- ``"spcl"`` (default, :class:`SPCLLateFusion`), the SPCL code's (``code/backbone/late_fusion.py``): per modality a
  transformer encoder over the dialogue (:class:`~backbones.transformer.UtteranceTransformer`: 2 layers on
  the input dim, ``Linear(dim, hidden)``), then ``Linear(hidden, classes)``. The encoder attends within the
  dialogue, so this form does see context. ``reference_arithmetic=True`` makes it attend over padding as
  the SPCL code does.
- ``"original"`` (:class:`OriginalLateFusion`): no context at all; per modality ``Linear(dim, hidden) -> ReLU -> Dropout ->
  Linear(hidden, classes)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from backbones.base import Backbone, ParameterPart, scale_rows, whole
from backbones.multimodal_graph import Packing
from backbones.transformer import UtteranceTransformer
from spcl_search.data.batching import Batch


class LateFusion(Backbone):
    """Per-modality encoders and heads; the SPCL engine sums their logits. One subclass per form.

    Args (``None``: the form's default, from its form class in :mod:`backbones.cards.late_fusion`):
        hidden: encoder output size (200).
        dropout: dropout inside the encoders (spcl) or before the output layer (original) (0.5).
    """

    name = "late_fusion"

    def __init__(
        self,
        modalities: str,
        input_dims: dict[str, int],
        n_classes: int,
        n_speakers: int,
        variant: str | None = None,
        hidden: int | None = None,
        dropout: float | None = None,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant)
        o = self.options(hidden=hidden, dropout=dropout)
        self.hidden, self.dropout = int(o["hidden"]), float(o["dropout"])

    def extra_config(self) -> dict[str, Any]:
        return {**super().extra_config(), "hidden": self.hidden, "dropout": self.dropout}


class SPCLLateFusion(LateFusion):
    """The SPCL code's form: a transformer encoder per modality, then ``Linear(hidden, classes)``.

    Args (besides :class:`LateFusion`'s):
        encoder_layers: transformer layers (2).
        n_heads: attention heads (``None``: the SPCL code's rule).
        reference_arithmetic: the encoders attend over padding as the SPCL code's do.
    """

    variant = "spcl"

    def __init__(
        self,
        modalities: str,
        input_dims: dict[str, int],
        n_classes: int,
        n_speakers: int,
        variant: str | None = None,
        hidden: int | None = None,
        encoder_layers: int | None = None,
        n_heads: int | None = None,
        dropout: float | None = None,
        reference_arithmetic: bool = False,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant, hidden, dropout)
        self.reference_arithmetic = bool(reference_arithmetic)
        self.encoder_layers = int(self.options(encoder_layers=encoder_layers)["encoder_layers"])
        self.encoders = nn.ModuleDict(
            {
                m: UtteranceTransformer(
                    self.input_dims[m], self.hidden, self.encoder_layers, n_heads, dropout=self.dropout,
                    attend_padding=self.reference_arithmetic,
                )  # fmt: skip
                for m in modalities
            }
        )
        self.heads = nn.ModuleDict({m: nn.Linear(self.hidden, n_classes) for m in modalities})

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """features[m] ``[seq, batch, dim_m]`` and ``batch.mask`` -> logits[m] ``[seq, batch, n_classes]``."""
        packing = Packing.from_mask(batch.mask)
        return {
            m: packing.unpack(self.heads[m](scale_rows(batch, m, self.encoders[m](batch.features[m], packing), packing.pack)))
            for m in self.modalities
        }

    def encoder_parts(self, modality: str) -> list[ParameterPart]:
        return whole(self.encoders[modality])

    def extra_config(self) -> dict[str, Any]:
        heads = {m: enc.n_heads for m, enc in self.encoders.items()}
        return {
            **super().extra_config(),
            "encoder_layers": self.encoder_layers,
            "n_heads": heads,
            "reference_arithmetic": self.reference_arithmetic,
        }


class OriginalLateFusion(LateFusion):
    """No context at all: per modality ``Linear(dim, hidden) -> ReLU -> Dropout -> Linear(hidden, classes)``."""

    variant = "original"

    def __init__(
        self,
        modalities: str,
        input_dims: dict[str, int],
        n_classes: int,
        n_speakers: int,
        variant: str | None = None,
        hidden: int | None = None,
        dropout: float | None = None,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant, hidden, dropout)
        self.heads = nn.ModuleDict(
            {
                m: nn.Sequential(
                    nn.Linear(self.input_dims[m], self.hidden), nn.ReLU(), nn.Dropout(self.dropout), nn.Linear(self.hidden, n_classes)
                )
                for m in modalities
            }
        )

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """features[m] ``[seq, batch, dim_m]`` -> logits[m] ``[seq, batch, n_classes]`` (encoder: Linear -> ReLU ->
        Dropout; head: the last Linear)."""
        return {m: self.heads[m][3](scale_rows(batch, m, self.heads[m][:3](batch.features[m]), lambda s: s)) for m in self.modalities}

    def encoder_parts(self, modality: str) -> list[ParameterPart]:
        return whole(self.heads[modality][0])


__all__ = ["LateFusion", "OriginalLateFusion", "SPCLLateFusion"]
