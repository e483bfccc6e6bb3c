"""Attention pieces shared by the DialogueGCN and BiDDIN backbones.

All helpers work on a batch-first, per-dialogue layout (``[batch, seq, ...]``) and take a boolean mask
of the keys a query may see, so a dialogue only ever attends to its own real utterances: padding and
batch mates cannot leak in. Masked softmax gives zeros (not NaN) for rows with no visible key.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax of ``scores`` over ``dim`` restricted to ``mask`` (bool, broadcastable).

    Entries outside the mask get exactly 0; a row with no visible entry is all 0 (finite, no NaN).
    """
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=dim) * mask


def apply_to_real(fn, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``fn`` applied to the real rows of ``x`` ``[B, N, d]`` only (valid bool ``[B, N]``); zeros at padding.

    Node-wise layers on a padded batch would spend half their FLOPs on padding (IEMOCAP batches are about
    half padding); gathering the real rows first costs one copy.
    """
    real = valid.nonzero(as_tuple=True)
    y = fn(x[real])
    return y.new_zeros(*x.shape[:2], *y.shape[1:]).index_put(real, y)


class MatchingAttention(nn.Module):
    """Bilinear ("general") attention of every utterance over the real utterances of its dialogue.

    ``alpha_ij = softmax_j(x_i^T W x_j)`` over the visible keys ``j``; the output is ``sum_j alpha_ij x_j``.
    This is the emotion-classification attention of DialogueGCN (eq. 5-6 of the paper). The projection
    ``x_i^T W`` is computed for real queries only (padded queries get uniform weights; their output is
    never read).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.weight = nn.Linear(dim, dim, bias=False)

    def reset_parameters(self) -> None:
        self.weight.reset_parameters()

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``[batch, seq, dim]``, key_mask bool ``[batch, seq]`` -> (pooled ``[batch, seq, dim]``, alpha ``[batch, seq, seq]``)."""
        scores = torch.bmm(apply_to_real(self.weight, x, key_mask), x.transpose(1, 2))
        alpha = masked_softmax(scores, key_mask[:, None, :])
        return torch.bmm(alpha, x), alpha


class DialogueSelfAttention(nn.Module):
    """Multi-head self-attention among the real utterances of each dialogue (keys masked to the dialogue).

    Same computation as ``nn.MultiheadAttention`` with a key-padding mask, but the projections run on the
    real rows only (half of an IEMOCAP batch is padding). Padded queries attend to the real keys, so every
    output is finite; the output is 0 at padding.
    """

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim {dim} must be divisible by n_heads {n_heads}")
        self.dim, self.n_heads = dim, n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def reset_parameters(self) -> None:
        self.qkv.reset_parameters()
        self.out.reset_parameters()

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x ``[B, T, dim]``, valid bool ``[B, T]`` -> ``[B, T, dim]``."""
        b, t, _ = x.shape
        q, k, v = apply_to_real(self.qkv, x, valid).view(b, t, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=valid[:, None, None, :])
        return apply_to_real(self.out, a.transpose(1, 2).reshape(b, t, self.dim), valid)


def positional_encoding(seq: int, dim: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Sinusoidal positional encoding ``[seq, dim]`` (Vaswani et al. 2017); no parameters."""
    pos = torch.arange(seq, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(seq, dim, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe.to(dtype)


__all__ = ["DialogueSelfAttention", "MatchingAttention", "apply_to_real", "masked_softmax", "positional_encoding"]
