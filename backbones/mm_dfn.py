"""MM-DFN (Hu et al., ICASSP 2022): multimodal dynamic fusion network for ERC, in two forms.

``"spcl"`` (default, :class:`SPCLMMDFN`) is the SPCL code's simplified MM-DFN (``code/backbone/MM_DFN.py``), which the
SPCL paper's numbers belong to: MMGCN's SPCL form up to the graph (transformer encoders, hidden 300, cosines
scaled by 0.99999, GCNII of width ``hidden`` with 2 layers; :mod:`backbones.mmgcn`), then pairwise gated
attention across modalities on ``[dropped input || graph]``: per modality ``h_m = dropout_0.5(ReLU(Linear(2h,
h)))`` (the SPCL code fixes this dropout at 0.5), for each ordered pair ``i != j`` ``z = sigmoid(Linear(3h,
h)[h_i; h_j; h_i * h_j])`` and ``h_ij = z h_i + (1 - z) h_j``, ``out_i = sum_j h_ij``, then ``Linear(h,
classes)`` per modality. With one modality ``out = h`` (the SPCL code fails there). No dynamic-fusion cell,
no speaker encoder. ``reference_arithmetic=True`` makes its encoders attend over padding as the SPCL code's
do (:mod:`backbones.transformer`).

``"original"`` (:class:`OriginalMMDFN`) is the paper's network, described below.

What it does (original form). Modality encoders (text: Linear -> 2-layer BiGRU; audio and visual: Linear) are each
complemented by a speaker-aware encoder: a BiGRU that runs over each speaker's own utterances in order
(shared by the modalities) and is added with a per-modality weight (the original's ``speaker_weights``:
IEMOCAP a-v-t 3-0-1, MELD 0.5-0.5-1.5). The nodes go into the same multimodal graph as MMGCN
(:mod:`backbones.multimodal_graph`). The graph-based dynamic fusion module is a deep GCNII
(``alpha=0.2``, ``lambda=0.5``, 16 layers) with a gated recurrent cell *between* the graph layers:
before layer ``k`` the cell reads the current node states, its gates decide what of the earlier
layers' memory passes on, the graph convolution runs on the cell's output, and the layer input is added
back (residual). The cell's weights and state are shared across layers, so the depth acts as time.
Each modality gets a head on ``[encoder output || fusion output]``.

Choices, and why:
- ``fusion="dfn"`` (default) is the paper's network as its released code runs it (the ``reason_flag``
  path): an LSTM cell between layers (``gate="lstm"``); ``gate="gru"`` swaps in a GRU cell.
- ``fusion="gated_attention"`` is the simplified MM-DFN of the SPCL code: plain GCNII on the same graph,
  then pairwise gated attention across modalities,
  ``z = sigmoid(W [h_i; h_j; h_i * h_j])``, ``h_ij = z h_i + (1 - z) h_j``, summed over ``j != i``.
  Offered because it is cheap and is what the SPCL paper's MM-DFN numbers come from.
- Per-modality heads: the original applies one Linear to the concatenated modalities, which equals the
  sum of one Linear per modality block, i.e. exactly the joint prediction SPCL forms by summing.
- GCNII in the released code's ``variant`` form; graph width 100 and node size 200 as in the original.
- All recurrent nets never read padding (:class:`~backbones.multimodal_graph.PaddedBiRNN`); the
  per-speaker sequences are formed with tensor operations (no loop over dialogues or utterances).
- Speed (CPU time of one training epoch, 1 thread, surrogate data, batch 16, 16 layers, on a shared
  2-core machine, so +-30 %): IEMOCAP 8.4-11 s, MELD 22-32 s; the original code (2 threads): 108 s and
  80.7 s. On MELD about half of it is the recurrent encoders: PyTorch has no fused CPU kernel for GRUs,
  and the speaker GRU runs for all three modalities there.
- The original trains with a focal loss (gamma 0.5, class weights on IEMOCAP). The loss is not part of
  the backbone: the SPCL engine owns it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backbones.base import Backbone, ParameterPart, whole
from backbones.functional import dropout
from backbones.mmgcn import SPCL_COS_SCALE, scale_nodes
from backbones.multimodal_graph import GCNIIConv, Packing, PaddedBiRNN, build_graph
from backbones.transformer import UtteranceTransformer
from spcl_search.data.batching import Batch

#: speaker-encoder weights of the released code (IEMOCAP default; MELD uses a 0.5, t 1.5, v 0.5)
IEMOCAP_SPEAKER_WEIGHTS = {"a": 3.0, "t": 1.0, "v": 0.0}


def speaker_positions(speakers: torch.Tensor, packing: Packing) -> tuple[torch.Tensor, torch.Tensor]:
    """Lay out each (dialogue, speaker) pair's utterances as one sequence.

    speakers: ``[S, B]`` speaker index per step. Returns ``(slot, lengths)``: ``lengths [G]`` holds the
    number of utterances of each of the ``G`` (dialogue, speaker) groups present, and ``slot [R]`` gives,
    for each real utterance in packed order, its flat position ``t * G + g`` in a time-major ``[T, G]``
    layout (``g`` its group, ``t`` its rank among that group's utterances).
    """
    spk = packing.pack(speakers)  # [R]
    key = packing.dialogue * (int(spk.max()) + 1) + spk  # [R]; packed rows are time-ordered within a dialogue
    counts = torch.bincount(key)
    present = counts > 0
    group = (torch.cumsum(present, 0) - 1)[key]
    starts = torch.cumsum(counts, 0) - counts
    order = torch.argsort(key, stable=True)  # groups contiguous, time order kept inside a group
    position = torch.arange(key.numel(), device=key.device)
    rank = torch.empty_like(key).index_copy_(0, order, position - starts[key[order]])
    lengths = counts[present]
    return rank * lengths.numel() + group, lengths


class MMDFN(Backbone):
    """MM-DFN backbone: encoders, multimodal graph, GCNII with dynamic fusion or gated attention, modality heads.

    The shared part of both forms; :class:`SPCLMMDFN` and :class:`OriginalMMDFN` add their encoders.

    Args (``None``: the form's default, from its form class in :mod:`backbones.cards.mm_dfn`):
        modalities: modality subset in canonical order (``"a"``, ``"at"``, ... ``"atv"``).
        input_dims: feature size per modality.
        n_classes: number of emotion classes.
        n_speakers: number of speakers the dataset uses (recorded; the speaker encoder needs no table).
        hidden: node size after the encoders (spcl 300; original 200, its BiGRUs ``hidden // 2`` per direction).
        graph_hidden: width of the fusion module (spcl: ``hidden``; original 100).
        n_layers: number of graph layers (spcl 2; original 16, its scripts also try 32 and 64).
        alpha: GCNII initial-residual weight (spcl 0.1; MM-DFN 0.2).
        lamda: GCNII identity-mapping strength (0.5).
        dropout: dropout on encoder outputs, after every graph layer and (original) before the heads.
        gcn_variant: GCNII weights over ``[A_hat h || h0]`` (released code).
        fusion: ``"dfn"`` (the paper) or ``"gated_attention"`` (the SPCL code's simplification); the spcl form
            always uses gated attention.
        gate: recurrent cell between graph layers for ``fusion="dfn"``: ``"lstm"`` (released code) or ``"gru"``.
        attention_dropout: dropout of the gated attention's inputs (``None``: ``dropout``).
    """

    name = "mm_dfn"
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
        fusion: str | None = None,
        gate: str = "lstm",
        attention_dropout: float | None = None,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant)
        o = self.options(
            hidden=hidden, graph_hidden=graph_hidden, n_layers=n_layers, alpha=alpha, lamda=lamda, dropout=dropout, fusion=fusion
        )  # fmt: skip
        self.hidden = int(o["hidden"])
        self.graph_hidden = self.hidden if o["graph_hidden"] is None else int(o["graph_hidden"])
        self.n_layers = int(o["n_layers"])
        self.alpha, self.lamda, self.dropout = float(o["alpha"]), float(o["lamda"]), float(o["dropout"])
        self.fusion = o["fusion"] or "dfn"
        self.gcn_variant = bool(gcn_variant)
        self.gate = gate
        self.attention_dropout = float(attention_dropout if attention_dropout is not None else self.dropout)
        if self.n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {self.n_layers}")
        if self.fusion not in ("dfn", "gated_attention"):
            raise ValueError(f"fusion must be 'dfn' or 'gated_attention', got {self.fusion!r}")
        if gate not in ("lstm", "gru"):
            raise ValueError(f"gate must be 'lstm' or 'gru', got {gate!r}")

    def build_graph_layers(self) -> None:
        """The GCNII, the fusion module and the heads; a form calls it after building its encoders (parameters are
        drawn in this order)."""
        g, modalities = self.graph_hidden, self.modalities
        self.input_fc = nn.Linear(self.hidden, g)
        self.convs = nn.ModuleList([GCNIIConv(g, k + 1, self.alpha, self.lamda, variant=self.gcn_variant) for k in range(self.n_layers)])
        if self.fusion == "dfn":
            self.cell = (nn.LSTMCell if self.gate == "lstm" else nn.GRUCell)(g, g)
            self.heads = nn.ModuleDict({m: nn.Linear(self.hidden + g, self.n_classes) for m in modalities})
        else:
            self.cell = None
            self.attn_in = nn.ModuleDict({m: nn.Linear(self.hidden + g, g) for m in modalities})
            self.attn_gates = nn.ModuleDict(
                {f"{i}{j}": nn.Linear(3 * g, g) for i in modalities for j in modalities if i != j}
            )
            self.heads = nn.ModuleDict({m: nn.Linear(g, self.n_classes) for m in modalities})

    def encode(self, batch: Batch, packing: Packing) -> torch.Tensor:  # pragma: no cover - interface
        """Encoder outputs as packed graph nodes ``[M, R, hidden]``."""
        raise NotImplementedError

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-modality logits.

        Reads ``batch.features[m]`` ``[S, B, dim_m]``, ``batch.mask`` ``[S, B]``, ``batch.lengths`` ``[B]``
        and ``batch.speakers`` ``[S, B]``. Returns ``{m: logits [S, B, n_classes]}`` for every modality of
        ``self.modalities`` (zeros at padded positions).
        """
        packing = Packing.from_mask(batch.mask)
        nodes = scale_nodes(batch, self.modalities, self.encode(batch, packing), packing)  # [M, R, hidden]
        graph = build_graph(nodes, packing, cos_scale=self.cos_scale)
        x = dropout(nodes, self.dropout, self.training)
        h0 = F.relu(self.input_fc(x))
        h = dropout(h0, self.dropout, self.training)
        if self.fusion == "dfn":
            shape = h.shape
            state = None
            for conv in self.convs:
                q = h
                flat = q.reshape(-1, self.graph_hidden)
                if self.gate == "lstm":
                    state = self.cell(flat, state)
                    g = state[0]
                else:
                    state = self.cell(flat, state)
                    g = state
                h = conv(g.view(shape), h0, graph)
                h = dropout(h, self.dropout, self.training) + q
            feats = F.relu(dropout(torch.cat([x, h], dim=-1), self.dropout, self.training))
        else:
            for conv in self.convs:
                h = conv(h, h0, graph)
                h = dropout(h, self.dropout, self.training)
            feats = self.gated_attention(torch.cat([x, h], dim=-1))
        return {m: packing.unpack(self.heads[m](feats[i])) for i, m in enumerate(self.modalities)}

    def gated_attention(self, feats: torch.Tensor) -> torch.Tensor:
        """Pairwise gated attention across modalities (SPCL's MM-DFN): ``[M, R, D] -> [M, R, graph_hidden]``."""
        mods = self.modalities
        hx = [dropout(F.relu(self.attn_in[m](feats[i])), self.attention_dropout, self.training) for i, m in enumerate(mods)]
        if len(mods) == 1:
            return torch.stack(hx)
        out = []
        for i, mi in enumerate(mods):
            acc = 0.0
            for j, mj in enumerate(mods):
                if i != j:
                    z = torch.sigmoid(self.attn_gates[f"{mi}{mj}"](torch.cat([hx[i], hx[j], hx[i] * hx[j]], dim=-1)))
                    acc = acc + z * hx[i] + (1.0 - z) * hx[j]
            out.append(acc)
        return torch.stack(out)

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
            "fusion": self.fusion,
            "attention_dropout": self.attention_dropout,
        }


class SPCLMMDFN(MMDFN):
    """The SPCL code's simplified MM-DFN: MMGCN's SPCL form up to the graph, then pairwise gated attention.

    Args (besides :class:`MMDFN`'s, less ``fusion`` and ``gate``):
        encoder_layers: transformer layers per modality (2).
        n_heads: attention heads of the encoders (``None``: the SPCL code's rule).
        attention_dropout: dropout of the gated attention's inputs (0.5, fixed in the SPCL code).
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
        attention_dropout: float | None = None,
        reference_arithmetic: bool = False,
    ) -> None:
        super().__init__(
            modalities, input_dims, n_classes, n_speakers, variant, hidden, graph_hidden, n_layers, alpha, lamda, dropout, gcn_variant,
            fusion="gated_attention", attention_dropout=0.5 if attention_dropout is None else attention_dropout,
        )  # fmt: skip
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


class OriginalMMDFN(MMDFN):
    """The paper's MM-DFN: Linear (+ text BiGRU) encoders with a speaker-aware BiGRU, the dynamic fusion module.

    Args (besides :class:`MMDFN`'s):
        speaker_weights: weight of the speaker-aware encoder per modality (0 switches it off for that modality);
            default IEMOCAP's ``{"a": 3, "t": 1, "v": 0}``.
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
        fusion: str | None = None,
        gate: str = "lstm",
        speaker_weights: dict[str, float] | None = None,
        attention_dropout: float | None = None,
    ) -> None:
        super().__init__(
            modalities, input_dims, n_classes, n_speakers, variant, hidden, graph_hidden, n_layers, alpha, lamda, dropout, gcn_variant,
            fusion, gate, attention_dropout,
        )  # fmt: skip
        if self.hidden % 2:
            raise ValueError(f"hidden must be even (the BiGRUs give hidden // 2 per direction), got {self.hidden}")
        weights = dict(IEMOCAP_SPEAKER_WEIGHTS if speaker_weights is None else speaker_weights)
        self.speaker_weights = {m: float(weights.get(m, 0.0)) for m in modalities}
        h = self.hidden
        self.encoders = nn.ModuleDict({m: nn.Linear(self.input_dims[m], h) for m in modalities})
        self.text_rnn = PaddedBiRNN("gru", h, h // 2, 2, self.dropout) if "t" in modalities else None
        self.speaker_rnn = PaddedBiRNN("gru", h, h // 2, 2, self.dropout) if any(self.speaker_weights.values()) else None
        self.build_graph_layers()

    def encode(self, batch: Batch, packing: Packing) -> torch.Tensor:
        """Encoder outputs as packed graph nodes ``[M, R, hidden]``: context + weighted speaker encoding."""
        projected = {m: self.encoders[m](batch.features[m]) for m in self.modalities}  # [S, B, hidden]
        nodes = {}
        for m in self.modalities:
            x = projected[m]
            if m == "t":
                x = self.text_rnn(x, batch.lengths)
            nodes[m] = packing.pack(x)
        spk_mods = [m for m in self.modalities if self.speaker_weights[m] != 0.0]
        if spk_mods:
            slot, lengths = speaker_positions(batch.speakers, packing)
            g, t = lengths.numel(), int(lengths.max())
            # one run of the shared speaker GRU over every modality's groups: [T, G * M', hidden]
            seqs = []
            for m in spk_mods:
                packed = packing.pack(projected[m])
                seqs.append(packed.new_zeros(t * g, self.hidden).index_copy(0, slot, packed).view(t, g, self.hidden))
            out = self.speaker_rnn(torch.cat(seqs, dim=1), lengths.repeat(len(spk_mods)))
            for k, m in enumerate(spk_mods):
                per = out[:, k * g : (k + 1) * g].reshape(t * g, -1).index_select(0, slot)
                nodes[m] = nodes[m] + self.speaker_weights[m] * per
        return torch.stack([nodes[m] for m in self.modalities])

    def encoder_parts(self, modality: str) -> list[ParameterPart]:
        """The modality's encoder, with the text BiGRU for ``t`` (the speaker GRU is shared)."""
        parts = whole(self.encoders[modality])
        if modality == "t" and self.text_rnn is not None:
            parts += whole(self.text_rnn)
        return parts

    def extra_config(self) -> dict[str, Any]:
        return {**super().extra_config(), "gate": self.gate, "speaker_weights": dict(self.speaker_weights)}


__all__ = ["IEMOCAP_SPEAKER_WEIGHTS", "MMDFN", "OriginalMMDFN", "SPCLMMDFN", "speaker_positions"]
