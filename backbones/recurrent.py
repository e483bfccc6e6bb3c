"""Several independent RNNs (modalities x directions) run as ONE time loop, vectorised over the batch.

Why: on a CPU, a recurrent model's cost is the number of small per-step operations plus FLOPs spent on
padding. ``nn.LSTM`` on packed sequences runs one loop per modality, direction and layer and projects
the input inside the loop. Here:

- the inputs of the *real* utterances are projected with one large GEMM per modality;
- the recurrence runs over a *packed* step-major layout (:class:`SequenceLayout`): dialogues ranked by
  length, so that step ``t`` only computes the ``n_t`` dialogues still running; the backward direction
  is each dialogue's own reversal, so padding never reaches a real state;
- all groups (modality x direction) step together with batched products (``bmm`` over groups);
- the cells' non-linearities have hand-written backwards (one autograd node per cell), per-step weight
  gradients are taken once after the loop (:class:`SharedWeight`), and attention over a growing history
  reads a preallocated buffer (:class:`History`) instead of re-stacking it at every step.

Each group keeps its own weights, so the result is exactly ``G`` separate RNNs (tested against
``nn.LSTM``, ``nn.GRUCell`` and plain autograd). Measured (forward + backward, CPU time, 1 thread, on a
fully loaded 2-core machine; 32 IEMOCAP dialogues padded to 94 steps, 1,549 utterances, three modalities
a=512 t=384 v=1024, 2-layer BiLSTM hidden 100): packed ``nn.LSTM`` per modality 0.79 s, oneDNN
``nn.LSTM`` on unpacked sequences with per-dialogue reversal 1.07 s, :class:`GroupedBiLSTM` 0.50 s.

The custom autograd functions support first-order gradients only (no double backward).

On CUDA the grouped LSTM takes another road (:mod:`backbones.kernels`): a loop of small kernels is
launch-bound there, so :class:`GroupedBiLSTM` runs cuDNN's LSTM on packed sequences, one call per modality and
layer, with the same parameters (views of them, in torch's gate order). The GRU cells, :class:`SharedWeight`
and :class:`History` serve recurrences whose every step attends over the past (BiDDIN's DialogueRNNs), which no
fused kernel covers; they run unchanged on CUDA (no host synchronisation inside the loop).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from backbones.kernels import full_precision, upcast, use_fused

# The cuDNN path hands cuDNN views of this module's parameters, which it packs into its own buffer at every
# call (a device-to-device copy of a few MB): expected, not the misuse this warning is about.
warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk of memory")


@dataclass
class SequenceLayout:
    """Where the real utterances of a padded batch sit, and a *packed* step-major order for recurrences.

    Dialogues are ranked by length (longest first), so at step ``t`` the dialogues still running are
    ranks ``0 .. n_t - 1``. A packed buffer holds, step after step, one block per step that covers only
    those ``n_t`` dialogues: no padded step is ever computed. A block is either *group-major*
    ``[k, n_t, ...]`` (groups of RNN weights, for ``bmm`` over groups) or *row-major* ``[n_t, k, ...]``
    (dialogue first, so that a prefix of rows is the running dialogues).

    t, b:      int64 ``[N]``, time step and dialogue of every real utterance (time-major order)
    rev_t:     int64 ``[N]``, the step of that utterance in its dialogue's reversed sequence
    rank:      int64 ``[B]``, rank of every dialogue by length (longest first, stable)
    sizes:     ``n_t`` for every step with at least one running dialogue (Python ints, non-increasing)
    """

    t: torch.Tensor
    b: torch.Tensor
    rev_t: torch.Tensor
    rank: torch.Tensor
    sizes: list[int]
    seq: int
    batch: int

    @classmethod
    def from_mask(cls, mask: torch.Tensor) -> "SequenceLayout":
        """mask ``[T, B]`` (1 real, 0 padding; real steps first in every dialogue)."""
        valid = mask > 0
        t, b = valid.nonzero(as_tuple=True)
        lengths = valid.sum(0)
        order = torch.sort(lengths, descending=True, stable=True).indices
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=order.device)
        sizes = [n for n in valid.sum(1).tolist() if n > 0]
        return cls(t=t, b=b, rev_t=lengths[b] - 1 - t, rank=rank, sizes=sizes, seq=int(mask.shape[0]), batch=int(mask.shape[1]))

    @property
    def n(self) -> int:
        return int(self.t.numel())

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """x ``[T, B, ...]`` -> the real utterances ``[N, ...]``."""
        return x[self.t, self.b]

    def to_padded(self, rows: torch.Tensor) -> torch.Tensor:
        """rows ``[M, N, F]`` -> batch-first padded ``[M, B, T, F]`` (zeros at padding)."""
        m, f = rows.shape[0], rows.shape[-1]
        out = rows.new_zeros(m, self.batch * self.seq, f)
        return out.index_copy(1, self.b * self.seq + self.t, rows).view(m, self.batch, self.seq, f)

    def index(self, inner: torch.Tensor, k: int, group_major: bool) -> torch.Tensor:
        """Packed positions ``[A, N, 2, C]`` of the items ``(a, utterance i, direction d, c)``.

        inner: int64 ``[A, 1, 2, C]``, the item's index in ``0 .. k - 1`` within a step's block, which is
        ``[k, n_t]`` (group-major) or ``[n_t, k]`` (row-major). Direction 0 puts utterance ``i`` at step
        ``t_i``, direction 1 at ``rev_t_i`` (its dialogue's own reversal).
        """
        sizes = torch.tensor(self.sizes, device=self.t.device)
        offsets = torch.cumsum(sizes, 0) - sizes
        steps = torch.stack([self.t, self.rev_t], dim=1)  # [N, 2]
        off, n = offsets[steps][None, :, :, None], sizes[steps][None, :, :, None]
        p = self.rank[self.b][None, :, None, None]
        return k * off + (inner * n + p if group_major else p * k + inner)

    def blocks(self, packed: torch.Tensor, k: int, group_major: bool) -> list[torch.Tensor]:
        """Split a packed buffer ``[k * N, ...]`` into its step blocks ``[k, n_t, ...]`` or ``[n_t, k, ...]``."""
        rest = packed.shape[1:]
        parts = torch.split(packed, [k * n for n in self.sizes])
        return [x.view(k, n, *rest) if group_major else x.view(n, k, *rest) for x, n in zip(parts, self.sizes)]


def inverse(index: torch.Tensor) -> torch.Tensor:
    """Inverse of a permutation given as a flat index tensor."""
    flat = index.reshape(-1)
    inv = torch.empty_like(flat)
    inv[flat] = torch.arange(flat.numel(), device=flat.device)
    return inv


def group_index(layout: SequenceLayout, n_modalities: int) -> torch.Tensor:
    """Packed group-major positions ``[M, N, 2]`` of the ``G = 2M`` groups ``g = 2 * m + d``."""
    inner = torch.arange(2 * n_modalities, device=layout.t.device).view(n_modalities, 1, 2, 1)
    return layout.index(inner, 2 * n_modalities, group_major=True).squeeze(3)


class SharedWeight:
    """A weight ``[G, in, out]`` applied at every step of a loop, whose gradient is taken ONCE after it.

    Plain autograd computes ``x_t^T @ grad_t`` at every step and adds it to the weight's gradient: ``T``
    thin GEMMs that each write a whole weight-sized tensor, plus ``T`` accumulations. Here a step's
    backward only records ``(x_t, grad_t)``; the weight's own backward concatenates them and runs one
    large ``bmm``. Gradients are identical (tested). Ordering: every step takes the scalar ``token``
    made by the collecting node as an input, so autograd runs the collecting backward only after all
    the steps' backwards (it counts graph edges, whatever the gradients carried).
    """

    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight.detach()  # the products themselves are outside autograd
        self.store: dict[str, list[torch.Tensor]] = {"inputs": [], "grads": []}  # no reference back: no cycle
        self.token = _SharedWeightCollect.apply(weight, self.store)

    def addmm(self, add: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``add + x @ weight`` for x ``[G, n, in]`` and add ``[G, n, out]`` or ``[G, 1, out]``."""
        return _SharedWeightMatmul.apply(add, x, self.token, self.weight, self.store)


class _SharedWeightCollect(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, store):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        ctx.store = store
        return weight.new_zeros(())

    @staticmethod
    def backward(ctx, grad_token):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        store = ctx.store
        if not store["inputs"]:
            return None, None
        x, grad = torch.cat(store["inputs"], dim=1), torch.cat(store["grads"], dim=1)
        store["inputs"], store["grads"] = [], []
        return torch.bmm(x.transpose(1, 2), grad), None


class _SharedWeightMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, add, x, token, weight, store):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        ctx.store, ctx.weight, ctx.broadcast = store, weight, add.shape[1] != x.shape[1]
        ctx.save_for_backward(x)
        return torch.baddbmm(add, x, weight)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        (x,) = ctx.saved_tensors
        if ctx.needs_input_grad[2]:  # the weight wants a gradient: record, the collecting node computes it
            ctx.store["inputs"].append(x)
            ctx.store["grads"].append(grad)
        grad_add = grad.sum(1, keepdim=True) if ctx.broadcast else grad
        grad_x = torch.bmm(grad, ctx.weight.transpose(1, 2)) if ctx.needs_input_grad[1] else None
        return grad_add, grad_x, None, None, None


class _LSTMCell(torch.autograd.Function):
    """LSTM cell non-linearities with a hand-written backward (one autograd node instead of ~8).

    gates ``[..., 4H]`` in order (input, forget, output, cell), c ``[..., H]`` -> (h, c').
    """

    @staticmethod
    def forward(ctx, gates, c):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        hidden = c.shape[-1]
        ifo = torch.sigmoid(gates[..., : 3 * hidden])
        g = torch.tanh(gates[..., 3 * hidden :])
        i, f, o = ifo.chunk(3, dim=-1)
        c_new = torch.addcmul(f * c, i, g)
        tc = torch.tanh(c_new)
        ctx.save_for_backward(ifo, g, c, tc)
        return o * tc, c_new

    @staticmethod
    def backward(ctx, grad_h, grad_c):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        ifo, g, c, tc = ctx.saved_tensors
        i, f, o = ifo.chunk(3, dim=-1)
        dc = torch.addcmul(grad_c, grad_h * o, 1 - tc * tc)
        d_ifo = torch.cat([dc * g, dc * c, grad_h * tc], dim=-1) * ifo * (1 - ifo)
        d_gates = torch.cat([d_ifo, dc * i * (1 - g * g)], dim=-1)
        return d_gates, dc * f


class _GRUCell(torch.autograd.Function):
    """GRU cell non-linearities with a hand-written backward (as ``nn.GRUCell``: reset, update, new).

    gi, gh ``[..., 3H]`` (input and hidden projections, biases included), h ``[..., H]`` -> h'.
    """

    @staticmethod
    def forward(ctx, gi, gh, h):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        hidden = h.shape[-1]
        rz = torch.sigmoid(gi[..., : 2 * hidden] + gh[..., : 2 * hidden])
        r, z = rz.chunk(2, dim=-1)
        gh_n = gh[..., 2 * hidden :]
        n = torch.tanh(torch.addcmul(gi[..., 2 * hidden :], r, gh_n))
        ctx.save_for_backward(rz, n, gh_n, h)
        return torch.lerp(n, h, z)  # (1 - z) * n + z * h

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        rz, n, gh_n, h = ctx.saved_tensors
        r, z = rz.chunk(2, dim=-1)
        d_n = grad * (1 - z) * (1 - n * n)
        d_rz = torch.cat([d_n * gh_n, grad * (h - n)], dim=-1) * rz * (1 - rz)
        return torch.cat([d_rz, d_n], dim=-1), torch.cat([d_rz, d_n * r], dim=-1), grad * z


def lstm_loop(gates_x: Sequence[torch.Tensor], weight_hh: torch.Tensor) -> torch.Tensor:
    """LSTM recurrence of ``G`` groups over packed step blocks; gate order (input, forget, output, cell).

    gates_x: one ``[G, n_t, 4H]`` block per step (input projection + bias), weight_hh ``[G, H, 4H]``
    -> hidden states, packed group-major ``[G * N, H]``.
    """
    g, hidden = weight_hh.shape[0], weight_hh.shape[1]
    weight = SharedWeight(weight_hh)
    h = gates_x[0].new_zeros(g, gates_x[0].shape[1], hidden)
    c = torch.zeros_like(h)
    outs = []
    for gx in gates_x:
        n = gx.shape[1]
        if n < h.shape[1]:  # dialogues that ended drop out of the batch
            h, c = h[:, :n], c[:, :n]
        h, c = _LSTMCell.apply(weight.addmm(gx, h), c)
        outs.append(h.reshape(-1, hidden))
    return torch.cat(outs)


def gru_cell(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """GRU update from the input projection ``gi`` and hidden projection ``gh`` ``[..., 3H]`` (biases included)."""
    return _GRUCell.apply(gi, gh, h)


def gru_step(gi: torch.Tensor, h: torch.Tensor, weight_hh: SharedWeight, bias_hh: torch.Tensor) -> torch.Tensor:
    """One GRU step of ``G`` groups: gi ``[G, B, 3H]`` (input projection + bias), h ``[G, B, H]``, shared
    weight_hh ``[G, H, 3H]``, bias_hh ``[G, 1, 3H]``."""
    return _GRUCell.apply(gi, weight_hh.addmm(bias_hh, h), h)


class GroupedBiLSTM(nn.Module):
    """``M`` independent multi-layer bidirectional LSTMs (one per input, e.g. per modality), one loop.

    Equivalent to ``M`` separate ``nn.LSTM(d_m, hidden, num_layers, bidirectional=True, dropout=dropout)``
    run on packed sequences (one bias per gate instead of two; dropout on the outputs of every layer but
    the last). Returns the states of the real utterances only; see :class:`SequenceLayout`. On CUDA it runs
    exactly that, cuDNN's LSTM on packed sequences, on views of the same parameters (the state dict does not
    depend on the device or the path).
    """

    def __init__(self, input_dims: Sequence[int], hidden: int, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.input_dims, self.hidden, self.num_layers = list(input_dims), hidden, num_layers
        m = len(self.input_dims)
        # layer 1: one weight per input for both directions (rows [N, 8H] = [N, 2, 4H])
        self.weight_in = nn.ParameterList([nn.Parameter(torch.empty(d, 8 * hidden)) for d in self.input_dims])
        self.bias_in = nn.Parameter(torch.empty(m, 8 * hidden))
        self.weight_ih = nn.ParameterList([nn.Parameter(torch.empty(m, 2 * hidden, 8 * hidden)) for _ in range(num_layers - 1)])
        self.bias_ih = nn.ParameterList([nn.Parameter(torch.empty(m, 1, 8 * hidden)) for _ in range(num_layers - 1)])
        self.weight_hh = nn.ParameterList([nn.Parameter(torch.empty(2 * m, hidden, 4 * hidden)) for _ in range(num_layers)])
        self.drop = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden)  # as nn.LSTM
        for p in [*self.weight_in, self.bias_in, *self.weight_ih, *self.bias_ih, *self.weight_hh]:
            nn.init.uniform_(p, -bound, bound)

    def parts(self, i: int) -> list:
        """Input ``i``'s own LSTM (both directions, every layer) as :class:`~backbones.base.ParameterPart` s."""
        from backbones.base import ParameterPart

        out = [ParameterPart(self.weight_in[i]), ParameterPart(self.bias_in, i)]
        out += [ParameterPart(w, i) for w in [*self.weight_ih, *self.bias_ih]]
        return out + [ParameterPart(w, slice(2 * i, 2 * i + 2)) for w in self.weight_hh]

    def forward(self, xs: Sequence[torch.Tensor], layout: SequenceLayout) -> torch.Tensor:
        """xs: one ``[T, B, d_m]`` per input -> states of the real utterances ``[M, N, 2 * hidden]``.

        On CUDA (or under ``kernel_mode("fused")``) cuDNN's LSTM runs on packed sequences; elsewhere the
        grouped loop. Both give the same function of the same parameters (tested to 1e-5, dropout included:
        the masks are drawn on the same ``[M, N, 2H]`` tensor in the same order). The recurrence runs in
        float32 under autocast (:func:`backbones.kernels.full_precision`).
        """
        with full_precision(xs[0]):
            xs = [upcast(x) for x in xs]
            if use_fused(xs[0]):
                return self._forward_fused(xs, layout)
            return self._forward_loop(xs, layout)

    def _forward_loop(self, xs: Sequence[torch.Tensor], layout: SequenceLayout) -> torch.Tensor:
        m, hdim = len(xs), self.hidden
        index = group_index(layout, m)  # [M, N, 2]
        inv = inverse(index)
        rows = torch.stack([torch.addmm(b, layout.rows(x), w) for w, b, x in zip(self.weight_in, self.bias_in, xs)])  # [M, N, 8H]
        for layer in range(self.num_layers):
            if layer > 0:
                rows = torch.baddbmm(self.bias_ih[layer - 1], self.drop(rows), self.weight_ih[layer - 1])
            packed = rows.reshape(-1, 4 * hdim).index_select(0, inv)
            states = lstm_loop(layout.blocks(packed, 2 * m, group_major=True), self.weight_hh[layer])
            rows = states.index_select(0, index.reshape(-1)).view(m, layout.n, 2 * hdim)
        return rows

    def _forward_fused(self, xs: Sequence[torch.Tensor], layout: SequenceLayout) -> torch.Tensor:
        """cuDNN's bidirectional LSTM (``torch.lstm`` on packed sequences, as ``nn.LSTM`` calls it), one call per
        modality and layer, on views of this module's parameters; dropout between layers on the ``[M, N, 2H]``
        rows, as the loop draws it."""
        hdim, dev = self.hidden, xs[0].device
        # packed position of every real utterance: step t's block holds the running dialogues by rank
        pos = layout.index(torch.zeros(1, 1, 2, 1, dtype=torch.long, device=dev), 1, group_major=True)[0, :, 0, 0]  # [N]
        inv = inverse(pos)
        batch_sizes = torch.tensor(layout.sizes, dtype=torch.long)  # on the CPU, as PackedSequence keeps it
        order = _torch_gate_order(hdim, dev)
        zeros = xs[0].new_zeros(2, layout.sizes[0], hdim)
        no_bias = xs[0].new_zeros(4 * hdim)
        rows: torch.Tensor | None = None
        for layer in range(self.num_layers):
            if layer == 0:
                inputs = [layout.rows(x) for x in xs]
                w_in, b_in = list(self.weight_in), list(self.bias_in)
            else:
                inputs = list(self.drop(rows).unbind(0))
                w_in, b_in = list(self.weight_ih[layer - 1].unbind(0)), list(self.bias_ih[layer - 1][:, 0].unbind(0))
            outs = []
            for i, (x, w, b) in enumerate(zip(inputs, w_in, b_in)):
                params = []
                for d in range(2):  # torch's order per direction: w_ih [4H, in], w_hh [4H, H], b_ih, b_hh
                    cols = slice(4 * hdim * d, 4 * hdim * (d + 1))
                    w_hh = self.weight_hh[layer][2 * i + d]
                    params += [w[:, cols].t().index_select(0, order), w_hh.t().index_select(0, order), b[cols].index_select(0, order), no_bias]
                out = torch.lstm(x.index_select(0, inv), batch_sizes, (zeros, zeros), params, True, 1, 0.0, self.training, True)[0]
                outs.append(out.index_select(0, pos))
            rows = torch.stack(outs)  # [M, N, 2H]: [forwards | backwards], as the loop
        assert rows is not None
        return rows


def _torch_gate_order(hidden: int, device: torch.device) -> torch.Tensor:
    """Rows of our gate blocks (input, forget, output, cell) in torch's order (input, forget, cell, output)."""
    h = hidden
    return torch.cat([torch.arange(0, 2 * h), torch.arange(3 * h, 4 * h), torch.arange(2 * h, 3 * h)]).to(device)


class History:
    """Past states of a recurrence that later steps attend to, kept in ONE preallocated buffer.

    Rebuilding ``torch.stack(history)`` at every step costs ``O(T^2)`` copies forwards and ``O(T^2)``
    gradient accumulations backwards, which dominated BiDDIN's run time. Here step ``t`` writes its state
    into ``value[:, t]`` and :meth:`attend` reads ``value[:, :t]`` in place; the gradients w.r.t. the
    history are accumulated into ``grad`` by the attention's backward and handed to the written state by
    the write's backward. A scalar *token* threads through every write and read so that autograd orders
    these backwards correctly (every read of step ``t' > t`` finishes before the write of step ``t``
    collects its gradient) without the engine ever seeing the buffer. Gradients are tested against
    plain autograd.

    value: ``[rows, T, dim]`` (no autograd), grad: same shape, token: the latest write's token.
    """

    def __init__(self, rows: int, length: int, dim: int, like: torch.Tensor) -> None:
        self.value = like.new_zeros(rows, length, dim)
        self.grad = like.new_zeros(rows, length, dim)
        self.token = like.new_zeros(())
        self.length = 0

    def write(self, state: torch.Tensor) -> None:
        """Append ``state`` ``[r, dim]`` as the next step of the first ``r`` rows (the running dialogues)."""
        self.token = _HistoryWrite.apply(state, self.token, self.value, self.grad, self.length)
        self.length += 1

    def attend(self, query: torch.Tensor) -> torch.Tensor:
        """``softmax(query @ past^T) @ past`` over the written steps of the first ``r`` rows: query ``[r, q, dim]`` -> ``[r, q, dim]``."""
        return _HistoryAttend.apply(query, self.token, self.value, self.grad, self.length)


class _HistoryWrite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, state, token, value, grad, step):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        ctx.grad, ctx.step, ctx.rows = grad, step, state.shape[0]
        value[: ctx.rows, step] = state
        return token.clone()

    @staticmethod
    def backward(ctx, grad_token):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        # every read of this step has run; clear the slot so that a repeated backward (retain_graph) starts at 0
        grad = ctx.grad[: ctx.rows, ctx.step].clone()
        ctx.grad[: ctx.rows, ctx.step] = 0
        return grad, None, None, None, None


class _HistoryAttend(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, token, value, grad, length):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        past = value[: query.shape[0], :length]
        alpha = torch.softmax(torch.bmm(query, past.transpose(1, 2)), dim=-1)
        ctx.save_for_backward(query, alpha)
        ctx.value, ctx.grad, ctx.length = value, grad, length
        return torch.bmm(alpha, past)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        query, alpha = ctx.saved_tensors
        past = ctx.value[: query.shape[0], : ctx.length]
        grad_alpha = torch.bmm(grad_out, past.transpose(1, 2))
        grad_scores = alpha * (grad_alpha - (grad_alpha * alpha).sum(-1, keepdim=True))
        grad_past = torch.bmm(alpha.transpose(1, 2), grad_out).baddbmm_(grad_scores.transpose(1, 2), query)
        ctx.grad[: query.shape[0], : ctx.length] += grad_past
        return torch.bmm(grad_scores, past), None, None, None, None


__all__ = ["GroupedBiLSTM", "History", "SequenceLayout", "SharedWeight", "group_index", "gru_cell", "gru_step", "inverse", "lstm_loop"]
