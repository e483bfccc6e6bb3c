"""DialogueGCN (Ghosal et al., EMNLP 2019), one network per modality as in the SPCL code, in two forms.

``"spcl"`` (default, :class:`SPCLDialogueGCN`), the SPCL code's (``code/backbone/dialogueGCN.py``), which the SPCL paper's
numbers belong to. Per modality: a transformer context on the input dim (2 layers, 1 head, ``Linear(dim,
g=200)``; :class:`~backbones.transformer.UtteranceTransformer`), window edges ``j -> k`` for ``k`` within
``[j - wp, j + wf]`` (5, 5) with relation ``(speaker_j, speaker_k, j >= k)``, edge attention normalised over
the *source's* window, ``RGCNConv(g, h=100, 2 S^2 relations, 30 bases)`` without edge weights (torch_geometric's
mean per relation), ``GraphConv(h, h)`` weighted by the attention, no activation between them, and a plain
head ``[g ; h] -> Linear -> ReLU -> dropout -> Linear``; no matching attention (:class:`SPCLGraphHead`). The
graphs use the dense layout below; each dialogue is its own block. ``reference_arithmetic=True`` makes the
transformer attend over padding as the SPCL code's does. The SPCL code's MELD loader folds speaker 8 into 7
(8 speaker slots); here the dataset's 9 speakers keep their own relations.

``"original"`` (:class:`OriginalDialogueGCN`), the paper's. Per modality ``m`` (the engine sums the modality logits):

1. sequential context: 2-layer BiLSTM, ``hidden`` per direction (``g_i``, ``2 * hidden``); padding never
   enters the recurrence (the backward direction runs over each dialogue's own reversal);
2. window graph per dialogue: an edge ``j -> i`` for every real ``j`` with ``i - wp <= j <= i + wf``
   (self-loop included); relation type ``r = (speaker_j * S + speaker_i) * 2 + [j > i]``, so
   ``2 * S^2`` relations for ``S = n_speakers`` (8 IEMOCAP, 162 MELD); the self-loop counts as "past";
3. edge weights: attention over the window, ``alpha_ij = softmax_{j in window(i)}(g_i^T W_e g_j)``;
4. relational graph convolution (paper eq. 2), basis decomposition ``W_r = sum_b a_rb V_b``:
   ``h_i = ReLU(sum_r sum_{j in N_i^r} alpha_ij / c_ir W_r g_j + alpha_ii W_0 g_i + b)``;
5. graph convolution (paper eq. 3): ``h'_i = ReLU(W_1 sum_{j in window(i)} h_j + W_0 h_i + b)``;
6. head: ``[g_i ; h'_i]`` (``3 * hidden``) -> matching attention over the dialogue -> Linear -> ReLU ->
   Linear -> classes.

Choices and why:

- **Aggregation.** torch_geometric's ``RGCNConv`` takes no edge weights and averages messages; the
  paper (and its released code) *sums attention-weighted* messages. We implement the weighted sum
  ourselves (``rgcn_aggr="add"``, default, ``c_ir = 1``); ``rgcn_aggr="mean"`` divides each message by the
  number of neighbours of its relation (``c_ir = |N_i^r|``, the paper's other suggestion). The
  attention weights of a node sum to 1 over its window, so "add" is a convex combination. The root term
  ``alpha_ii W_0 g_i`` (the self-loop's attention weight) follows eq. 2; ReLU after both graph layers (the
  paper's sigma).
- **Relations without a per-relation loop.** A message ``W_r g_j`` depends on ``j``'s speaker (known per
  node) and on the target's speaker and the direction. Every real node is transformed once into its
  ``2 * S`` possible messages ``Y_j[s_tgt, dir]``; one ``bmm`` of the direction-split weight matrix
  ``[B, N, 2N]`` against ``Y`` ``[B, 2N, S * hidden]`` aggregates them and the target speaker's slice is
  kept. The transform uses whichever is smaller: the ``R`` relation matrices (built from the bases once
  per forward; IEMOCAP, ``R = 8 < 30``) or the ``n_bases`` bases followed by per-node coefficients (MELD,
  ``R = 162 > 30``), so the cost scales with ``min(R, n_bases)``. Tested against a per-edge loop.
- **Dense adjacency, chosen by measurement.** The graphs are dense ``[B, N, N]`` masks (band of the window
  AND real utterances) built with tensor ops over the whole batch: no loop over dialogues, utterances or
  edges. Padded nodes keep only their self-loop and send no message; each dialogue is its own block, so
  batch mates never interact. Forward + backward of the graph part (edge attention, RGCN, GraphConv;
  CPU time, 1 thread, a loaded 2-core machine, 32 training dialogues): IEMOCAP (padded to 94 steps,
  29k edges) dense 95-109 ms vs edge lists (gather, ``torch_geometric.utils.softmax``, ``index_add``)
  133-171 ms; MELD (padded to 23, 3.7k edges, 9 speakers) dense 43-45 ms vs edge lists 39-49 ms, a tie.
  So dense, which is also simpler.
- **Windows.** ``window_past = window_future = 10`` as in the paper (the SPCL scripts use 2 or 5; pass
  them explicitly to reproduce those runs). The dense layout makes the cost independent of the window.
- **Speed.** The per-modality BiLSTMs run as one loop over time (:class:`backbones.recurrent.GroupedBiLSTM`:
  input GEMMs on real utterances only, recurrence over the running dialogues only, one weight-gradient
  GEMM per weight); node-wise layers run on the real utterances only (``apply_to_real``). One training
  epoch of IEMOCAP (120 dialogues, 5,810 utterances, a=512 t=384 v=1024, batch 32, all three modalities;
  the original code takes 12.6 s on 2 threads): 3.8-4.3 s CPU time on 1 thread while the 2-core machine
  was fully loaded by other jobs (load average 3-11); a 1024^3 GEMM ran at 46-52 GFLOP/s single-threaded
  then. With 2 threads on the loaded machine wall time was 23-104 s: OpenMP threads wait for a busy
  core at every small op, so compare on an idle machine or with one thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backbones.attention import MatchingAttention, apply_to_real, masked_softmax
from backbones.base import Backbone, ParameterPart, scale_rows, whole
from backbones.multimodal_graph import Packing
from backbones.recurrent import GroupedBiLSTM, SequenceLayout
from backbones.transformer import UtteranceTransformer
from spcl_search.data.batching import Batch

RGCN_AGGREGATIONS = ("add", "mean")


@dataclass
class WindowGraph:
    """The window graphs of a batch of dialogues, dense and batched.

    edge:     bool ``[B, N, N]``; ``edge[b, i, j]`` is the edge ``j -> i`` (``j`` within the window of ``i``,
              both real; padded nodes keep only their self-loop)
    future:   bool ``[B, N, N]``; edges of the second direction class: ``j > i`` (the paper's; the self-loop
              counts as "past"), or ``j >= i`` (the SPCL code's, whose self-loop falls in that class)
    speakers: int64 ``[B, N]``; speaker index of every node
    valid:    bool ``[B, N]``; real (not padded) nodes
    n_speakers: ``S``; relation types number ``2 * S^2``
    """

    edge: torch.Tensor
    future: torch.Tensor
    speakers: torch.Tensor
    valid: torch.Tensor
    n_speakers: int

    @classmethod
    def build(
        cls,
        valid: torch.Tensor,
        speakers: torch.Tensor,
        window_past: int,
        window_future: int,
        n_speakers: int,
        loop_future: bool = False,
    ) -> "WindowGraph":
        """valid bool ``[B, N]``, speakers int64 ``[B, N]`` -> the batch's window graphs (tensor ops only).

        ``loop_future``: the self-loop belongs to the ``j >= i`` direction class (the SPCL code's relation
        types) instead of the past (the paper's).
        """
        n = valid.shape[1]
        pos = torch.arange(n, device=valid.device)
        offset = pos[None, :] - pos[:, None]  # [i, j] -> j - i
        band = (offset >= -window_past) & (offset <= window_future)
        pair = valid[:, :, None] & valid[:, None, :]
        edge = band & (pair | (offset == 0))
        future = edge & ((offset >= 0) if loop_future else (offset > 0))
        return cls(edge=edge, future=future, speakers=speakers, valid=valid, n_speakers=int(n_speakers))

    @property
    def n_relations(self) -> int:
        return 2 * self.n_speakers**2

    def relation(self) -> torch.Tensor:
        """Relation type of every edge, int64 ``[B, N, N]`` (``-1`` where there is no edge)."""
        s_src = self.speakers[:, None, :]
        s_tgt = self.speakers[:, :, None]
        rel = (s_src * self.n_speakers + s_tgt) * 2 + self.future.long()
        return torch.where(self.edge, rel, torch.full_like(rel, -1))

    def edge_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The same graph as torch_geometric edge lists over nodes ``b * N + i``: (``[2, E]`` source/target, ``[E]`` type)."""
        b, i, j = self.edge.nonzero(as_tuple=True)
        n = self.edge.shape[1]
        return torch.stack([b * n + j, b * n + i]), self.relation()[b, i, j]


class RelationalGraphConv(nn.Module):
    """Relational graph convolution with edge weights and basis decomposition (DialogueGCN eq. 2).

    ``h_i = sum_{j -> i} w_ij W_{r(j,i)} x_j + w_ii W_0 x_i + b`` with ``W_r = sum_k a_rk V_k``; ``w`` is the
    (optionally relation-normalised) edge-weight matrix. Relations are ``(speaker_j, speaker_i, j > i)``.
    """

    def __init__(
        self, in_dim: int, out_dim: int, n_speakers: int, n_bases: int = 30, aggr: str = "add", glorot: bool = False
    ) -> None:
        super().__init__()
        if aggr not in RGCN_AGGREGATIONS:
            raise ValueError(f"rgcn_aggr must be one of {', '.join(RGCN_AGGREGATIONS)}, got {aggr!r}")
        self.in_dim, self.out_dim, self.n_speakers, self.n_bases, self.aggr = in_dim, out_dim, n_speakers, n_bases, aggr
        self.glorot = glorot
        self.n_relations = 2 * n_speakers**2
        self.bases = nn.Parameter(torch.empty(n_bases, in_dim, out_dim))
        self.comp = nn.Parameter(torch.empty(self.n_relations, n_bases))
        self.root = nn.Parameter(torch.empty(in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.glorot:  # torch_geometric's RGCNConv (the SPCL code's layer): Glorot everywhere, zero bias
            for p in (self.bases, self.comp, self.root):
                bound = math.sqrt(6.0 / (p.shape[-2] + p.shape[-1]))
                nn.init.uniform_(p, -bound, bound)
            nn.init.zeros_(self.bias)
            return
        bound = 1.0 / math.sqrt(self.in_dim)
        nn.init.uniform_(self.bases, -bound, bound)
        nn.init.uniform_(self.root, -bound, bound)
        nn.init.uniform_(self.comp, -1.0 / math.sqrt(self.n_bases), 1.0 / math.sqrt(self.n_bases))
        nn.init.zeros_(self.bias)

    def _messages(self, x: torch.Tensor, speakers: torch.Tensor) -> torch.Tensor:
        """Every message a node can send: ``Y[j, t, d] = W_{(s_j, t, d)} x_j``, x ``[N, in]`` -> ``[N, S, 2, out]``."""
        s, n = self.n_speakers, x.shape[0]
        k = 2 * s  # (target speaker, direction) pairs for a given source speaker
        if self.n_relations <= self.n_bases:
            # R relation matrices, laid out [in, S_src * S_tgt * 2 * out]; keep the source speaker's block
            weight = torch.einsum("rk,kio->rio", self.comp, self.bases)
            weight = weight.view(s, k, self.in_dim, self.out_dim).permute(2, 0, 1, 3).reshape(self.in_dim, -1)
            y = (x @ weight).view(n, s, k * self.out_dim)
            y = y.gather(1, speakers[:, None, None].expand(n, 1, k * self.out_dim)).squeeze(1)
        else:
            # project on the bases once, then mix with the coefficients of the source speaker's relations
            xb = (x @ self.bases.permute(1, 0, 2).reshape(self.in_dim, -1)).view(n, self.n_bases, self.out_dim)
            coef = self.comp.view(s, k, self.n_bases)[speakers]  # [N, 2S, n_bases]
            y = torch.bmm(coef, xb)
        return y.view(n, s, 2, self.out_dim)

    def forward(self, x: torch.Tensor, weight: torch.Tensor, graph: WindowGraph) -> torch.Tensor:
        """x ``[B, N, in]``, weight ``[B, N, N]`` (``weight[b, i, j]`` of edge ``j -> i``, 0 off edges) -> ``[B, N, out]``."""
        b, n = x.shape[:2]
        s = self.n_speakers
        speakers = graph.speakers
        diag = weight.diagonal(dim1=1, dim2=2)  # alpha_ii, before any normalisation
        if self.aggr == "mean":
            onehot = F.one_hot(speakers, s).to(x.dtype)  # [B, N, S]
            past = (graph.edge & ~graph.future).to(x.dtype)
            cnt_past = torch.bmm(past, onehot).gather(2, speakers[:, None, :].expand(b, n, n))
            cnt_fut = torch.bmm(graph.future.to(x.dtype), onehot).gather(2, speakers[:, None, :].expand(b, n, n))
            weight = weight / torch.where(graph.future, cnt_fut, cnt_past).clamp(min=1.0)
        w_fut = weight * graph.future
        adj = torch.cat([weight - w_fut, w_fut], dim=2)  # [B, N, 2N]: past columns, then future columns
        real = graph.valid.nonzero(as_tuple=True)  # messages of real nodes only (padded nodes send none)
        messages = self._messages(x[real], speakers[real])
        y = messages.new_zeros(b, n, s, 2, self.out_dim).index_put(real, messages)  # the messages' dtype (bf16 under autocast)
        y = y.permute(0, 3, 1, 2, 4).reshape(b, 2 * n, s * self.out_dim)
        h = torch.bmm(adj, y).view(b, n, s, self.out_dim)
        h = h.gather(2, speakers[:, :, None, None].expand(b, n, 1, self.out_dim)).squeeze(2)
        return h + diag[..., None] * apply_to_real(lambda z: z @ self.root, x, graph.valid) + self.bias


class DenseGraphConv(nn.Module):
    """Graph convolution ``h_i = W_1 sum_{j -> i} x_j + W_0 x_i + b`` on a dense adjacency (DialogueGCN eq. 3)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.lin_rel = nn.Linear(in_dim, out_dim)
        self.lin_root = nn.Linear(in_dim, out_dim, bias=False)

    def reset_parameters(self) -> None:
        self.lin_rel.reset_parameters()
        self.lin_root.reset_parameters()

    def forward(self, x: torch.Tensor, adj: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x ``[B, N, in]``, adj ``[B, N, N]`` (row = target), valid bool ``[B, N]`` -> ``[B, N, out]`` (0 at padding)."""
        real = valid.nonzero(as_tuple=True)
        out = self.lin_rel(torch.bmm(adj, x)[real]) + self.lin_root(x[real])
        return out.new_zeros(*x.shape[:2], out.shape[-1]).index_put(real, out)


class DialogueGCNGraph(nn.Module):
    """The graph part and head of DialogueGCN for one modality: edge attention, RGCN, GraphConv, head."""

    def __init__(self, n_classes: int, n_speakers: int, hidden: int, n_bases: int, rgcn_aggr: str, dropout: float) -> None:
        super().__init__()
        self.edge_att = nn.Linear(2 * hidden, 2 * hidden, bias=False)
        self.rgcn = RelationalGraphConv(2 * hidden, hidden, n_speakers, n_bases, rgcn_aggr)
        self.gconv = DenseGraphConv(hidden, hidden)
        self.att = MatchingAttention(3 * hidden)
        self.lin = nn.Linear(3 * hidden, hidden)
        self.out = nn.Linear(hidden, n_classes)
        self.drop = nn.Dropout(dropout)

    def edge_weights(self, g: torch.Tensor, graph: WindowGraph) -> torch.Tensor:
        """Attention edge weights ``[B, N, N]``: softmax of ``g_i^T W_e g_j`` over the window of ``i``."""
        return masked_softmax(torch.bmm(apply_to_real(self.edge_att, g, graph.valid), g.transpose(1, 2)), graph.edge)

    def forward(self, g: torch.Tensor, graph: WindowGraph) -> torch.Tensor:
        """Context states g ``[B, N, 2 * hidden]`` -> logits ``[B, N, n_classes]`` (0 at padding).

        Node-wise layers run on the real utterances only (``apply_to_real``); the graph products are dense.
        """
        h = F.relu(self.rgcn(g, self.edge_weights(g, graph), graph))
        h = F.relu(self.gconv(h, graph.edge.to(h.dtype), graph.valid))
        e, _ = self.att(torch.cat([g, h], dim=-1), graph.valid)
        return apply_to_real(lambda x: self.out(self.drop(F.relu(self.lin(x)))), e, graph.valid)


class SPCLGraphHead(nn.Module):
    """The SPCL code's graph part and head of DialogueGCN for one modality (``code/backbone/dialogueGCN.py``).

    Edge attention: node ``j`` attends over its window, ``alpha_jk = softmax_{k in window(j)}(g_j^T W g_k)``,
    and that weight rides on the edge ``j -> k``; ``RGCNConv(g, h, 2 S^2, 30 bases)`` without edge weights
    (torch_geometric's mean per relation, plus the root term); ``GraphConv(h, h)`` with the attention weights
    (a weighted sum); no activation between the two; head ``[g_k ; h_k] -> Linear -> ReLU -> dropout ->
    Linear``.
    """

    def __init__(self, n_classes: int, n_speakers: int, hidden: int, graph_hidden: int, n_bases: int, dropout: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.edge_att = nn.Parameter(torch.empty(hidden, hidden))
        self.rgcn = RelationalGraphConv(hidden, graph_hidden, n_speakers, n_bases, aggr="mean", glorot=True)
        self.gconv = DenseGraphConv(graph_hidden, graph_hidden)
        self.lin = nn.Linear(hidden + graph_hidden, graph_hidden)
        self.out = nn.Linear(graph_hidden, n_classes)
        self.drop = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # the SPCL code draws N(0, sd) with sd = 2 / (fan_in + fan_out) (it names the sd "var")
        nn.init.normal_(self.edge_att, 0.0, 2.0 / (2 * self.hidden))
        for module in (self.rgcn, self.gconv, self.lin, self.out):
            module.reset_parameters()

    def attention(self, g: torch.Tensor, graph: WindowGraph) -> torch.Tensor:
        """``alpha [B, N, N]``, ``alpha[b, j, k]`` = weight of the edge ``j -> k`` (rows sum to 1 over ``j``'s window)."""
        wg = apply_to_real(lambda x: x @ self.edge_att.t(), g, graph.valid)  # rows W g_k
        return masked_softmax(torch.bmm(g, wg.transpose(1, 2)), graph.edge.transpose(1, 2))

    def forward(self, g: torch.Tensor, graph: WindowGraph) -> torch.Tensor:
        """Context states g ``[B, N, hidden]`` (zeros at padding) -> logits ``[B, N, n_classes]`` (0 at padding)."""
        incoming = self.attention(g, graph).transpose(1, 2)  # [B, target, source]
        h = self.rgcn(g, graph.edge.to(g.dtype), graph)
        h = self.gconv(h, incoming, graph.valid)
        return apply_to_real(lambda x: self.out(self.drop(F.relu(self.lin(x)))), torch.cat([g, h], dim=-1), graph.valid)


class DialogueGCN(Backbone):
    """DialogueGCN: one graph network per modality; the engine sums the modality logits.

    The shared part of both forms; :class:`SPCLDialogueGCN` and :class:`OriginalDialogueGCN` add their context
    encoders and graph heads.

    Args (``None``: the form's default, from its form class in :mod:`backbones.cards.dialoguegcn`):
        hidden: context size (spcl: the transformer context's output ``g``, 200; original: LSTM size per
            direction, 100, so the context is ``2 * hidden``).
        window_past, window_future: window sizes ``wp``, ``wf`` (spcl 5, 5; paper 10, 10). In the spcl form an
            edge ``j -> k`` exists for ``j - wp <= k <= j + wf`` (the SPCL code's), in the original for
            ``i - wp <= j <= i + wf`` of the target ``i``; the same graph when ``wp = wf``.
        n_bases: bases of the relational layer (30).
        dropout: spcl: inside the transformer and in the head (0.1); original: between the LSTM layers, on the
            context states and before the classifier (0.5).
    """

    name = "dialoguegcn"
    graph_hidden: int
    rgcn_aggr: str

    def __init__(
        self,
        modalities: str,
        input_dims: dict[str, int],
        n_classes: int,
        n_speakers: int,
        variant: str | None = None,
        hidden: int | None = None,
        window_past: int | None = None,
        window_future: int | None = None,
        n_bases: int | None = None,
        dropout: float | None = None,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant)
        o = self.options(hidden=hidden, window_past=window_past, window_future=window_future, n_bases=n_bases, dropout=dropout)
        self.hidden, self.window_past, self.window_future = int(o["hidden"]), int(o["window_past"]), int(o["window_future"])
        if self.window_past < 0 or self.window_future < 0:
            raise ValueError(f"windows must be >= 0, got window_past={self.window_past}, window_future={self.window_future}")
        self.n_bases, self.dropout = int(o["n_bases"]), float(o["dropout"])

    def graph(self, batch: Batch) -> WindowGraph:  # pragma: no cover - interface
        """The batch's window graphs (shared by all modalities)."""
        raise NotImplementedError

    def contexts(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - interface
        """Sequential context states of every modality, batch-first ``[M, B, N, context]`` (zeros at padding)."""
        raise NotImplementedError

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """features[m] ``[seq, batch, dim_m]``, speakers ``[seq, batch]``, mask ``[seq, batch]`` ->
        ``{m: logits [seq, batch, n_classes]}``."""
        g = self.contexts(batch)
        graph = self.graph(batch)
        return {m: self.graphs[m](scale_rows(batch, m, g[i], lambda s: s.t()), graph).transpose(0, 1) for i, m in enumerate(self.modalities)}

    def extra_config(self) -> dict[str, Any]:
        return {
            **super().extra_config(),
            "hidden": self.hidden,
            "graph_hidden": self.graph_hidden,
            "window_past": self.window_past,
            "window_future": self.window_future,
            "n_bases": self.n_bases,
            "rgcn_aggr": self.rgcn_aggr,
            "dropout": self.dropout,
        }


class SPCLDialogueGCN(DialogueGCN):
    """The SPCL code's form: a transformer context per modality and :class:`SPCLGraphHead`.

    Args (besides :class:`DialogueGCN`'s):
        graph_hidden: graph and head size (100).
        encoder_layers: transformer context layers (2).
        n_heads: attention heads of the transformer context (the scripts' ``trans_head`` 1).
        reference_arithmetic: the transformer context attends over padding as the SPCL code's does.
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
        graph_hidden: int | None = None,
        encoder_layers: int | None = None,
        n_heads: int | None = None,
        window_past: int | None = None,
        window_future: int | None = None,
        n_bases: int | None = None,
        dropout: float | None = None,
        reference_arithmetic: bool = False,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant, hidden, window_past, window_future, n_bases, dropout)
        self.reference_arithmetic = bool(reference_arithmetic)
        o = self.options(graph_hidden=graph_hidden, encoder_layers=encoder_layers, n_heads=n_heads)
        self.graph_hidden = int(o["graph_hidden"])
        self.encoder_layers, self.n_heads = int(o["encoder_layers"]), int(o["n_heads"])
        self.rgcn_aggr = "mean"
        self.context = nn.ModuleDict(
            {
                m: UtteranceTransformer(
                    self.input_dims[m], self.hidden, self.encoder_layers, self.n_heads, dropout=self.dropout,
                    attend_padding=self.reference_arithmetic,
                )  # fmt: skip
                for m in modalities
            }
        )
        self.graphs = nn.ModuleDict(
            {m: SPCLGraphHead(self.n_classes, self.n_speakers, self.hidden, self.graph_hidden, self.n_bases, self.dropout) for m in modalities}
        )

    def graph(self, batch: Batch) -> WindowGraph:
        """The batch's window graphs: edges j -> k for k in window(j) (the target's window is mirrored)."""
        valid = batch.mask.t() > 0
        return WindowGraph.build(valid, batch.speakers.t(), self.window_future, self.window_past, self.n_speakers, loop_future=True)

    def contexts(self, batch: Batch) -> torch.Tensor:
        packing = Packing.from_mask(batch.mask)
        return torch.stack([packing.scatter(self.context[m](batch.features[m], packing)) for m in self.modalities])

    def encoder_parts(self, modality: str) -> list[ParameterPart]:
        """The modality's transformer context."""
        return whole(self.context[modality])

    def edge_weights(self, batch: Batch, modality: str) -> torch.Tensor:
        """The attention edge weights ``[B, N, N]`` of ``modality`` as ``weight[b, i, j]`` of the edge ``j -> i``
        (for inspection)."""
        g = self.contexts(batch)[self.modalities.index(modality)]
        return self.graphs[modality].attention(g, self.graph(batch)).transpose(1, 2)

    def extra_config(self) -> dict[str, Any]:
        return {
            **super().extra_config(),
            "encoder_layers": self.encoder_layers,
            "n_heads": self.n_heads,
            "reference_arithmetic": self.reference_arithmetic,
        }


class OriginalDialogueGCN(DialogueGCN):
    """The paper's form: one 2-layer BiLSTM per modality (run together) and :class:`DialogueGCNGraph`.

    Args (besides :class:`DialogueGCN`'s):
        rgcn_aggr: ``"add"`` (paper's weighted sum) or ``"mean"``.
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
        window_past: int | None = None,
        window_future: int | None = None,
        n_bases: int | None = None,
        rgcn_aggr: str | None = None,
        dropout: float | None = None,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant, hidden, window_past, window_future, n_bases, dropout)
        self.graph_hidden = self.hidden
        self.rgcn_aggr = str(self.options(rgcn_aggr=rgcn_aggr)["rgcn_aggr"])
        # one 2-layer BiLSTM per modality, run together (see backbones.recurrent)
        self.context = GroupedBiLSTM([self.input_dims[m] for m in modalities], self.hidden, num_layers=2, dropout=self.dropout)
        self.graphs = nn.ModuleDict(
            {m: DialogueGCNGraph(self.n_classes, self.n_speakers, self.hidden, self.n_bases, self.rgcn_aggr, self.dropout) for m in modalities}
        )
        self.drop = nn.Dropout(self.dropout)

    def graph(self, batch: Batch) -> WindowGraph:
        """The batch's window graphs: the window of each target."""
        valid = batch.mask.t() > 0
        return WindowGraph.build(valid, batch.speakers.t(), self.window_past, self.window_future, self.n_speakers)

    def contexts(self, batch: Batch) -> torch.Tensor:
        """The grouped BiLSTM's states after dropout."""
        layout = SequenceLayout.from_mask(batch.mask)
        rows = self.context([batch.features[m] for m in self.modalities], layout)
        return layout.to_padded(self.drop(rows))

    def encoder_parts(self, modality: str) -> list[ParameterPart]:
        """The modality's slice of the grouped BiLSTM."""
        return self.context.parts(self.modalities.index(modality))

    def edge_weights(self, batch: Batch, modality: str) -> torch.Tensor:
        """The attention edge weights ``[B, N, N]`` of ``modality`` as ``weight[b, i, j]`` of the edge ``j -> i``
        (for inspection)."""
        g = self.contexts(batch)[self.modalities.index(modality)]
        return self.graphs[modality].edge_weights(g, self.graph(batch))


