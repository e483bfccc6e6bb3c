"""The SPCL code's utterance encoder: a post-norm transformer over each dialogue, then a linear map.

The SPCL code puts ``nn.TransformerEncoder(nn.TransformerEncoderLayer(d_model=input_dim, nhead=h,
dropout, batch_first=True), nlayers)`` (feed-forward 2048, ReLU, post-norm) and ``Linear(input_dim,
hidden)`` in front of late fusion, MMGCN and MM-DFN (``h`` = the first of 5..14 dividing ``input_dim``,
else 1), and the same with ``h = trans_head`` as DialogueGCN's sequential context. :class:`UtteranceTransformer`
computes that function with the same parameters and initialisation, in one of two ways:

- **default** (``attend_padding=False``): every layer runs on the *real* utterances only, packed into
  ``[R, dim]`` rows, and each utterance attends to the real utterances of its own dialogue (a key-padding
  mask). A dialogue's encoding does not depend on its batch mates or on padding.
- **reference** (``attend_padding=True``): the SPCL code's arithmetic, defect included. It calls the
  encoder on the padded batch without a padding mask, so real utterances attend to the (zero, then
  transformed) padded positions, and an utterance's encoding depends on how long the longest dialogue
  of its batch is. All ``B * S`` positions are computed, as there.

Speed. The cost is the GEMMs of the projections and the feed-forward block (``~8 d^2 + 4 d ff`` FLOPs per
token and layer, forward), so the default form skips padding (half of an IEMOCAP batch) before the first
layer; attention itself (``4 S d`` per token) is a few per cent of it and runs on the padded layout
through ``F.scaled_dot_product_attention`` with a boolean key mask. Dropout masks come from
:func:`backbones.functional.dropout`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backbones.functional import dropout, place_rows, take_rows
from backbones.multimodal_graph import Packing

#: the SPCL code's (and torch's) feed-forward width of a transformer layer
FF_DIM = 2048


def spcl_heads(dim: int) -> int:
    """Attention heads the SPCL code gives an encoder on ``dim`` features: the first of 5..14 dividing it, else 1."""
    return next((h for h in range(5, 15) if dim % h == 0), 1)


@dataclass
class TokenGroup:
    """Rows ``start:stop`` of a frame: ``n`` dialogues laid out as ``[n, width]`` for attention.

    local: int64, each row's flat position ``i * width + s`` in that layout (``None``: the rows fill it)
    mask:  bool ``[n, 1, 1, width]``, the real keys (``None``: every position is a key)
    """

    start: int
    stop: int
    n: int
    width: int
    local: torch.Tensor | None
    mask: torch.Tensor | None


@dataclass
class TokenFrame:
    """Token rows of a transformer and, for attention, how they group into dialogues.

    The default frame holds the real utterances in :class:`~backbones.multimodal_graph.Packing` order and
    groups them by the packing's length buckets: dialogues of similar length share one padded
    ``[n, width]`` attention block, so a short dialogue is not padded to the batch's longest (IEMOCAP
    batches mix 8 and 110 utterances; padding everything to the longest made attention cost 4x its real
    FLOPs). The reference frame is the whole padded grid as one group without a mask.
    """

    groups: list[TokenGroup]

    @classmethod
    def packed(cls, packing: Packing) -> "TokenFrame":
        """Rows = the real utterances in ``packing`` order; keys = the real utterances of the same dialogue."""
        groups = []
        for bk in packing.buckets:
            n = bk.dialogues.numel()
            mask = None
            if bk.local is not None:
                flat = torch.zeros(n * bk.width, dtype=torch.bool, device=packing.index.device)
                mask = flat.index_fill_(0, bk.local, True).view(n, 1, 1, bk.width)
            groups.append(TokenGroup(bk.start, bk.stop, n, bk.width, bk.local, mask))
        return cls(groups)

    @classmethod
    def padded(cls, batch_size: int, seq_len: int) -> "TokenFrame":
        """Rows = every position of the padded grid (``b``-major); keys = every position (no mask)."""
        return cls([TokenGroup(0, batch_size * seq_len, batch_size, seq_len, None, None)])

    def attend(self, qkv: torch.Tensor, n_heads: int, p: float, training: bool) -> torch.Tensor:
        """Multi-head scaled dot-product attention of rows ``qkv [N, 3 d]`` within their dialogue -> ``[N, d]``."""
        d = qkv.shape[-1] // 3
        parts = []
        for g in self.groups:
            rows = qkv[g.start : g.stop]
            grid = rows if g.local is None else place_rows(rows, g.local, g.n * g.width)
            q, k, v = grid.view(g.n, g.width, 3, n_heads, d // n_heads).permute(2, 0, 3, 1, 4)  # [n, H, w, d/H]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=g.mask, dropout_p=p if training else 0.0)
            out = out.transpose(1, 2).reshape(g.n * g.width, d)
            parts.append(out if g.local is None else take_rows(out, g.local))
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class EncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer(dim, n_heads, ff_dim, dropout)`` (post-norm, ReLU) on token rows.

    Same parameters and initialisation as torch's layer (``in_proj`` = ``self_attn.in_proj_*``, ``out_proj`` =
    ``self_attn.out_proj``, ``linear1``/``linear2``, ``norm1``/``norm2``); attention goes through a
    :class:`TokenFrame`, so rows can be a packed set of real utterances.
    """

    def __init__(self, dim: int, n_heads: int, ff_dim: int = FF_DIM, dropout: float = 0.1) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim {dim} must be divisible by n_heads {n_heads}")
        self.dim, self.n_heads, self.ff_dim, self.dropout = dim, n_heads, ff_dim, float(dropout)
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.linear1 = nn.Linear(dim, ff_dim)
        self.linear2 = nn.Linear(ff_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # as nn.MultiheadAttention: xavier-uniform in-projection, zero biases; Linear defaults elsewhere
        nn.init.xavier_uniform_(self.in_proj.weight)
        nn.init.zeros_(self.in_proj.bias)
        self.out_proj.reset_parameters()
        nn.init.zeros_(self.out_proj.bias)
        for module in (self.linear1, self.linear2, self.norm1, self.norm2):
            module.reset_parameters()

    def forward(self, x: torch.Tensor, frame: TokenFrame) -> torch.Tensor:
        """x ``[N, dim]`` token rows -> ``[N, dim]``."""
        p, training = self.dropout, self.training
        a = self.out_proj(frame.attend(self.in_proj(x), self.n_heads, p, training))
        x = self.norm1(x + dropout(a, p, training))
        f = self.linear2(dropout(F.relu(self.linear1(x)), p, training))
        return self.norm2(x + dropout(f, p, training))


class UtteranceTransformer(nn.Module):
    """The SPCL code's encoder: ``n_layers`` transformer layers on ``input_dim``, then ``Linear(input_dim, hidden)``.

    Args:
        input_dim: feature size of the modality (the transformer's ``d_model``).
        hidden: output size.
        n_layers: transformer layers (SPCL scripts: 2).
        n_heads: attention heads; ``None`` gives the SPCL code's rule (:func:`spcl_heads`).
        ff_dim: feed-forward width (2048, torch's default that the SPCL code keeps).
        dropout: dropout inside the layers (torch's three sites and the attention weights).
        attend_padding: the reference arithmetic (no key-padding mask over the padded batch; see the module
            docstring); ``False`` computes real utterances only, each attending within its dialogue.
    """

    def __init__(
        self,
        input_dim: int,
        hidden: int,
        n_layers: int = 2,
        n_heads: int | None = None,
        ff_dim: int = FF_DIM,
        dropout: float = 0.5,
        attend_padding: bool = False,
    ) -> None:
        super().__init__()
        if n_layers < 0:
            raise ValueError(f"encoder layers must be >= 0, got {n_layers}")
        self.input_dim, self.hidden = int(input_dim), int(hidden)
        self.n_heads = spcl_heads(self.input_dim) if n_heads is None else int(n_heads)
        self.attend_padding = bool(attend_padding)
        self.layers = nn.ModuleList([EncoderLayer(self.input_dim, self.n_heads, ff_dim, dropout) for _ in range(n_layers)])
        self.lin_out = nn.Linear(self.input_dim, self.hidden)

    def forward(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        """x ``[S, B, input_dim]`` (time-major, zeros at padding) -> the real utterances' encodings ``[R, hidden]``,
        in ``packing`` order."""
        if self.attend_padding:
            s, b = x.shape[:2]
            rows, frame = x.transpose(0, 1).reshape(b * s, -1), TokenFrame.padded(b, s)
        else:
            rows, frame = packing.pack(x), TokenFrame.packed(packing)
        for layer in self.layers:
            rows = layer(rows, frame)
        if self.attend_padding:
            rows = take_rows(rows, packing.index)
        return self.lin_out(rows)

    def extra_repr(self) -> str:
        return f"input_dim={self.input_dim}, hidden={self.hidden}, heads={self.n_heads}, attend_padding={self.attend_padding}"


__all__ = ["FF_DIM", "EncoderLayer", "TokenFrame", "TokenGroup", "UtteranceTransformer", "spcl_heads"]
