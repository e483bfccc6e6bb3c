"""Late fusion: one utterance-level encoder and linear head per modality, no graph, in two forms.

The simplest backbone SPCL can wrap; it sets the floor any contextual backbone must beat and makes the
engine's tests fast.

- ``variant="spcl"`` (default), the SPCL code's (``code/backbone/late_fusion.py``): per modality a
  transformer encoder over the dialogue (:class:`~backbones.transformer.UtteranceTransformer`: 2 layers on
  the input dim, ``Linear(dim, hidden)``), then ``Linear(hidden, classes)``. The encoder attends within the
  dialogue, so this form does see context. ``reference_arithmetic=True`` makes it attend over padding as
  the SPCL code does.
- ``variant="original"``: no context at all; per modality ``Linear(dim, hidden) -> ReLU -> Dropout ->
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
    """Per-modality encoders and heads; the SPCL engine sums their logits.

    Args (``None``: the form's default from :mod:`backbones.defaults`):
        variant: ``"spcl"`` (transformer encoder per modality) or ``"original"`` (per-utterance MLP).
        hidden: encoder output size (200).
        encoder_layers: transformer layers (spcl only; 2).
        n_heads: attention heads (spcl only; ``None``: the SPCL code's rule).
        dropout: dropout inside the encoders (spcl) or before the output layer (original) (0.5).
        reference_arithmetic: spcl only; the encoders attend over padding as the SPCL code's do.
    """

    name = "late_fusion"

    def __init__(
        self,
        modalities: str,
        input_dims: dict[str, int],
        n_classes: int,
        n_speakers: int,
        variant: str = "spcl",
        hidden: int | None = None,
        encoder_layers: int | None = None,
        n_heads: int | None = None,
        dropout: float | None = None,
        reference_arithmetic: bool = False,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant)
        o = self.options(hidden=hidden, encoder_layers=encoder_layers, dropout=dropout)
        self.hidden, self.dropout = int(o["hidden"]), float(o["dropout"])
        self.reference_arithmetic = bool(reference_arithmetic) and self.variant == "spcl"
        if self.variant == "spcl":
            self.encoder_layers = int(o["encoder_layers"])
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
        else:
            self.heads = nn.ModuleDict(
                {
                    m: nn.Sequential(
                        nn.Linear(self.input_dims[m], self.hidden), nn.ReLU(), nn.Dropout(self.dropout), nn.Linear(self.hidden, n_classes)
                    )
                    for m in modalities
                }
            )

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """features[m] ``[seq, batch, dim_m]`` (and, for the spcl form, ``batch.mask``) -> logits[m] ``[seq, batch, n_classes]``."""
        if self.variant == "original":  # encoder: Linear -> ReLU -> Dropout; head: the last Linear
            return {
                m: self.heads[m][3](scale_rows(batch, m, self.heads[m][:3](batch.features[m]), lambda s: s)) for m in self.modalities
            }
        packing = Packing.from_mask(batch.mask)
        return {
            m: packing.unpack(self.heads[m](scale_rows(batch, m, self.encoders[m](batch.features[m], packing), packing.pack)))
            for m in self.modalities
        }

    def encoder_parts(self, modality: str) -> list[ParameterPart]:
        return whole(self.encoders[modality]) if self.variant == "spcl" else whole(self.heads[modality][0])

    def extra_config(self) -> dict[str, Any]:
        out = {**super().extra_config(), "hidden": self.hidden, "dropout": self.dropout}
        if self.variant == "spcl":
            heads = {m: enc.n_heads for m, enc in self.encoders.items()}
            out.update(encoder_layers=self.encoder_layers, n_heads=heads, reference_arithmetic=self.reference_arithmetic)
        return out
