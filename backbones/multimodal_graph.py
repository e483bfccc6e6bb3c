"""Shared parts of MMGCN and MM-DFN: the multimodal dialogue graph, the GCNII layer, a padding-safe BiRNN.

One graph per dialogue over the nodes of every modality (``M * N`` nodes for ``N`` utterances):

- within a modality every pair of utterances is connected (the block is complete, self-loops included);
- across modalities only the two nodes of the same utterance are connected;
- edge weight ``1 - arccos(cos_sim(x_i, x_j)) / pi`` (the angular similarity, in ``[0, 1]``);
- symmetric normalisation ``D^-1/2 A D^-1/2``.

Layout, and why. Node features are kept *packed*: ``[M, R, H]`` for the ``R`` real utterances of the
batch (no padding), so every node-wise operation (GCNII weights, activations, gates, dropout) costs
nothing for padding. Only the propagation over the complete intra-modal blocks is dense: dialogues are
grouped by length into a few buckets (:func:`plan_buckets`), each bucket's features are scattered into
a padded ``[M * n, width, H]`` tensor and multiplied with ``torch.bmm`` by its normalised blocks; the
cross-modal edges (one per utterance and modality pair) are whole-tensor element-wise products. One block
per dialogue, so dialogues never interact; padded entries are masked out of the weights before the
degrees are taken, so padding never reaches a real node. Gradients flow through the edge weights.

Measured (CPU time, 1 thread, on a 2-core machine loaded by other jobs, so +-20 %): one IEMOCAP-like
batch (16 dialogues of 8 to 110 utterances), 3 modalities, width 100, forward + backward through 16
GCNII layers: packed + length buckets 0.26 s; packed with one bucket padded to the longest dialogue
0.33 s; one ``bmm`` over the full ``[B, 3S, 3S]`` adjacency with padded nodes 0.70 s; torch_geometric
``GCN2Conv`` on edge lists of the real nodes (sparse, no padding) 5.3 s. The complete intra-modal blocks
make the graph dense, so dense GEMMs win by a wide margin. A hand-written autograd function for the
whole layer gave no measurable gain over the plain tensor operations, so there is none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backbones.functional import dropout, place_rows, take_rows
from backbones.kernels import full_precision, upcast

#: cosines are clamped to ``[-1 + eps, 1 - eps]`` before ``arccos`` so that its gradient stays finite
#: (the released code multiplies by 0.99999 for the same reason); self-loops get exactly 1.
COS_EPS = 1e-6


def angular_similarity(cos: torch.Tensor) -> torch.Tensor:
    """Edge weight ``1 - arccos(cos) / pi`` of MMGCN, with the cosine clamped for a finite gradient."""
    return 1.0 - torch.arccos(cos.clamp(-1.0 + COS_EPS, 1.0 - COS_EPS)) / math.pi


#: cost of one extra length bucket, in units of one intra-modal edge (``n * width^2`` edges per bucket);
#: about the per-call overhead of the scatter, ``bmm`` and gather of a bucket, forward and backward.
BUCKET_OVERHEAD = 2048


def plan_buckets(lengths: list[int], overhead: float = BUCKET_OVERHEAD) -> list[int]:
    """Split lengths sorted in decreasing order into contiguous buckets; returns the bucket sizes.

    Minimises ``sum_k (overhead + n_k * width_k^2)``, where a bucket of ``n_k`` dialogues is padded to the
    length ``width_k`` of its longest dialogue: the cost of the dense propagation over its blocks.
    Dynamic programming over the split points, ``O(B^2)`` for ``B`` dialogues.
    """
    n = len(lengths)
    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):
            cost = best[i] + overhead + (j - i) * lengths[i] ** 2
            if cost < best[j]:
                best[j], cut[j] = cost, i
    sizes = []
    j = n
    while j > 0:
        sizes.append(j - cut[j])
        j = cut[j]
    return sizes[::-1]


@dataclass
class Bucket:
    """Dialogues of similar length whose intra-modal blocks are propagated together.

    dialogues: int64 ``[n]``, their batch indices; ``start:stop`` their rows in the packed order;
    width: the longest of them; local: int64 ``[stop - start]``, each row's flat position ``i * width + s``
    in the bucket's padded ``[n, width]`` layout, or ``None`` when every dialogue has length ``width``.
    """

    dialogues: torch.Tensor
    start: int
    stop: int
    width: int
    local: torch.Tensor | None


@dataclass
class Packing:
    """Where the ``R`` real utterances of a padded batch sit, in packed order.

    index: int64 ``[R]``, flat positions ``b * S + s`` of the real utterances. Packed order is
    dialogue by dialogue (longest first), each dialogue's utterances in time order.
    batch_size, seq_len: ``B`` and ``S`` of the padded batch
    buckets: the dialogues grouped by length for the propagation (:func:`plan_buckets`)
    """

    index: torch.Tensor
    batch_size: int
    seq_len: int
    buckets: list[Bucket]

    @classmethod
    def from_mask(cls, mask: torch.Tensor, overhead: float | None = None) -> "Packing":
        """From a time-major mask ``[S, B]`` (1 for a real utterance, real steps first).

        ``overhead``: bucket cost for :func:`plan_buckets` (default :data:`BUCKET_OVERHEAD`; ``inf`` gives
        one bucket padded to the longest dialogue, ``0`` one bucket per distinct length).
        """
        s, b = mask.shape
        real = mask.t() > 0  # [B, S]
        lengths = real.sum(1).tolist()
        order = sorted(range(b), key=lambda i: -lengths[i])
        order_t = torch.tensor(order, dtype=torch.long, device=mask.device)
        rows = torch.nonzero(real.index_select(0, order_t))  # (rank in order, step), rank-major
        index = order_t[rows[:, 0]] * s + rows[:, 1]
        buckets, rank, start = [], 0, 0
        sizes = plan_buckets([lengths[i] for i in order], BUCKET_OVERHEAD if overhead is None else overhead)
        for size in sizes:
            width = lengths[order[rank]]
            stop = start + sum(lengths[i] for i in order[rank : rank + size])
            uniform = all(lengths[i] == width for i in order[rank : rank + size])
            local = None if uniform else (rows[start:stop, 0] - rank) * width + rows[start:stop, 1]
            buckets.append(Bucket(order_t[rank : rank + size], start, stop, width, local))
            rank, start = rank + size, stop
        return cls(index, b, s, buckets)

    @property
    def n_real(self) -> int:
        return int(self.index.shape[0])

    @property
    def dialogue(self) -> torch.Tensor:
        """int64 ``[R]``: the batch index of each packed row."""
        return torch.div(self.index, self.seq_len, rounding_mode="floor")

    @property
    def time_index(self) -> torch.Tensor:
        """int64 ``[R]``: flat time-major positions ``s * B + b`` of the packed rows."""
        step, dialogue = self.index % self.seq_len, torch.div(self.index, self.seq_len, rounding_mode="floor")
        return step * self.batch_size + dialogue

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """Time-major ``[S, B, ...]`` -> packed ``[R, ...]`` (a gather of a view: no transposed copy)."""
        return take_rows(x.reshape(self.seq_len * self.batch_size, *x.shape[2:]), self.time_index)

    def scatter(self, x: torch.Tensor) -> torch.Tensor:
        """Packed ``[..., R, D]`` -> batch-major, zero-padded ``[..., B, S, D]``."""
        lead = x.shape[:-2]
        out = place_rows(x, self.index, self.batch_size * self.seq_len, dim=len(lead))
        return out.view(*lead, self.batch_size, self.seq_len, x.shape[-1])

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """Packed ``[R, D]`` -> time-major, zero-padded ``[S, B, D]``."""
        return self.scatter(x).transpose(0, 1)


@dataclass
class MultimodalGraph:
    """The normalised adjacency of a batch of dialogues, stored by blocks.

    intra: ``[M, B, S, S]``, normalised weights of the complete intra-modal blocks (0 at padding)
    blocks: per bucket of ``packing``, its dialogues' ``intra`` blocks ``[M * n, width, width]``
    cross: ``[M, M, R]``, normalised weight between the nodes of utterance ``r`` in modalities ``m`` and
           ``n`` (0 where ``m == n``); ``None`` for a single modality
    packing: where the real utterances sit in the padded batch
    shifted: ``[M - 1, M, R]``, ``shifted[k - 1, m] = cross[m, (m + k) % M]``: the cross weights lined up
             with ``h.roll(-k, 0)``, so the cross term is ``M - 1`` whole-tensor products
    """

    intra: torch.Tensor
    blocks: list[torch.Tensor]
    cross: torch.Tensor | None
    packing: Packing
    shifted: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.cross is not None and self.shifted is None:
            m = self.cross.shape[0]
            rows = torch.arange(m, device=self.cross.device)
            self.shifted = torch.stack([self.cross[rows, (rows + k) % m] for k in range(1, m)])

    @property
    def n_modalities(self) -> int:
        return int(self.intra.shape[0])

    def propagate(self, h: torch.Tensor) -> torch.Tensor:
        """``A_hat @ h`` for packed node features ``h [M, R, H]``; returns ``[M, R, H]``."""
        return _propagate(self.packing, self.blocks, self.shifted, h)

    def dense(self) -> torch.Tensor:
        """The full normalised adjacency ``[B, M*S, M*S]`` (node order: modality, then step); for tests."""
        m, b, s, _ = self.intra.shape
        adj = self.intra.new_zeros(b, m * s, m * s)
        eye = torch.eye(s, dtype=self.intra.dtype, device=self.intra.device)
        for i in range(m):
            adj[:, i * s : (i + 1) * s, i * s : (i + 1) * s] = self.intra[i]
            if self.cross is not None:
                for j in range(m):
                    if j != i:
                        diag = self.packing.scatter(self.cross[i, j].unsqueeze(-1)).squeeze(-1)  # [B, S]
                        adj[:, i * s : (i + 1) * s, j * s : (j + 1) * s] = diag.unsqueeze(-1) * eye
        return adj


def _to_bucket(part: torch.Tensor, bucket: Bucket) -> torch.Tensor:
    """A bucket's packed rows ``[M, R_k, D]`` -> its padded layout ``[M * n, width, D]``."""
    m, d = part.shape[0], part.shape[-1]
    n, w = bucket.dialogues.numel(), bucket.width
    if bucket.local is None:
        return part.reshape(m * n, w, d)
    return place_rows(part, bucket.local, n * w, dim=1).view(m * n, w, d)


def _from_bucket(dense: torch.Tensor, bucket: Bucket, m: int) -> torch.Tensor:
    """Inverse of :func:`_to_bucket`: ``[M * n, width, D]`` -> packed rows ``[M, R_k, D]``."""
    flat = dense.reshape(m, -1, dense.shape[-1])
    return flat if bucket.local is None else take_rows(flat, bucket.local, dim=1)


def _propagate(
    packing: Packing, blocks: list[torch.Tensor], shifted: torch.Tensor | None, h: torch.Tensor
) -> torch.Tensor:
    """``A_hat @ h``: dense ``bmm`` over each bucket's intra-modal blocks plus the cross-modal products."""
    m = h.shape[0]
    parts = [
        _from_bucket(torch.bmm(block, _to_bucket(h[:, bk.start : bk.stop], bk)), bk, m)
        for bk, block in zip(packing.buckets, blocks)
    ]
    out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    if shifted is not None:  # whole-tensor products: few operations, no per-modality slices
        for k in range(1, m):
            out = out + shifted[k - 1].unsqueeze(-1) * h.roll(-k, 0)
    return out


def edge_weights(
    nodes: torch.Tensor, packing: Packing, cos_scale: float | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Un-normalised edge weights of the multimodal graph.

    nodes: packed node features ``[M, R, H]``.
    cos_scale: ``None`` clamps the cosines to ``[-1 + COS_EPS, 1 - COS_EPS]`` and gives every self-loop
        exactly 1 (the original form); a number multiplies every cosine by it, self-loops included, as the
        released MMGCN and SPCL code do with 0.99999 (a self-loop then weighs ``1 - arccos(0.99999) / pi``).
    Returns ``intra [M, B, S, S]`` (0 wherever a padded step is involved, except a padded step's own
    self-loop, 1) and ``cross [M, M, R]`` (0 where ``m == n``), or ``None`` for one modality.
    """
    m = nodes.shape[0]
    b, s = packing.batch_size, packing.seq_len
    unit = F.normalize(nodes, dim=-1, eps=1e-12)
    dense = packing.scatter(unit).reshape(m * b, s, -1)  # zero rows at padding
    cos = torch.bmm(dense, dense.transpose(1, 2)).view(m, b, s, s)
    real = packing.scatter(torch.ones_like(nodes[0, :, :1])).view(b, s)
    pair = real.unsqueeze(-1) * real.unsqueeze(-2)
    eye = torch.eye(s, dtype=torch.bool, device=nodes.device)
    one = torch.ones((), dtype=nodes.dtype, device=nodes.device)
    if cos_scale is None:
        intra = torch.where(eye, one, angular_similarity(cos) * pair)
    else:
        intra = torch.where(eye & (real.unsqueeze(-1) == 0), one, _scaled_angular(cos, cos_scale) * pair)
    if m == 1:
        return intra, None
    off = 1.0 - torch.eye(m, dtype=nodes.dtype, device=nodes.device)
    cross_cos = torch.einsum("mrh,nrh->mnr", unit, unit)
    cross = angular_similarity(cross_cos) if cos_scale is None else _scaled_angular(cross_cos, cos_scale)
    return intra, cross * off.unsqueeze(-1)


def _scaled_angular(cos: torch.Tensor, scale: float) -> torch.Tensor:
    """``1 - arccos(scale * cos) / pi`` (the released code's form; ``scale < 1`` keeps the gradient finite)."""
    return 1.0 - torch.arccos(cos * scale) / math.pi


def build_graph(nodes: torch.Tensor, packing: Packing, cos_scale: float | None = None) -> MultimodalGraph:
    """Build the normalised multimodal graph of a batch (see the module docstring).

    nodes: packed node features ``[M, R, H]``; their cosine similarities give the edge weights, and the
    gradient flows through them as in the original model. ``cos_scale``: see :func:`edge_weights`.
    The graph is built in float32 under autocast: in bf16 a self-similarity rounds above 1 (``arccos`` gives
    NaN) and ``0.99999`` rounds to 1.
    """
    with full_precision(nodes):
        return _build_graph(upcast(nodes), packing, cos_scale)


def _build_graph(nodes: torch.Tensor, packing: Packing, cos_scale: float | None) -> MultimodalGraph:
    intra, cross = edge_weights(nodes, packing, cos_scale)
    degree = intra.sum(-1)  # [M, B, S]; > 0 thanks to the self-loop, so the inverse root is finite
    inv = degree.rsqrt()
    if cross is not None:
        packed = degree.view(degree.shape[0], -1).index_select(1, packing.index) + cross.sum(1)  # [M, R]
        inv_packed = packed.rsqrt()
        if cos_scale is None:  # real degrees are >= 1 (exact self-loops); the clamp only lifts padded steps
            inv = packing.scatter(packed.unsqueeze(-1)).squeeze(-1).clamp_min(1.0).rsqrt()
        else:  # a self-loop weighs < 1 here, so no clamp: padded steps get 0 (they have no edges)
            inv = packing.scatter(inv_packed.unsqueeze(-1)).squeeze(-1)
        cross = inv_packed.unsqueeze(1) * cross * inv_packed.unsqueeze(0)
    intra = inv.unsqueeze(-1) * intra * inv.unsqueeze(-2)
    blocks = [
        intra.index_select(1, bk.dialogues)[:, :, : bk.width, : bk.width].reshape(-1, bk.width, bk.width)
        for bk in packing.buckets
    ]
    return MultimodalGraph(intra, blocks, cross, packing)


class GCNIIConv(nn.Module):
    """One GCNII layer (Chen et al., 2020) with its ReLU: initial residual and identity mapping.

    ``support = (1 - alpha) * A_hat h + alpha * h0`` and
    ``out = relu(theta * support @ W + (1 - theta) * support)`` with ``theta = log(lamda / layer + 1)``.
    With ``variant=True`` (what the released MMGCN, MM-DFN and SPCL code run) the weight sees
    ``[A_hat h || h0]`` (``W: 2H -> H``) while the identity path keeps ``support``.
    """

    def __init__(self, channels: int, layer: int, alpha: float, lamda: float, variant: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.alpha = float(alpha)
        self.theta = math.log(lamda / layer + 1.0)
        self.variant = variant
        self.weight = nn.Parameter(torch.empty((2 if variant else 1) * channels, channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.channels)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, h: torch.Tensor, h0: torch.Tensor, graph: MultimodalGraph) -> torch.Tensor:
        """h, h0: packed ``[M, R, H]``; returns ``[M, R, H]`` (after the ReLU)."""
        hi = graph.propagate(h)
        h0 = h0.to(hi.dtype)  # under autocast the propagation may come back in float32 and h0 in bf16
        support = torch.lerp(hi, h0, self.alpha)  # (1 - alpha) * hi + alpha * h0
        mixed = ((torch.cat([hi, h0], dim=-1) if self.variant else support) @ self.weight).to(support.dtype)
        return F.relu(torch.lerp(support, mixed, self.theta))  # theta * mixed + (1 - theta) * support

    def extra_repr(self) -> str:
        return f"{self.channels}, alpha={self.alpha}, theta={self.theta:.4f}, variant={self.variant}"


def reverse_index(lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    """``[S, B]`` index that reverses each sequence within its length and leaves padded steps in place."""
    steps = torch.arange(seq_len, device=lengths.device).unsqueeze(1)
    return torch.where(steps < lengths, lengths - 1 - steps, steps)


class PaddedBiRNN(nn.Module):
    """Multi-layer bidirectional LSTM or GRU over padded, time-major input that never reads padding.

    The forward direction reads real steps before any padding; the backward direction runs forwards
    over each sequence reversed within its own length, so its real steps also come first. This gives
    what ``pack_padded_sequence`` gives, but runs about 2.4x faster on CPU for LSTMs (measured:
    IEMOCAP-sized batch, 110 steps, forward + backward, 141 ms against 342 ms packed), because the
    packed CPU kernels re-slice the state at every step. Parameters equal those of
    ``nn.LSTM(..., num_layers, bidirectional=True)``.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        cell = {"lstm": nn.LSTM, "gru": nn.GRU}[mode.lower()]
        self.mode = mode.lower()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = float(dropout)
        sizes = [input_size] + [2 * hidden_size] * (num_layers - 1)
        self.forward_rnns = nn.ModuleList([cell(d, hidden_size) for d in sizes])
        self.backward_rnns = nn.ModuleList([cell(d, hidden_size) for d in sizes])

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: ``[S, B, input_size]``; lengths: ``[B]`` (any device). Returns ``[S, B, 2 * hidden_size]``.

        Outputs at padded steps are finite but meaningless.
        """
        rev = reverse_index(lengths.to(x.device), x.shape[0]).unsqueeze(-1)
        for layer in range(self.num_layers):
            if layer:
                x = dropout(x, self.dropout, self.training)
            fwd, _ = self.forward_rnns[layer](x)
            bwd, _ = self.backward_rnns[layer](x.gather(0, rev.expand_as(x)))
            x = torch.cat([fwd, bwd.gather(0, rev.expand_as(bwd))], dim=-1)
        return x

    def extra_repr(self) -> str:
        return f"{self.mode}, layers={self.num_layers}, hidden={self.hidden_size}, dropout={self.dropout}"


__all__ = [
    "BUCKET_OVERHEAD",
    "COS_EPS",
    "Bucket",
    "GCNIIConv",
    "MultimodalGraph",
    "Packing",
    "PaddedBiRNN",
    "angular_similarity",
    "build_graph",
    "dropout",
    "edge_weights",
    "plan_buckets",
    "reverse_index",
]
