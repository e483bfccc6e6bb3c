"""Late fusion: one utterance-level encoder and linear head per modality, no context, no graph.

The simplest backbone SPCL can wrap; it sets the floor any contextual backbone must beat and makes
the engine's tests fast. Each modality: Linear(dim -> hidden) -> ReLU -> Dropout -> Linear(-> classes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from backbones.base import Backbone
from spcl_search.data.batching import Batch


class LateFusion(Backbone):
    """Per-modality MLP heads; the SPCL engine sums their logits."""

    name = "late_fusion"

    def __init__(
        self,
        modalities: str,
        input_dims: dict[str, int],
        n_classes: int,
        n_speakers: int,
        hidden: int = 200,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers)
        self.hidden = hidden
        self.dropout = dropout
        self.heads = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Linear(self.input_dims[m], hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))
                for m in modalities
            }
        )

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """features[m] ``[seq, batch, dim_m]`` -> logits[m] ``[seq, batch, n_classes]``."""
        return {m: self.heads[m](batch.features[m]) for m in self.modalities}

    def extra_config(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "dropout": self.dropout}
