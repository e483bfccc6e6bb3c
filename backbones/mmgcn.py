"""MMGCN (Hu et al., ACL 2021): multimodal fused graph convolution network for ERC, in two forms.

What it does. Each modality is encoded, and one graph per dialogue is built over the nodes of every
modality: complete within a modality, same-utterance edges across modalities, edge weight
``1 - arccos(cos_sim) / pi`` and symmetric normalisation (:mod:`backbones.multimodal_graph`). A deep GCN
with initial residual and identity mapping (GCNII, ``alpha=0.1``, ``lambda=0.5``) runs on it, and each
modality gets its own head on ``[encoder output || GCN output]``.

The two forms (``variant``), one class each:

- ``"spcl"`` (default, :class:`SPCLMMGCN`), the SPCL code's (``code/backbone/MMGCN.py``), which the SPCL paper's numbers belong
  to: a transformer encoder per modality (:class:`~backbones.transformer.UtteranceTransformer`, 2 layers,
  ``Linear(dim, hidden=256)`` after it); cosines scaled by 0.99999, self-loops included; GCNII of width
  ``hidden`` with as many layers as the encoders (``n_layers = 2``): input dropout, ``Linear(h, h)`` + ReLU,
  then per layer the GCNII ReLU and dropout; head ``Linear(2h, classes)`` on ``[dropped input || graph]``.
  The speaker embedding the SPCL code builds is never used there, so it is not built here.
  ``reference_arithmetic=True`` reproduces its encoders attending over padding (see
  :mod:`backbones.transformer`); the default masks padding.
- ``"original"`` (:class:`OriginalMMGCN`), the paper's: text Linear -> 2-layer BiLSTM, audio and visual Linear (node size 200), a
  speaker embedding added to the text nodes, GCNII of width 100 with ``n_layers`` layers (4 by measurement,
  below), cosines clamped with exact self-loops, and ReLU + dropout on ``[input || graph]`` before the heads.

Per-modality heads. The original concatenates the modalities and applies one Linear; a Linear over a
concatenation is exactly the sum of one Linear per block, so the per-modality logits that SPCL sums give
the same family of joint predictions, while also exposing each modality's prediction.

Choices in the original form (facts from the paper and its released code; departures are named):
- GCNII in the released code's ``variant`` form (weights over ``[A_hat h || h0]``); ``gcn_variant=False``
  gives the paper's equation.
- Layers: the original hard-codes 64; the default is 4, by measurement. Surrogate IEMOCAP benchmark, 40
  epochs of plain NLL on the summed logits (SPCL protocol otherwise), seed 0: best dev weighted-F1 4 layers
  56.9, 16 layers 57.0, 64 layers 56.0, at 1x, 1.7x and 5.3x the CPU time. Depth buys nothing here.
- The text BiLSTM never reads padding (:class:`~backbones.multimodal_graph.PaddedBiRNN`, same result as
  packed sequences, faster on CPU); the original ran it over the padded batch.

Both forms: the graph is built with tensor operations over the whole batch (no loop per utterance or
edge) and the GCN keeps node features packed, propagating with dense ``bmm`` over a few length buckets
(:mod:`backbones.multimodal_graph`); gradients flow through the edge weights into the encoders, as in the
released code. The loss is not part of the backbone: the SPCL engine owns it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backbones.base import Backbone, ParameterPart, scale_rows, whole
from backbones.functional import dropout
from backbones.multimodal_graph import GCNIIConv, Packing, PaddedBiRNN, build_graph
from backbones.transformer import UtteranceTransformer
from spcl_search.data.batching import Batch

#: the released code multiplies every cosine by this before ``arccos``
SPCL_COS_SCALE = 0.99999


def scale_nodes(batch: Batch, modalities: str, nodes: torch.Tensor, packing: Packing) -> torch.Tensor:
    """Packed nodes ``[M, R, H]`` times the batch's per-utterance ``feature_scale`` (unchanged without one)."""
    if batch.feature_scale is None:
        return nodes
    return torch.stack([scale_rows(batch, m, nodes[i], packing.pack) for i, m in enumerate(modalities)])


class MMGCN(Backbone):
    """MMGCN backbone: per-modality encoders, one multimodal graph per dialogue, deep GCNII, per-modality heads.

    The shared part of both forms; :class:`SPCLMMGCN` and :class:`OriginalMMGCN` add their encoders.

    Args (``None``: the form's default, from its form class in :mod:`backbones.cards.mmgcn`):
        modalities: modality subset in canonical order (``"a"``, ``"at"``, ... ``"atv"``).
        input_dims: feature size per modality.
        n_classes: number of emotion classes.
        n_speakers: speakers the dataset uses (size of the original form's speaker embedding).
        hidden: node size after the encoders (spcl 256, original 200).
        graph_hidden: GCNII width (spcl: ``hidden``; original 100).
        n_layers: GCNII layers (spcl 2, original 4).
        alpha: GCNII initial-residual weight (0.1).
        lamda: GCNII identity-mapping strength (``theta_l = log(lamda / l + 1)``; 0.5).
        dropout: dropout of the encoders, around the graph layers and (original) before the heads.
        gcn_variant: GCNII weights over ``[A_hat h || h0]`` (released code) instead of the mixed support.
    """

    name = "mmgcn"
    #: every cosine is multiplied by this before ``arccos`` (None: cosines clamped, exact self-loops)
    cos_scale: float | None = None

    def __init__(
        self,
        modalities: str,
        input_dims: dict[str, int],
        n_classes: int,
        n_speakers: int,
        variant: str | None = None,
        hidden: int | None = None,
        graph_hidden: int | None = None,
        n_layers: int | None = None,
        alpha: float | None = None,
        lamda: float | None = None,
        dropout: float | None = None,
        gcn_variant: bool = True,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant)
        o = self.options(hidden=hidden, graph_hidden=graph_hidden, n_layers=n_layers, alpha=alpha, lamda=lamda, dropout=dropout)
        self.hidden = int(o["hidden"])
        self.graph_hidden = self.hidden if o["graph_hidden"] is None else int(o["graph_hidden"])
        self.n_layers = int(o["n_layers"])
        self.alpha, self.lamda, self.dropout = float(o["alpha"]), float(o["lamda"]), float(o["dropout"])
        self.gcn_variant = bool(gcn_variant)
        if self.n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {self.n_layers}")

    def build_graph_layers(self) -> None:
        """The GCNII and the heads; a form calls it after building its encoders (parameters are drawn in this order)."""
        self.input_fc = nn.Linear(self.hidden, self.graph_hidden)
        self.convs = nn.ModuleList(
            [GCNIIConv(self.graph_hidden, k + 1, self.alpha, self.lamda, variant=self.gcn_variant) for k in range(self.n_layers)]
        )
        self.heads = nn.ModuleDict({m: nn.Linear(self.hidden + self.graph_hidden, self.n_classes) for m in self.modalities})

    def encode(self, batch: Batch, packing: Packing) -> torch.Tensor:  # pragma: no cover - interface
        """Encoder outputs as packed graph nodes ``[M, R, hidden]``."""
        raise NotImplementedError

    def head_features(self, feats: torch.Tensor) -> torch.Tensor:
        """What the heads read from ``[dropped nodes || GCNII output]`` (the SPCL code's form: that itself)."""
        return feats

    def graph_features(self, nodes: torch.Tensor, packing: Packing) -> torch.Tensor:
        """Packed nodes ``[M, R, hidden]`` -> the heads' input ``[M, R, hidden + graph_hidden]``."""
        graph = build_graph(nodes, packing, cos_scale=self.cos_scale)
        x = dropout(nodes, self.dropout, self.training)
        h0 = F.relu(self.input_fc(x))
        h = h0
        for conv in self.convs:
            h = conv(dropout(h, self.dropout, self.training), h0, graph)
        return self.head_features(torch.cat([x, dropout(h, self.dropout, self.training)], dim=-1))

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-modality logits.

        Reads ``batch.features[m]`` ``[S, B, dim_m]``, ``batch.mask`` ``[S, B]``, ``batch.lengths`` ``[B]``
        and ``batch.speakers`` ``[S, B]``. Returns ``{m: logits [S, B, n_classes]}`` for every modality of
        ``self.modalities`` (zeros at padded positions).
        """
        packing = Packing.from_mask(batch.mask)
        feats = self.graph_features(scale_nodes(batch, self.modalities, self.encode(batch, packing), packing), packing)
        return {m: packing.unpack(self.heads[m](feats[i])) for i, m in enumerate(self.modalities)}

    def extra_config(self) -> dict[str, Any]:
        return {
            **super().extra_config(),
            "hidden": self.hidden,
            "graph_hidden": self.graph_hidden,
            "n_layers": self.n_layers,
            "alpha": self.alpha,
            "lamda": self.lamda,
            "dropout": self.dropout,
            "gcn_variant": self.gcn_variant,
        }


class SPCLMMGCN(MMGCN):
    """The SPCL code's form: a transformer encoder per modality; cosines scaled by 0.99999; heads on the graph's input.

    Args (besides :class:`MMGCN`'s):
        encoder_layers: transformer layers per modality (2).
        n_heads: attention heads of the encoders (``None``: the SPCL code's rule).
        reference_arithmetic: the encoders attend over padding as the SPCL code's do.
    """

    variant = "spcl"
    cos_scale = SPCL_COS_SCALE

    def __init__(
        self,
        modalities: str,
        input_dims: dict[str, int],
        n_classes: int,
        n_speakers: int,
        variant: str | None = None,
        hidden: int | None = None,
        graph_hidden: int | None = None,
        n_layers: int | None = None,
        encoder_layers: int | None = None,
        n_heads: int | None = None,
        alpha: float | None = None,
        lamda: float | None = None,
        dropout: float | None = None,
        gcn_variant: bool = True,
        reference_arithmetic: bool = False,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant, hidden, graph_hidden, n_layers, alpha, lamda, dropout, gcn_variant)
        self.encoder_layers = int(self.options(encoder_layers=encoder_layers)["encoder_layers"] or 0)
        self.reference_arithmetic = bool(reference_arithmetic)
        self.encoders = nn.ModuleDict(
            {
                m: UtteranceTransformer(
                    self.input_dims[m], self.hidden, self.encoder_layers, n_heads, dropout=self.dropout,
                    attend_padding=self.reference_arithmetic,
                )  # fmt: skip
                for m in modalities
            }
        )
        self.build_graph_layers()

    def encode(self, batch: Batch, packing: Packing) -> torch.Tensor:
        return torch.stack([self.encoders[m](batch.features[m], packing) for m in self.modalities])

    def encoder_parts(self, modality: str) -> list[ParameterPart]:
        return whole(self.encoders[modality])

    def extra_config(self) -> dict[str, Any]:
        heads = {m: enc.n_heads for m, enc in self.encoders.items()}
        return {**super().extra_config(), "encoder_layers": self.encoder_layers, "n_heads": heads, "reference_arithmetic": self.reference_arithmetic}


class OriginalMMGCN(MMGCN):
    """The paper's form: text Linear -> 2-layer BiLSTM, audio and visual Linear, a speaker embedding on the text nodes,
    clamped cosines with exact self-loops, ReLU + dropout on ``[input || graph]`` before the heads.

    Args (besides :class:`MMGCN`'s):
        use_speaker: add a speaker embedding to the text nodes (needs text).
    """

    variant = "original"

    def __init__(
        self,
        modalities: str,
        input_dims: dict[str, int],
        n_classes: int,
        n_speakers: int,
        variant: str | None = None,
        hidden: int | None = None,
        graph_hidden: int | None = None,
        n_layers: int | None = None,
        alpha: float | None = None,
        lamda: float | None = None,
        dropout: float | None = None,
        gcn_variant: bool = True,
        use_speaker: bool = True,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant, hidden, graph_hidden, n_layers, alpha, lamda, dropout, gcn_variant)
        self.use_speaker = bool(use_speaker) and "t" in modalities
        if self.hidden % 2:
            raise ValueError(f"hidden must be even (the BiLSTM gives hidden // 2 per direction), got {self.hidden}")
        self.encoders = nn.ModuleDict({m: nn.Linear(self.input_dims[m], self.hidden) for m in modalities})
        self.text_rnn = (
            PaddedBiRNN("lstm", self.hidden, self.hidden // 2, num_layers=2, dropout=self.dropout) if "t" in modalities else None
        )
        self.speaker_embedding = nn.Embedding(self.n_speakers, self.hidden) if self.use_speaker else None
        self.build_graph_layers()

    def encode(self, batch: Batch, packing: Packing) -> torch.Tensor:
        nodes = []
        for m in self.modalities:
            x = self.encoders[m](batch.features[m])  # [S, B, hidden]
            if m == "t":
                x = self.text_rnn(x, batch.lengths)
                if self.speaker_embedding is not None:
                    x = x + self.speaker_embedding(batch.speakers)
            nodes.append(packing.pack(x))
        return torch.stack(nodes)

    def head_features(self, feats: torch.Tensor) -> torch.Tensor:
        return F.relu(dropout(feats, self.dropout, self.training))

    def encoder_parts(self, modality: str) -> list[ParameterPart]:
        parts = whole(self.encoders[modality])
        if modality == "t":
            parts += whole(self.text_rnn) + (whole(self.speaker_embedding) if self.speaker_embedding is not None else [])
        return parts

    def extra_config(self) -> dict[str, Any]:
        return {**super().extra_config(), "use_speaker": self.use_speaker}


__all__ = ["MMGCN", "SPCL_COS_SCALE", "OriginalMMGCN", "SPCLMMGCN", "scale_nodes"]
