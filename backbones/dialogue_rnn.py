"""The SPCL code's bidirectional DialogueRNN (``code/backbone/BiDDIN.py``), every modality and direction in one loop.

Per modality and direction (forwards, and backwards over each dialogue's own reversal), with ``u_t`` the
utterance features (no input projection), ``s(t)`` the speaker and states zero at ``t = 0``:

- global state  ``g_t = dropout(GRU_G([u_t ; q_{s(t), t-1}], g_{t-1}))``  (``d_global``)
- context       ``c_t = sum_k a_k M_k`` with ``M = dropout_0.1(g_{<t} + PE)``, ``a = softmax_k(w^T M_k)``
  (the SPCL code's "simple" attention over the positionally encoded past global states; the dropout mask is
  drawn afresh at every step over the whole history, as there); ``c_0 = 0``
- party state   ``q_{s(t), t} = dropout(GRU_P([u_t ; c_t], q_{s(t), t-1}))`` for the speaker only (listeners
  keep their state)
- emotion state ``e_t = dropout(GRU_E(q_{s(t), t}, e_{t-1}))`` (``d_emotion``)

The dropouts on ``g`` and ``e`` act on the states fed back into the recurrence, as in the SPCL code.

Vectorisation. One Python loop over the ``S`` steps of the padded batch runs all ``G = 2 M`` groups
(modality x direction) and all dialogues at once: the group weights are ``[G, in, out]`` tensors multiplied
with ``bmm``; the products of the utterances (which do not depend on the recurrence) are one GEMM per
modality before the loop; per-step weights take their gradient once after the loop
(:class:`~backbones.recurrent.SharedWeight`) and the GRU non-linearities have a hand-written backward
(:func:`~backbones.recurrent.gru_cell`). Padded steps are computed too: in the forward direction they come
after a dialogue's real steps (zero features, speaker 0), exactly as the SPCL code computes them, because its
self-attention over the emotion states reads them (the reference form of :class:`~backbones.biddin.BiDDIN`);
in the backward direction they come after the reversed real steps and are zeroed on the way out, as there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from backbones.attention import positional_encoding
from backbones.functional import dropout
from backbones.kernels import full_precision, upcast
from backbones.multimodal_graph import reverse_index
from backbones.recurrent import SharedWeight, gru_cell

#: dropout of the SPCL code's positional encodings (``PositionalEncoding(dropout=0.1)``)
PE_DROPOUT = 0.1


class SPCLDialogueRNN(nn.Module):
    """Bidirectional DialogueRNNs of the SPCL code for ``M`` modalities, run together.

    Group ``g = 2 * m + d`` holds the weights of modality ``m`` in direction ``d`` (0 forwards, 1 backwards);
    each group is exactly one ``DialogueRNN`` of the SPCL code (its ``nn.GRUCell`` weights transposed and
    split by input part).
    """

    def __init__(self, input_dims: Sequence[int], d_global: int, d_party: int, d_emotion: int, n_speakers: int, dropout: float) -> None:
        super().__init__()
        m = len(input_dims)
        g = 2 * m
        self.input_dims, self.n_speakers, self.dropout = list(input_dims), int(n_speakers), float(dropout)
        self.d_global, self.d_party, self.d_emotion = d_global, d_party, d_emotion
        dg, dp, de = d_global, d_party, d_emotion
        # utterance parts of GRU_G and GRU_P input weights, both directions: [dim, 2 * (3dg + 3dp)], + their b_ih
        self.weight_u = nn.ParameterList([nn.Parameter(torch.empty(d, 2 * (3 * dg + 3 * dp))) for d in self.input_dims])
        self.bias_u = nn.Parameter(torch.empty(m, 2 * (3 * dg + 3 * dp)))
        # the speaker's party state is GRU_G's input (q part) and GRU_P's hidden state: one weight for both
        self.weight_q = nn.Parameter(torch.empty(g, dp, 3 * dg + 3 * dp))
        self.p_bias_hh = nn.Parameter(torch.empty(g, 1, 3 * dp))
        self.g_weight_hh = nn.Parameter(torch.empty(g, dg, 3 * dg))
        self.g_bias_hh = nn.Parameter(torch.empty(g, 1, 3 * dg))
        self.p_weight_c = nn.Parameter(torch.empty(g, dg, 3 * dp))
        self.e_weight_ih = nn.Parameter(torch.empty(g, dp, 3 * de))
        self.e_bias_ih = nn.Parameter(torch.empty(g, 1, 3 * de))
        self.e_weight_hh = nn.Parameter(torch.empty(g, de, 3 * de))
        self.e_bias_hh = nn.Parameter(torch.empty(g, 1, 3 * de))
        self.att = nn.Parameter(torch.empty(g, dg))  # SimpleAttention: Linear(dg, 1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As ``nn.GRUCell`` (uniform ``1/sqrt(hidden)``) and ``nn.Linear(dg, 1)`` (uniform ``1/sqrt(dg)``)."""
        dg, dp, de = self.d_global, self.d_party, self.d_emotion
        with torch.no_grad():
            for w in [*self.weight_u, self.bias_u]:
                parts = w.view(*w.shape[:-1], 2, 3 * dg + 3 * dp)
                nn.init.uniform_(parts[..., : 3 * dg], -1 / math.sqrt(dg), 1 / math.sqrt(dg))
                nn.init.uniform_(parts[..., 3 * dg :], -1 / math.sqrt(dp), 1 / math.sqrt(dp))
            nn.init.uniform_(self.weight_q[..., : 3 * dg], -1 / math.sqrt(dg), 1 / math.sqrt(dg))
            nn.init.uniform_(self.weight_q[..., 3 * dg :], -1 / math.sqrt(dp), 1 / math.sqrt(dp))
        for p, hidden in [
            (self.g_weight_hh, dg), (self.g_bias_hh, dg), (self.att, dg),
            (self.p_weight_c, dp), (self.p_bias_hh, dp),
            (self.e_weight_ih, de), (self.e_bias_ih, de), (self.e_weight_hh, de), (self.e_bias_hh, de),
        ]:  # fmt: skip
            nn.init.uniform_(p, -1 / math.sqrt(hidden), 1 / math.sqrt(hidden))

    def parts(self, i: int) -> list:
        """Modality ``i``'s two DialogueRNNs as :class:`~backbones.base.ParameterPart` s (groups ``2i``, ``2i + 1``)."""
        from backbones.base import ParameterPart

        groups = slice(2 * i, 2 * i + 2)
        stacked = [self.weight_q, self.p_bias_hh, self.g_weight_hh, self.g_bias_hh, self.p_weight_c, self.e_weight_ih, self.e_bias_ih, self.e_weight_hh, self.e_bias_hh, self.att]
        return [ParameterPart(self.weight_u[i]), ParameterPart(self.bias_u, i)] + [ParameterPart(w, groups) for w in stacked]

    def forward(self, xs: Sequence[torch.Tensor], speakers: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """xs: one ``[S, B, dim_m]`` per modality (zeros at padding), speakers int64 ``[S, B]`` (0 at padding),
        lengths ``[B]`` -> emotion states ``[M, 2, S, B, d_emotion]`` (direction 1 back in time order, zeros at
        padded steps; direction 0 computed at padded steps too). Runs in float32 under autocast
        (:func:`backbones.kernels.full_precision`); the same loop on every device (each step attends over the
        past, which no fused RNN kernel does)."""
        with full_precision(xs[0]):
            return self._forward([upcast(x) for x in xs], speakers, lengths)

    def _forward(self, xs: Sequence[torch.Tensor], speakers: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        m, g = len(xs), 2 * len(xs)
        s, b = speakers.shape
        dg, dp, de = self.d_global, self.d_party, self.d_emotion
        p, training = self.dropout, self.training
        rev = reverse_index(lengths.to(speakers.device), s)  # [S, B]
        k = 3 * dg + 3 * dp
        pre = []
        for i, x in enumerate(xs):
            both = torch.addmm(self.bias_u[i], x.reshape(s * b, -1), self.weight_u[i]).view(s, b, 2, k)
            backward = both[..., 1, :].gather(0, rev.unsqueeze(-1).expand(s, b, k))
            pre += [both[..., 0, :], backward]
        pre = torch.stack(pre, dim=1)  # [S, G, B, 3dg + 3dp]
        spk = torch.stack([speakers, speakers.gather(0, rev)], dim=1).repeat(1, m, 1)  # [S, G, B]
        pe = positional_encoding(s, dg, device=speakers.device, dtype=pre.dtype)  # [S, dg]

        w_q, w_gh, w_pc, w_ei, w_eh = (SharedWeight(w) for w in (self.weight_q, self.g_weight_hh, self.p_weight_c, self.e_weight_ih, self.e_weight_hh))
        bias_q = torch.cat([self.p_bias_hh.new_zeros(g, 1, 3 * dg), self.p_bias_hh], dim=-1)
        g_state = pre.new_zeros(g, b, dg)
        e_state = pre.new_zeros(g, b, de)
        party = pre.new_zeros(g, b, self.n_speakers, dp)
        history = PositionalHistory(g, b, s, dg, pe, PE_DROPOUT if training else 0.0, pre)
        outs = []
        for t, (pre_t, spk_t) in enumerate(zip(pre.unbind(0), spk.unbind(0))):
            idx = spk_t[:, :, None, None].expand(g, b, 1, dp)
            q_s = party.gather(2, idx).squeeze(2)  # [G, B, dp]: the speaker's party state
            gu, pu = pre_t.split([3 * dg, 3 * dp], dim=-1)
            gq, gh_p = w_q.addmm(bias_q, q_s).split([3 * dg, 3 * dp], dim=-1)
            g_state = dropout(gru_cell(gu + gq, w_gh.addmm(self.g_bias_hh, g_state), g_state), p, training)
            context = pre.new_zeros(g, b, dg) if t == 0 else history.attend(self.att)
            if t + 1 < s:
                history.write(g_state)
            q_new = dropout(gru_cell(w_pc.addmm(pu, context), gh_p, q_s), p, training)
            party = party.scatter(2, idx, q_new.unsqueeze(2))
            e_state = dropout(gru_cell(w_ei.addmm(self.e_bias_ih, q_new), w_eh.addmm(self.e_bias_hh, e_state), e_state), p, training)
            outs.append(e_state)
        out = torch.stack(outs).view(s, m, 2, b, de)  # [S, M, 2, B, de]
        valid = (torch.arange(s, device=rev.device)[:, None] < lengths.to(rev.device)[None, :]).to(out.dtype)
        backward = out[:, :, 1].gather(0, rev[:, None, :, None].expand(s, m, b, de)) * valid[:, None, :, None]
        return torch.stack([out[:, :, 0], backward], dim=2).permute(1, 2, 0, 3, 4)


class PositionalHistory:
    """The past global states ``g_k + PE_k`` of every group in one preallocated buffer, and the SPCL code's
    "simple" attention over them with a dropout mask drawn afresh over the whole history at every step.

    Stacking the history at every step (``torch.stack``) costs ``O(T^2)`` copies forwards and as many
    gradient accumulations backwards; here step ``t`` writes ``g_t + PE_t`` into ``value[:, :, t]`` and
    :meth:`attend` reads ``value[:, :, :t]`` in place. Each read's dropout mask comes from its own seeded
    generator (the seed drawn from torch's global generator, so runs repeat), so the backward regenerates
    it instead of keeping ``O(T^2)`` masks. Gradients of the history are accumulated into ``grad`` by the
    reads' backwards and handed to each written state by its write's backward; a scalar *token* threads
    through every write and read so that autograd runs every read of a later step before the write of an
    earlier one collects its gradient (as :class:`backbones.recurrent.History`). Tested against plain
    autograd.
    """

    def __init__(self, groups: int, batch: int, length: int, dim: int, pe: torch.Tensor, p: float, like: torch.Tensor) -> None:
        self.value = like.new_zeros(groups, batch, length, dim)
        self.grad = torch.zeros_like(self.value)
        self.pe, self.p = pe, p
        self.token = like.new_zeros(())
        self.length = 0

    def write(self, state: torch.Tensor) -> None:
        """Append ``state`` ``[G, B, dim]`` (+ its positional encoding) as the next step."""
        self.token = _PositionalWrite.apply(state, self.token, self.value, self.grad, self.pe[self.length], self.length)
        self.length += 1

    def attend(self, weight: torch.Tensor) -> torch.Tensor:
        """``sum_k a_k M_k``, ``a = softmax_k(weight_g . M_k)``, ``M = dropout(history)`` -> ``[G, B, dim]``."""
        seed = int(torch.randint(0, 2**62, (1,)).item()) if self.p > 0 else 0
        return _PositionalAttend.apply(weight, self.token, self.value, self.grad, self.length, self.p, seed)


def _dropout_keep(shape: torch.Size, p: float, seed: int, like: torch.Tensor) -> torch.Tensor | None:
    """The (scaled) keep mask of a dropout of rate ``p``, drawn from a generator seeded with ``seed``."""
    if p <= 0:
        return None
    gen = torch.Generator(device=like.device).manual_seed(seed)
    keep = torch.rand(shape, generator=gen, device=like.device, dtype=like.dtype) >= p
    return keep.to(like.dtype).mul_(1.0 / (1.0 - p))


class _PositionalWrite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, state, token, value, grad, pe_row, step):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        ctx.grad, ctx.step = grad, step
        value[:, :, step] = state + pe_row
        return token.clone()

    @staticmethod
    def backward(ctx, grad_token):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        # every read of this step has run (the token orders them); hand the gradient over and clear the slot,
        # so that a second backward through the same graph (retain_graph) starts from zero
        grad = ctx.grad[:, :, ctx.step].clone()
        ctx.grad[:, :, ctx.step] = 0
        return grad, None, None, None, None, None


class _PositionalAttend(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, token, value, grad, length, p, seed):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        past = value[:, :, :length]
        keep = _dropout_keep(past.shape, p, seed, past)
        mem = past if keep is None else past * keep
        alpha = torch.softmax(torch.einsum("gbtd,gd->gbt", mem, weight), dim=-1)
        ctx.save_for_backward(weight, alpha)
        ctx.value, ctx.grad, ctx.length, ctx.p, ctx.seed = value, grad, length, p, seed
        return torch.einsum("gbt,gbtd->gbd", alpha, mem)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]  # Function types forward/backward as (ctx, *args)
        weight, alpha = ctx.saved_tensors
        past = ctx.value[:, :, : ctx.length]
        keep = _dropout_keep(past.shape, ctx.p, ctx.seed, past)
        mem = past if keep is None else past * keep
        grad_alpha = torch.einsum("gbtd,gbd->gbt", mem, grad_out)
        grad_scores = alpha * (grad_alpha - (grad_alpha * alpha).sum(-1, keepdim=True))
        grad_mem = alpha.unsqueeze(-1) * grad_out.unsqueeze(2) + grad_scores.unsqueeze(-1) * weight[:, None, None, :]
        ctx.grad[:, :, : ctx.length] += grad_mem if keep is None else grad_mem * keep
        return torch.einsum("gbt,gbtd->gd", grad_scores, mem), None, None, None, None, None, None


__all__ = ["PE_DROPOUT", "PositionalHistory", "SPCLDialogueRNN"]
