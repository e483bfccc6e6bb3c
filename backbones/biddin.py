"""BiDDIN (Zhang et al., 2020): DialogueRNN cells per modality with intra- and inter-modal attention, in two forms.

``"spcl"`` (default, :class:`SPCLBiDDIN`) is the SPCL code's model (``code/backbone/BiDDIN.py``), which the SPCL paper's
numbers belong to: per modality a bidirectional DialogueRNN on the raw features with the SPCL code's cell
(:mod:`backbones.dialogue_rnn`), ``[e_fwd ; e_bwd]`` + positional encoding, 4-head self-attention and
``Linear(2e, 2h) -> ReLU -> dropout -> Linear``; no cross-modal interaction (:class:`SPCLEmotionAttention`).
Its self-attention attends over padding and mixes the dialogues of a batch (a reshape of a time-major
tensor); ``reference_arithmetic=True`` reproduces that, the default attends within each dialogue.

``"original"`` (:class:`OriginalBiDDIN`) is the BiDDIN paper's model. Per modality ``m`` and direction (forwards, and backwards over each dialogue's own reversal), the
DialogueRNN recurrence of Majumder et al. (2019), with ``u_t`` the projected utterance (``d_utt``):

- global state  ``g_t = GRU_G(g_{t-1}, [u_t ; q_{s(t), t-1}])``  (``d_global``)
- context       ``c_t = Fuse_n( Att_{m<-n}(u_t, g^n_{<t}) )``: matching attention of the utterance over
  the past global states of modality ``n``, for ``n = m`` (intra-modal) and every other modality
  (inter-modal; 9 attention modules for 3 modalities), fused by a linear layer over their concatenation
- party state   ``q_{s(t), t} = GRU_P(q_{s(t), t-1}, [u_t ; c_t])`` for the speaker only (``d_party``;
  listeners keep their state; the speaker comes from ``batch.speakers``)
- emotion state ``e_t = GRU_E(e_{t-1}, q_{s(t), t})``  (``d_emotion``)

then per modality: ``[e_fwd ; e_bwd]`` -> (optional positional encoding) -> multi-head self-attention
within the dialogue (residual + LayerNorm) -> Linear -> ReLU -> Linear -> classes. Because the context of
every modality attends to the others, the modality logits are not independent; the engine only needs
one logits tensor per modality.

``cross_modal=False`` drops the inter-modal attention: each modality is its own bidirectional
DialogueRNN, which is the SPCL code's version (there with ``positional=True``, 4 heads).

Defects of the original code that we do not copy:

- the modality weighting of the emotion states takes a softmax over a size-1 dimension (every weight is
  1); we have no such weighting: the modality logits are returned separately and the engine sums them;
- the multi-head attention reshapes ``[seq, batch, ...]`` so that utterances of *different dialogues*
  of a batch attend to each other; ours attends only within a dialogue, with padded keys masked, so
  a dialogue's logits do not depend on its batch mates (tested);
- a fresh, untrained ``LayerNorm`` is created on every forward; ours is a registered, learnable module.

Other choices: utterances are first projected to ``d_utt`` per modality (the original's dense layer; its
size is ours, 100); at the first step there is no past, so the contexts are zero; dropout acts on the
projected utterances, the emotion states and the classifier, not on the recurrent states (the original
also applies dropout to the states it feeds back into the recurrence).

Efficiency. A DialogueRNN is inherently sequential; we keep ONE Python loop over time steps for all
modalities, both directions, all dialogues and all parties together (``G = 2 * M`` groups of GRU weights,
batched with ``bmm``), over the packed layout of :mod:`backbones.recurrent` (only running dialogues are
computed). Everything that does not depend on the recurrence (the utterance projections feeding the
global and party GRUs and all attention queries) is one GEMM per modality before the loop; the attention
reads the past global states from a preallocated buffer (:class:`~backbones.recurrent.History`), and
per-step weight gradients are taken once after the loop (:class:`~backbones.recurrent.SharedWeight`).
The result equals a plain per-dialogue loop (tested). Forward + backward of one IEMOCAP-shaped batch (30
dialogues): 5.0 s CPU time for a first vectorised version (padded steps, history re-stacked each step,
plain autograd), 1.7 s for this one. One training epoch of IEMOCAP (120 dialogues, 5,810 utterances,
a=512 t=384 v=1024, batch 30, three modalities; the original code takes 29.3 s on 2 threads): 8.2-8.9 s CPU time
on 1 thread while the 2-core machine was fully loaded by other jobs (load average 3-11, a 1024^3 GEMM at
46-52 GFLOP/s single-threaded). Most of it is FLOPs of thin per-step GEMMs (about 30 GFLOP per batch).
With 2 threads on the loaded machine wall time was 47-91 s (OpenMP threads wait for a busy core at every
small op): compare on an idle machine or with one thread.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backbones.attention import DialogueSelfAttention, apply_to_real, positional_encoding
from backbones.base import Backbone, ParameterPart, scale_rows, whole
from backbones.dialogue_rnn import PE_DROPOUT, SPCLDialogueRNN
from backbones.functional import dropout
from backbones.kernels import full_precision, upcast
from backbones.recurrent import History, SequenceLayout, SharedWeight, group_index, gru_cell, gru_step, inverse
from spcl_search.data.batching import Batch


class GroupedDialogueRNN(nn.Module):
    """Bidirectional DialogueRNNs of ``M`` modalities run together, with optional inter-modal attention.

    Group ``g = 2 * m + d`` holds the weights of modality ``m`` in direction ``d`` (0 forwards, 1 backwards).
    """

    def __init__(self, n_modalities: int, d_utt: int, d_global: int, d_party: int, d_emotion: int, n_speakers: int, cross_modal: bool) -> None:
        super().__init__()
        m, g = n_modalities, 2 * n_modalities
        self.n_modalities, self.n_speakers = m, n_speakers
        self.d_utt, self.d_global, self.d_party, self.d_emotion = d_utt, d_global, d_party, d_emotion
        self.cross = cross_modal and m > 1
        self.n_sources = m if self.cross else 1
        # per modality, both directions: [GRU_G input part | GRU_P input part | attention queries per source]
        self.d_pre = 3 * d_global + 3 * d_party + self.n_sources * d_global
        self.weight_pre = nn.Parameter(torch.empty(m, d_utt, 2 * self.d_pre))
        self.bias_pre = nn.Parameter(torch.empty(m, 1, 2 * self.d_pre))
        # the speaker's party state feeds the global GRU (input part) and is the party GRU's hidden state:
        # one weight [G, d_party, 3 d_global + 3 d_party] serves both products
        self.weight_q = nn.Parameter(torch.empty(g, d_party, 3 * d_global + 3 * d_party))
        self.p_bias_hh = nn.Parameter(torch.empty(g, 1, 3 * d_party))
        # global GRU recurrence
        self.g_weight_hh = nn.Parameter(torch.empty(g, d_global, 3 * d_global))
        self.g_bias_hh = nn.Parameter(torch.empty(g, 1, 3 * d_global))
        # fuse the intra- and inter-modal contexts of a target modality (linear over their concatenation)
        if self.cross:
            self.fuse_weight = nn.Parameter(torch.empty(g, m * d_global, d_global))
            self.fuse_bias = nn.Parameter(torch.empty(g, 1, d_global))
        # party GRU: context input
        self.p_weight_c = nn.Parameter(torch.empty(g, d_global, 3 * d_party))
        # emotion GRU
        self.e_weight_ih = nn.Parameter(torch.empty(g, d_party, 3 * d_emotion))
        self.e_bias_ih = nn.Parameter(torch.empty(g, 1, 3 * d_emotion))
        self.e_weight_hh = nn.Parameter(torch.empty(g, d_emotion, 3 * d_emotion))
        self.e_bias_hh = nn.Parameter(torch.empty(g, 1, 3 * d_emotion))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        dg, dp, de = self.d_global, self.d_party, self.d_emotion
        pre = self.weight_pre.view(self.n_modalities, self.d_utt, 2, self.d_pre)
        pre_b = self.bias_pre.view(self.n_modalities, 1, 2, self.d_pre)
        with torch.no_grad():
            # GRU parts as nn.GRUCell (uniform 1/sqrt(hidden)); queries as a bias-free Linear of the input
            nn.init.uniform_(pre[..., : 3 * dg], -1 / math.sqrt(dg), 1 / math.sqrt(dg))
            nn.init.uniform_(pre_b[..., : 3 * dg], -1 / math.sqrt(dg), 1 / math.sqrt(dg))
            nn.init.uniform_(pre[..., 3 * dg : 3 * dg + 3 * dp], -1 / math.sqrt(dp), 1 / math.sqrt(dp))
            nn.init.uniform_(pre_b[..., 3 * dg : 3 * dg + 3 * dp], -1 / math.sqrt(dp), 1 / math.sqrt(dp))
            nn.init.uniform_(pre[..., 3 * dg + 3 * dp :], -1 / math.sqrt(self.d_utt), 1 / math.sqrt(self.d_utt))
            pre_b[..., 3 * dg + 3 * dp :].zero_()
            nn.init.uniform_(self.weight_q[..., : 3 * dg], -1 / math.sqrt(dg), 1 / math.sqrt(dg))
            nn.init.uniform_(self.weight_q[..., 3 * dg :], -1 / math.sqrt(dp), 1 / math.sqrt(dp))
        for p, hidden in [
            (self.g_weight_hh, dg), (self.g_bias_hh, dg),
            (self.p_weight_c, dp), (self.p_bias_hh, dp),
            (self.e_weight_ih, de), (self.e_bias_ih, de), (self.e_weight_hh, de), (self.e_bias_hh, de),
        ]:  # fmt: skip
            nn.init.uniform_(p, -1 / math.sqrt(hidden), 1 / math.sqrt(hidden))
        if self.cross:
            bound = 1 / math.sqrt(self.n_modalities * dg)
            nn.init.uniform_(self.fuse_weight, -bound, bound)
            nn.init.uniform_(self.fuse_bias, -bound, bound)

    def parts(self, i: int) -> list[ParameterPart]:
        """Modality ``i``'s two DialogueRNNs (groups ``2i``, ``2i + 1``) as parameter parts."""
        groups = slice(2 * i, 2 * i + 2)
        stacked = [self.weight_q, self.p_bias_hh, self.g_weight_hh, self.g_bias_hh, self.p_weight_c, self.e_weight_ih, self.e_bias_ih, self.e_weight_hh, self.e_bias_hh]
        if self.cross:
            stacked += [self.fuse_weight, self.fuse_bias]
        return [ParameterPart(self.weight_pre, i), ParameterPart(self.bias_pre, i)] + [ParameterPart(w, groups) for w in stacked]

    def forward(self, u: torch.Tensor, speakers: torch.Tensor, layout: SequenceLayout) -> torch.Tensor:
        """u ``[M, N, d_utt]`` (real utterances), speakers int64 ``[T, B]`` -> emotion states ``[M, N, 2 * d_emotion]``.

        The loop runs over packed step blocks (only the dialogues still running, see ``SequenceLayout``).
        States are group-major ``[G, n_t, .]`` for the batched GRUs; the attention history and queries are
        row-major (dialogue first): rows ``(b, d, n)`` with the ``M`` target queries of each row when
        cross-modal, rows ``(b, g)`` with one query otherwise. Runs in float32 under autocast
        (:func:`backbones.kernels.full_precision`), the same loop on every device (each step attends over the
        past, which no fused RNN kernel does).
        """
        with full_precision(u):
            return self._forward(upcast(u), speakers, layout)

    def _forward(self, u: torch.Tensor, speakers: torch.Tensor, layout: SequenceLayout) -> torch.Tensor:
        m, g, s = self.n_modalities, 2 * self.n_modalities, self.n_sources
        dg, dp, de = self.d_global, self.d_party, self.d_emotion
        dev = u.device
        index = group_index(layout, m)  # [M, N, 2]
        pre = torch.baddbmm(self.bias_pre, u, self.weight_pre).view(m, layout.n, 2, self.d_pre)
        gates = pre[..., : 3 * dg + 3 * dp].reshape(-1, 3 * dg + 3 * dp).index_select(0, inverse(index))
        gate_blocks = layout.blocks(gates, g, group_major=True)  # [G, n_t, 3dg + 3dp]
        if self.cross:  # query of target m on source n, direction d: row (b, d, n), column m
            inner = (torch.arange(2, device=dev).view(1, 1, 2, 1) * s + torch.arange(s, device=dev).view(1, 1, 1, s)) * m
            inner = inner + torch.arange(m, device=dev).view(m, 1, 1, 1)
            q_index = layout.index(inner, 2 * s * m, group_major=False)  # [M, N, 2, S]
        else:  # row (b, g), one query
            q_index = layout.index(torch.arange(g, device=dev).view(m, 1, 2, 1), g, group_major=False)
        queries = pre[..., 3 * dg + 3 * dp :].reshape(-1, dg).index_select(0, inverse(q_index))
        query_blocks = [q.view(-1, m if self.cross else 1, dg) for q in layout.blocks(queries, 2 * s * m if self.cross else g, group_major=False)]
        # speaker of every step, per group: [G, n_t]
        spk = layout.rows(speakers).view(1, -1, 1).expand(m, layout.n, 2).reshape(-1).index_select(0, inverse(index))
        spk_blocks = layout.blocks(spk, g, group_major=True)

        # per-step weights whose gradients are taken once after the loop (see SharedWeight)
        w_q, w_gh, w_pc, w_ei, w_eh = (SharedWeight(w) for w in (self.weight_q, self.g_weight_hh, self.p_weight_c, self.e_weight_ih, self.e_weight_hh))
        # (folding the linear fusion into p_weight_c saves an op but costs 1.5x the FLOPs: measured slower)
        w_fuse = SharedWeight(self.fuse_weight) if self.cross else None
        bias_q = torch.cat([self.p_bias_hh.new_zeros(g, 1, 3 * dg), self.p_bias_hh], dim=-1)
        n0 = layout.sizes[0]
        g_state = u.new_zeros(g, n0, dg)
        e_state = u.new_zeros(g, n0, de)
        party = u.new_zeros(g, n0, self.n_speakers, dp)
        history = History((2 * m if self.cross else g) * n0, len(layout.sizes), dg, u)
        outs = []
        for step, (gx, qt, sp) in enumerate(zip(gate_blocks, query_blocks, spk_blocks)):
            n = gx.shape[1]
            if n < g_state.shape[1]:  # dialogues that ended drop out of the batch
                g_state, e_state, party = g_state[:, :n], e_state[:, :n], party[:, :n]
            idx = sp[:, :, None, None].expand(g, n, 1, dp)
            q_s = party.gather(2, idx).squeeze(2)  # [G, n, dp]: the speaker's party state
            pg, pp = gx.split([3 * dg, 3 * dp], dim=-1)
            gq, gh_p = w_q.addmm(bias_q, q_s).split([3 * dg, 3 * dp], dim=-1)
            g_state = gru_cell(pg + gq, w_gh.addmm(self.g_bias_hh, g_state), g_state)
            if step == 0:  # no past yet: zero contexts
                context = u.new_zeros(g, n, s * dg)
            elif self.cross:  # rows (b, d, n) x targets m -> [G, n, M * dg] (contexts of every source)
                context = history.attend(qt).view(n, 2, s, m, dg).permute(3, 1, 0, 2, 4).reshape(g, n, s * dg)
            else:
                context = history.attend(qt).view(n, g, dg).transpose(0, 1)
            if self.cross:  # fuse the intra- and inter-modal contexts
                context = w_fuse.addmm(self.fuse_bias, context)
            if step + 1 < len(layout.sizes):  # store g_t for later steps, in the row layout of the attention
                rows = g_state.view(m, 2, n, dg).permute(2, 1, 0, 3) if self.cross else g_state.transpose(0, 1)
                history.write(rows.reshape(-1, dg))
            q_new = gru_cell(w_pc.addmm(pp, context), gh_p, q_s)
            party = party.scatter(2, idx, q_new.unsqueeze(2))
            e_state = gru_step(w_ei.addmm(self.e_bias_ih, q_new), e_state, w_eh, self.e_bias_hh)
            outs.append(e_state.reshape(-1, de))
        return torch.cat(outs).index_select(0, index.reshape(-1)).view(m, layout.n, 2 * de)


class SPCLEmotionAttention(nn.Module):
    """The SPCL code's self-attention over one modality's emotion states, and its head.

    ``x = PE-dropout(emotions + PE)``; 4-head attention with bias-free ``W_Q``, ``W_K``, ``W_V`` and ``fc``;
    ``LayerNorm(fc(att) + x)`` without learnable affine parameters (the SPCL code builds a fresh LayerNorm
    at every call, so its weight is always 1 and its bias 0); ``Linear(2e, 2h) -> ReLU -> dropout -> Linear``.

    ``reference_arithmetic=False`` attends within each dialogue, over its real utterances. ``True`` is the
    SPCL code's arithmetic: no mask, and the heads are formed with ``.view(batch, -1, heads, d)`` of a
    time-major ``[S, B, E]`` tensor, which lays rows ``(s, b)`` of the whole batch out as if they were
    ``(b', s')`` with ``b' * S + s' = s * B + b``: utterances of *different* dialogues attend to each other,
    and each output row is read back at another dialogue's position.
    """

    def __init__(self, dim: int, hidden: int, n_classes: int, n_heads: int, dropout: float, reference_arithmetic: bool) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"2 * d_emotion ({dim}) must be divisible by n_heads ({n_heads})")
        self.dim, self.n_heads, self.reference_arithmetic = dim, n_heads, reference_arithmetic
        self.w_q = nn.Linear(dim, dim, bias=False)
        self.w_k = nn.Linear(dim, dim, bias=False)
        self.w_v = nn.Linear(dim, dim, bias=False)
        self.fc = nn.Linear(dim, dim, bias=False)
        self.linear = nn.Linear(dim, 2 * hidden)
        self.out = nn.Linear(2 * hidden, n_classes)
        self.drop = nn.Dropout(dropout)

    def forward(self, e: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """e ``[S, B, dim]`` (time-major, after PE and its dropout), valid bool ``[B, S]`` -> logits ``[S, B, classes]``."""
        s, b, d = e.shape
        h = self.n_heads
        if self.reference_arithmetic:
            q, k, v = (w(e).view(b, s, h, d // h).transpose(1, 2) for w in (self.w_q, self.w_k, self.w_v))
            ctx = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, s, d).transpose(0, 1)
        else:
            x = e.transpose(0, 1)  # [B, S, d]
            q, k, v = (w(x).view(b, s, h, d // h).transpose(1, 2) for w in (self.w_q, self.w_k, self.w_v))
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=valid[:, None, None, :])
            ctx = ctx.transpose(1, 2).reshape(b, s, d).transpose(0, 1)
        y = F.layer_norm(self.fc(ctx) + e, (d,))
        return self.out(self.drop(F.relu(self.linear(y))))


class BiDDIN(Backbone):
    """BiDDIN: bidirectional DialogueRNNs per modality, in two forms (one subclass each).

    ``"spcl"`` (default, :class:`SPCLBiDDIN`): the SPCL code's per-modality bidirectional DialogueRNN
    (:class:`~backbones.dialogue_rnn.SPCLDialogueRNN`) on the raw features, its self-attention and head
    (:class:`SPCLEmotionAttention`); no cross-modal interaction. ``"original"`` (:class:`OriginalBiDDIN`): the
    BiDDIN paper's model with intra- and inter-modal matching attention (module docstring).

    Args (``None``: the form's default, from its form class in :mod:`backbones.cards.biddin`):
        d_global, d_party, d_emotion: DialogueRNN state sizes (paper and SPCL scripts: 150, 150, 100).
        hidden: classifier hidden size (100; the spcl head is ``2 * hidden`` wide, as the SPCL code's).
        n_heads: heads of the self-attention over the emotion states (SPCL code: 4).
        dropout: on the states and in the classifier (0.5).
    """

    name = "biddin"

    def __init__(
        self,
        modalities: str,
        input_dims: dict[str, int],
        n_classes: int,
        n_speakers: int,
        variant: str | None = None,
        d_global: int | None = None,
        d_party: int | None = None,
        d_emotion: int | None = None,
        hidden: int | None = None,
        n_heads: int | None = None,
        dropout: float | None = None,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant)
        o = self.options(d_global=d_global, d_party=d_party, d_emotion=d_emotion, hidden=hidden, n_heads=n_heads, dropout=dropout)
        self.d_global, self.d_party, self.d_emotion = int(o["d_global"]), int(o["d_party"]), int(o["d_emotion"])
        self.hidden, self.n_heads, self.dropout = int(o["hidden"]), int(o["n_heads"]), float(o["dropout"])
        if 2 * self.d_emotion % self.n_heads:
            raise ValueError(f"2 * d_emotion ({2 * self.d_emotion}) must be divisible by n_heads ({self.n_heads})")

    def extra_config(self) -> dict[str, Any]:
        return {
            **super().extra_config(),
            "d_global": self.d_global,
            "d_party": self.d_party,
            "d_emotion": self.d_emotion,
            "hidden": self.hidden,
            "n_heads": self.n_heads,
            "dropout": self.dropout,
        }


class SPCLBiDDIN(BiDDIN):
    """The SPCL code's form.

    Args (besides :class:`BiDDIN`'s):
        reference_arithmetic: the SPCL code's self-attention (no padding mask, heads mixing the dialogues of a
            batch; see :class:`SPCLEmotionAttention`).
    """

    variant = "spcl"

    def __init__(
        self,
        modalities: str,
        input_dims: dict[str, int],
        n_classes: int,
        n_speakers: int,
        variant: str | None = None,
        d_global: int | None = None,
        d_party: int | None = None,
        d_emotion: int | None = None,
        hidden: int | None = None,
        n_heads: int | None = None,
        dropout: float | None = None,
        reference_arithmetic: bool = False,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant, d_global, d_party, d_emotion, hidden, n_heads, dropout)
        self.reference_arithmetic = bool(reference_arithmetic)
        d_out = 2 * self.d_emotion
        self.rnn = SPCLDialogueRNN(
            [self.input_dims[m] for m in modalities], self.d_global, self.d_party, self.d_emotion, self.n_speakers, self.dropout
        )
        self.heads = nn.ModuleDict(
            {m: SPCLEmotionAttention(d_out, self.hidden, self.n_classes, self.n_heads, self.dropout, self.reference_arithmetic) for m in modalities}
        )
        self.drop = nn.Dropout(self.dropout)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """features[m] ``[seq, batch, dim_m]``, speakers ``[seq, batch]``, mask ``[seq, batch]`` ->
        ``{m: logits [seq, batch, n_classes]}``."""
        valid = batch.mask.t() > 0  # [B, T]
        states = self.rnn([batch.features[m] for m in self.modalities], batch.speakers, batch.lengths)  # [M, 2, S, B, e]
        s = states.shape[2]
        pe = positional_encoding(s, 2 * self.d_emotion, states.device, states.dtype).unsqueeze(1)  # [S, 1, 2e]
        out = {}
        for i, m in enumerate(self.modalities):
            e = torch.cat([self.drop(states[i, 0]), self.drop(states[i, 1])], dim=-1)  # [S, B, 2e]
            e = dropout(scale_rows(batch, m, e, lambda s: s) + pe, PE_DROPOUT, self.training)
            out[m] = self.heads[m](e, valid)
        return out

    def encoder_parts(self, modality: str) -> list[ParameterPart]:
        """The modality's bidirectional DialogueRNN (its rows of the grouped weights)."""
        return self.rnn.parts(self.modalities.index(modality))

    def extra_config(self) -> dict[str, Any]:
        return {**super().extra_config(), "reference_arithmetic": self.reference_arithmetic}


class OriginalBiDDIN(BiDDIN):
    """The BiDDIN paper's form.

    Args (besides :class:`BiDDIN`'s):
        d_utt: size the utterance features are projected to (per modality).
        cross_modal: inter-modal attention (BiDDIN); ``False`` gives a per-modality model.
        positional: add a sinusoidal positional encoding before the self-attention.
    """

    variant = "original"

    def __init__(
        self,
        modalities: str,
        input_dims: dict[str, int],
        n_classes: int,
        n_speakers: int,
        variant: str | None = None,
        d_utt: int | None = None,
        d_global: int | None = None,
        d_party: int | None = None,
        d_emotion: int | None = None,
        hidden: int | None = None,
        n_heads: int | None = None,
        cross_modal: bool | None = None,
        positional: bool | None = None,
        dropout: float | None = None,
    ) -> None:
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant, d_global, d_party, d_emotion, hidden, n_heads, dropout)
        o = self.options(d_utt=d_utt, cross_modal=cross_modal, positional=positional)
        self.d_utt, self.cross_modal, self.positional = int(o["d_utt"]), bool(o["cross_modal"]), bool(o["positional"])
        d_out = 2 * self.d_emotion
        self.proj = nn.ModuleDict({m: nn.Linear(self.input_dims[m], self.d_utt) for m in modalities})
        self.rnn = GroupedDialogueRNN(len(modalities), self.d_utt, self.d_global, self.d_party, self.d_emotion, self.n_speakers, self.cross_modal)
        self.attn = nn.ModuleDict({m: DialogueSelfAttention(d_out, self.n_heads) for m in modalities})
        self.norm = nn.ModuleDict({m: nn.LayerNorm(d_out) for m in modalities})
        self.head = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(d_out, self.hidden), nn.ReLU(), nn.Dropout(self.dropout), nn.Linear(self.hidden, self.n_classes)) for m in modalities}
        )
        self.drop = nn.Dropout(self.dropout)

    def emotions(self, batch: Batch) -> torch.Tensor:
        """Bidirectional emotion states ``[M, B, T, 2 * d_emotion]`` (batch-first, zeros at padding)."""
        layout = SequenceLayout.from_mask(batch.mask)
        u = torch.stack([self.drop(self.proj[m](layout.rows(batch.features[m]))) for m in self.modalities])
        return layout.to_padded(self.rnn(u, batch.speakers, layout))

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """features[m] ``[seq, batch, dim_m]``, speakers ``[seq, batch]``, mask ``[seq, batch]`` ->
        ``{m: logits [seq, batch, n_classes]}``."""
        valid = batch.mask.t() > 0  # [B, T]
        e = self.drop(self.emotions(batch))
        if self.positional:
            e = e + positional_encoding(e.shape[2], e.shape[3], e.device, e.dtype)
        out = {}
        for i, m in enumerate(self.modalities):
            x = scale_rows(batch, m, e[i], lambda s: s.t())
            y = x + self.attn[m](x, valid)
            out[m] = apply_to_real(lambda r, m=m: self.head[m](self.norm[m](r)), y, valid).transpose(0, 1)
        return out

    def encoder_parts(self, modality: str) -> list[ParameterPart]:
        """The modality's projection and bidirectional DialogueRNN (its rows of the grouped weights)."""
        return whole(self.proj[modality]) + self.rnn.parts(self.modalities.index(modality))

    def extra_config(self) -> dict[str, Any]:
        return {**super().extra_config(), "d_utt": self.d_utt, "cross_modal": self.cross_modal, "positional": self.positional}


