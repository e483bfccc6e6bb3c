"""Plain restatements of the SPCL code's backbone arithmetic (np4s/SPCL ``code/backbone``), for equivalence tests.

Written for clarity, not speed: loops per dialogue, per time step, per edge, as the reference does, taking
the weights of our vectorised modules. Every function works on a padded, time-major batch as the SPCL code
receives it (its ``Dataloader`` pads with zeros, speaker 0 at padding) and returns per-modality logits
``[S, B, C]`` that are meaningful at real positions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from backbones.attention import positional_encoding
from backbones.transformer import UtteranceTransformer


def torch_transformer(encoder: UtteranceTransformer) -> nn.TransformerEncoder:
    """torch's ``nn.TransformerEncoder`` (what the SPCL code builds) holding ``encoder``'s weights."""
    d = encoder.input_dim
    layer = nn.TransformerEncoderLayer(d, encoder.n_heads, encoder.layers[0].ff_dim, 0.0, batch_first=True)
    ref = nn.TransformerEncoder(layer, len(encoder.layers), enable_nested_tensor=False)
    ref = ref.to(encoder.lin_out.weight.dtype).eval()
    with torch.no_grad():
        for ours, theirs in zip(encoder.layers, ref.layers):
            theirs.self_attn.in_proj_weight.copy_(ours.in_proj.weight)
            theirs.self_attn.in_proj_bias.copy_(ours.in_proj.bias)
            theirs.self_attn.out_proj.weight.copy_(ours.out_proj.weight)
            theirs.self_attn.out_proj.bias.copy_(ours.out_proj.bias)
            for name in ("linear1", "linear2", "norm1", "norm2"):
                getattr(theirs, name).load_state_dict(getattr(ours, name).state_dict())
    return ref


def encode_padded(encoder: UtteranceTransformer, x: torch.Tensor) -> torch.Tensor:
    """The SPCL code's encoder call: the whole padded batch, no mask. x ``[S, B, d]`` -> ``[S, B, hidden]``."""
    with torch.no_grad():
        out = torch_transformer(encoder)(x.transpose(0, 1))
        return encoder.lin_out(out).transpose(0, 1)


def late_fusion(model, batch) -> dict[str, torch.Tensor]:
    return {m: model.heads[m](encode_padded(model.encoders[m], batch.features[m])) for m in model.modalities}


def _angular(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    cos = (u * v).sum() / (torch.sqrt((u * u).sum()) * torch.sqrt((v * v).sum()))
    return 1 - torch.acos(cos * 0.99999) / math.pi


def _big_adjacency(reps: list[torch.Tensor], lengths: list[int]) -> torch.Tensor:
    """create_big_adj: one ``[M R, M R]`` matrix, nodes modality-major; weights entry by entry, then D^-1/2 A D^-1/2."""
    m, total = len(reps), reps[0].shape[0]
    adj = torch.zeros(m * total, m * total, dtype=reps[0].dtype)
    start = 0
    for n in lengths:
        for a in range(m):
            for c in range(m):
                for i in range(n):
                    for j in range(n):
                        if a == c or i == j:
                            adj[a * total + start + i, c * total + start + j] = _angular(reps[a][start + i], reps[c][start + j])
        start += n
    d = adj.sum(1).pow(-0.5)
    return d[:, None] * adj * d[None, :]


def _gcnii(model, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    """GCNII_lyc (eval): Linear + ReLU, then per layer ReLU(theta * [A h || h0] W + (1 - theta) * ((1 - a) A h + a h0))."""
    h0 = torch.relu(model.input_fc(x))
    h = h0
    for k, conv in enumerate(model.convs, start=1):
        theta = math.log(model.lamda / k + 1)
        hi = adj @ h
        h = torch.relu(theta * (torch.cat([hi, h0], 1) @ conv.weight) + (1 - theta) * ((1 - model.alpha) * hi + model.alpha * h0))
    return torch.cat([x, h], dim=-1)


def _graph_part(model, batch) -> tuple[list[torch.Tensor], list[int], int]:
    lengths = [int(n) for n in batch.lengths]
    reps = []
    for m in model.modalities:
        enc = encode_padded(model.encoders[m], batch.features[m])  # [S, B, h]
        reps.append(torch.cat([enc[:n, b] for b, n in enumerate(lengths)]))  # packed in batch order
    adj = _big_adjacency(reps, lengths)
    feats = _gcnii(model, torch.cat(reps), adj)
    total = reps[0].shape[0]
    return [feats[i * total : (i + 1) * total] for i in range(len(model.modalities))], lengths, total


def _unflatten(rows: torch.Tensor, lengths: list[int], seq: int) -> torch.Tensor:
    out = rows.new_zeros(seq, len(lengths), rows.shape[-1])
    start = 0
    for b, n in enumerate(lengths):
        out[:n, b] = rows[start : start + n]
        start += n
    return out


def mmgcn(model, batch) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        feats, lengths, _ = _graph_part(model, batch)
        return {m: _unflatten(model.heads[m](feats[i]), lengths, batch.seq_len) for i, m in enumerate(model.modalities)}


def mm_dfn(model, batch) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        feats, lengths, _ = _graph_part(model, batch)
        mods = model.modalities
        hx = [torch.relu(model.attn_in[m](feats[i])) for i, m in enumerate(mods)]
        out = {}
        for i, mi in enumerate(mods):
            acc = hx[i] if len(mods) == 1 else 0
            for j, mj in enumerate(mods):
                if i != j:
                    z = torch.sigmoid(model.attn_gates[f"{mi}{mj}"](torch.cat([hx[i], hx[j], hx[i] * hx[j]], dim=-1)))
                    acc = acc + z * hx[i] + (1 - z) * hx[j]
            out[mi] = _unflatten(model.heads[mi](acc), lengths, batch.seq_len)
        return out


def dialoguegcn(model, batch) -> dict[str, torch.Tensor]:
    """MultiDialogueGCN: per modality, per dialogue and per edge."""
    wp, wf, n_spk = model.window_past, model.window_future, model.n_speakers
    out = {}
    with torch.no_grad():
        for m in model.modalities:
            head = model.graphs[m]
            ctx = encode_padded(model.context[m], batch.features[m])  # [S, B, g]
            logits = torch.zeros(batch.seq_len, batch.batch_size, model.n_classes, dtype=ctx.dtype)
            rg = head.rgcn
            w_rel = torch.einsum("rk,kio->rio", rg.comp, rg.bases)  # [R, in, out]
            for b in range(batch.batch_size):
                n = int(batch.lengths[b])
                x = ctx[:n, b]
                spk = batch.speakers[:n, b].tolist()
                edges = []  # (source j, target k, weight alpha_jk, relation)
                for j in range(n):
                    window = list(range(max(0, j - wp), min(n - 1, j + wf) + 1))
                    scores = torch.stack([(head.edge_att @ x[k]) @ x[j] for k in window])
                    alpha = torch.softmax(scores, 0)
                    for k, a in zip(window, alpha):
                        rel = (spk[j] * n_spk + spk[k]) * 2 + (0 if j < k else 1)
                        edges.append((j, k, a, rel))
                # RGCNConv: mean of W_r x_j per relation, plus root and bias
                h1 = x @ rg.root + rg.bias
                for k in range(n):
                    incoming: dict[int, list[int]] = {}
                    for j, tgt, _, rel in edges:
                        if tgt == k:
                            incoming.setdefault(rel, []).append(j)
                    for rel, sources in incoming.items():
                        h1[k] = h1[k] + sum(x[j] @ w_rel[rel] for j in sources) / len(sources)
                # GraphConv: lin_rel(sum_j alpha_jk h_j) + lin_root(h_k)
                agg = torch.zeros_like(h1)
                for j, k, a, _ in edges:
                    agg[k] = agg[k] + a * h1[j]
                h2 = head.gconv.lin_rel(agg) + head.gconv.lin_root(h1)
                logits[:n, b] = head.out(torch.relu(head.lin(torch.cat([x, h2], dim=-1))))
            out[m] = logits
    return out


def _gru(x, h, w_ih, b_ih, w_hh, b_hh):
    cell = nn.GRUCell(w_ih.shape[1], w_hh.shape[1]).to(x.dtype)
    with torch.no_grad():
        cell.weight_ih.copy_(w_ih)
        cell.bias_ih.copy_(b_ih)
        cell.weight_hh.copy_(w_hh)
        cell.bias_hh.copy_(b_hh)
    return cell(x, h)


def _dialogue_rnn(rnn, modality: int, direction: int, u: torch.Tensor, speakers: list[int], n_party: int) -> torch.Tensor:
    """One DialogueRNN of the SPCL code over one sequence ``u [T, d]`` -> emotion states ``[T, d_emotion]``."""
    g = 2 * modality + direction
    dg, dp, de = rnn.d_global, rnn.d_party, rnn.d_emotion
    k = 3 * dg + 3 * dp
    w_u = rnn.weight_u[modality][:, direction * k : (direction + 1) * k]
    b_u = rnn.bias_u[modality, direction * k : (direction + 1) * k]
    g_w_ih = torch.cat([w_u[:, : 3 * dg], rnn.weight_q[g][:, : 3 * dg]]).t()
    p_w_ih = torch.cat([w_u[:, 3 * dg :], rnn.p_weight_c[g]]).t()
    party = [torch.zeros(1, dp, dtype=u.dtype) for _ in range(n_party)]
    history: list[torch.Tensor] = []
    g_prev = torch.zeros(1, dg, dtype=u.dtype)
    e_prev = torch.zeros(1, de, dtype=u.dtype)
    outs = []
    pe = positional_encoding(u.shape[0], dg, dtype=u.dtype)
    for t in range(u.shape[0]):
        s = speakers[t]
        ut = u[t : t + 1]
        g_prev = _gru(torch.cat([ut, party[s]], 1), g_prev, g_w_ih, b_u[: 3 * dg], rnn.g_weight_hh[g].t(), rnn.g_bias_hh[g, 0])
        if history:
            mem = torch.cat(history) + pe[: len(history)]  # [t, dg]
            alpha = torch.softmax(mem @ rnn.att[g], 0)
            c = (alpha[:, None] * mem).sum(0, keepdim=True)
        else:
            c = torch.zeros(1, dg, dtype=u.dtype)
        history.append(g_prev)
        party[s] = _gru(torch.cat([ut, c], 1), party[s], p_w_ih, b_u[3 * dg :], rnn.weight_q[g][:, 3 * dg :].t(), rnn.p_bias_hh[g, 0])
        e_prev = _gru(party[s], e_prev, rnn.e_weight_ih[g].t(), rnn.e_bias_ih[g, 0], rnn.e_weight_hh[g].t(), rnn.e_bias_hh[g, 0])
        outs.append(e_prev)
    return torch.cat(outs)


def biddin(model, batch) -> dict[str, torch.Tensor]:
    """MultiBiModel: per modality, per dialogue: forwards over all S padded steps (zero features, speaker 0),
    backwards over the real steps only; then the self-attention with the reference's head layout."""
    s_len, b_len = batch.seq_len, batch.batch_size
    out = {}
    with torch.no_grad():
        for i, m in enumerate(model.modalities):
            emotions = torch.zeros(s_len, b_len, 2 * model.d_emotion, dtype=batch.features[m].dtype)
            for b in range(b_len):
                n = int(batch.lengths[b])
                x = batch.features[m][:, b]
                spk = batch.speakers[:, b].tolist()
                emotions[:, b, : model.d_emotion] = _dialogue_rnn(model.rnn, i, 0, x, spk, model.n_speakers)
                backward = _dialogue_rnn(model.rnn, i, 1, x[:n].flip(0), spk[:n][::-1], model.n_speakers)
                emotions[:n, b, model.d_emotion :] = backward.flip(0)
            e = emotions + positional_encoding(s_len, emotions.shape[-1], dtype=emotions.dtype)[:, None, :]
            out[m] = _reference_attention(model.heads[m], e)
    return out


def _reference_attention(head, e: torch.Tensor) -> torch.Tensor:
    """MultiHeadAttention of the SPCL code on a time-major ``[S, B, E]`` batch: row ``r = s * B + b`` of the
    flattened batch belongs to head group ``r // S`` at place ``r % S``; attention runs within a group, no mask."""
    s_len, b_len, d = e.shape
    h = head.n_heads
    rows = e.reshape(s_len * b_len, d)
    q, k, v = head.w_q(rows), head.w_k(rows), head.w_v(rows)
    ctx = torch.zeros_like(rows)
    for grp in range(b_len):
        sel = slice(grp * s_len, (grp + 1) * s_len)
        for head_i in range(h):
            cols = slice(head_i * d // h, (head_i + 1) * d // h)
            scores = q[sel, cols] @ k[sel, cols].t() / math.sqrt(d // h)
            ctx[sel, cols] = torch.softmax(scores, -1) @ v[sel, cols]
    out = torch.zeros_like(e)
    for s in range(s_len):
        for b in range(b_len):
            out[s, b] = ctx[b * s_len + s]  # the reference reads group b, place s back at (s, b)
    y = F.layer_norm(head.fc(out) + e, (d,))
    return head.out(torch.relu(head.linear(y)))


REFERENCES = {"late_fusion": late_fusion, "mmgcn": mmgcn, "mm_dfn": mm_dfn, "dialoguegcn": dialoguegcn, "biddin": biddin}
