"""BiDDIN: batch invariance (the original's defect), the packed recurrence against a plain loop, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backbones.attention import DialogueSelfAttention
from backbones.biddin import GroupedDialogueRNN, OriginalBiDDIN
from backbones.recurrent import History, SequenceLayout, SharedWeight, gru_cell
from spcl_search.data.batching import collate
from spcl_search.data.types import Dialogue

from conftest import DIMS, make_dialogues

SMALL = {"d_utt": 6, "d_global": 5, "d_party": 4, "d_emotion": 4, "hidden": 6, "n_heads": 2}


def _dialogue(vid: str, speakers: list[int], seed: int) -> Dialogue:
    rng = np.random.default_rng(seed)
    n = len(speakers)
    feats = {m: rng.normal(size=(n, d)).astype(np.float32) for m, d in DIMS.items()}
    return Dialogue(vid, np.zeros(n, dtype=np.int64), np.array(speakers, dtype=np.int64), feats)


def _build(modalities: str, n_speakers: int = 2, seed: int = 0, **kw) -> OriginalBiDDIN:
    torch.manual_seed(seed)
    return OriginalBiDDIN(modalities, {m: DIMS[m] for m in modalities}, 4, n_speakers, **{**SMALL, **kw}).eval()


@pytest.mark.parametrize("cross_modal", [True, False])
def test_a_dialogues_logits_do_not_depend_on_its_batch_mates(cross_modal):
    dialogues = [_dialogue("a", [0, 1, 1, 0, 1, 0, 0], 1), _dialogue("b", [1, 0, 1], 2), _dialogue("c", [0, 0, 1, 1, 0, 1, 0, 1, 1], 3)]
    model = _build("atv", cross_modal=cross_modal)
    with torch.no_grad():
        together = model(collate(dialogues, "atv", 2, pad_to=12))
        for j, d in enumerate(dialogues):
            alone = model(collate([d], "atv", 2))
            for m in "atv":
                torch.testing.assert_close(together[m][: len(d), j], alone[m][:, 0], atol=1e-5, rtol=1e-4)


def _gru(gi, gh, h):
    hidden = h.shape[-1]
    r, z = torch.sigmoid(gi[: 2 * hidden] + gh[: 2 * hidden]).chunk(2)
    n = torch.tanh(gi[2 * hidden :] + r * gh[2 * hidden :])
    return (1 - z) * n + z * h


def _reference_dialogue_rnn(rnn: GroupedDialogueRNN, u: torch.Tensor, speakers: list[int]) -> torch.Tensor:
    """One dialogue, plain Python loops over directions, steps and modalities: u ``[M, L, d_utt]`` -> ``[M, L, 2 de]``."""
    m_count, length = u.shape[0], u.shape[1]
    dg, dp, de = rnn.d_global, rnn.d_party, rnn.d_emotion
    out = torch.zeros(m_count, length, 2 * de)
    for d in range(2):
        order = list(range(length)) if d == 0 else list(reversed(range(length)))
        g_prev = [torch.zeros(dg) for _ in range(m_count)]
        e_prev = [torch.zeros(de) for _ in range(m_count)]
        party = [torch.zeros(rnn.n_speakers, dp) for _ in range(m_count)]
        hist: list[list[torch.Tensor]] = [[] for _ in range(m_count)]
        for k, t in enumerate(order):
            spk = speakers[t]
            pres, g_new = [], []
            for m in range(m_count):
                grp = 2 * m + d
                pre = u[m, t] @ rnn.weight_pre[m][:, d * rnn.d_pre : (d + 1) * rnn.d_pre] + rnn.bias_pre[m, 0, d * rnn.d_pre : (d + 1) * rnn.d_pre]
                pres.append(pre)
                q_s = party[m][spk]
                gi = pre[: 3 * dg] + q_s @ rnn.weight_q[grp][:, : 3 * dg]
                g_new.append(_gru(gi, g_prev[m] @ rnn.g_weight_hh[grp] + rnn.g_bias_hh[grp, 0], g_prev[m]))
            for m in range(m_count):
                grp = 2 * m + d
                pre, q_s = pres[m], party[m][spk]
                sources = range(m_count) if rnn.cross else [m]
                contexts = []
                for j, n in enumerate(sources):
                    query = pre[3 * dg + 3 * dp + j * dg : 3 * dg + 3 * dp + (j + 1) * dg]
                    if k == 0:
                        contexts.append(torch.zeros(dg))
                    else:
                        keys = torch.stack(hist[n])
                        contexts.append(torch.softmax(keys @ query, 0) @ keys)
                context = torch.cat(contexts)
                if rnn.cross:
                    context = context @ rnn.fuse_weight[grp] + rnn.fuse_bias[grp, 0]
                gi_p = pre[3 * dg : 3 * dg + 3 * dp] + context @ rnn.p_weight_c[grp]
                gh_p = q_s @ rnn.weight_q[grp][:, 3 * dg :] + rnn.p_bias_hh[grp, 0]
                q_new = _gru(gi_p, gh_p, q_s)
                party[m] = party[m].clone()
                party[m][spk] = q_new
                e_prev[m] = _gru(q_new @ rnn.e_weight_ih[grp] + rnn.e_bias_ih[grp, 0], e_prev[m] @ rnn.e_weight_hh[grp] + rnn.e_bias_hh[grp, 0], e_prev[m])
                out[m, t, d * de : (d + 1) * de] = e_prev[m]
            for m in range(m_count):
                hist[m].append(g_new[m])
                g_prev[m] = g_new[m]
    return out


@pytest.mark.parametrize("cross_modal", [True, False])
def test_packed_recurrence_matches_a_plain_loop_over_one_dialogue(cross_modal):
    torch.manual_seed(0)
    rnn = GroupedDialogueRNN(3, 6, 5, 4, 3, n_speakers=3, cross_modal=cross_modal)
    dialogues = [[0, 1, 2, 1, 1, 0], [2, 2, 0], [1, 0, 0, 2, 1, 1, 0, 2]]
    lengths = [len(d) for d in dialogues]
    seq = max(lengths) + 2
    mask = torch.zeros(seq, len(dialogues))
    speakers = torch.zeros(seq, len(dialogues), dtype=torch.long)
    for j, d in enumerate(dialogues):
        mask[: len(d), j] = 1
        speakers[: len(d), j] = torch.tensor(d)
    layout = SequenceLayout.from_mask(mask)
    u_pad = torch.randn(3, seq, len(dialogues), 6)
    with torch.no_grad():
        got = layout.to_padded(rnn(torch.stack([layout.rows(x) for x in u_pad]), speakers, layout))  # [M, B, T, 2de]
        for j, d in enumerate(dialogues):
            expected = _reference_dialogue_rnn(rnn, u_pad[:, : len(d), j], d)
            torch.testing.assert_close(got[:, j, : len(d)], expected, atol=1e-5, rtol=1e-4)


def test_without_cross_modal_attention_a_modality_ignores_the_others():
    batch = collate(make_dialogues(3), "atv", 2)
    model = _build("atv", cross_modal=False)
    with torch.no_grad():
        before = model(batch)
        batch.features["a"] = torch.randn_like(batch.features["a"])
        after = model(batch)
    assert torch.equal(before["t"], after["t"]) and torch.equal(before["v"], after["v"])
    assert not torch.allclose(before["a"], after["a"])


def test_with_cross_modal_attention_the_other_modalities_influence_each_logit():
    batch = collate(make_dialogues(3, min_len=4), "atv", 2)
    model = _build("atv", cross_modal=True)
    with torch.no_grad():
        before = model(batch)
        batch.features["a"] = torch.randn_like(batch.features["a"])
        after = model(batch)
    real = batch.mask > 0
    assert not torch.allclose(before["t"][real], after["t"][real])


def test_positional_encoding_switch_changes_the_logits_but_not_the_parameters():
    batch = collate(make_dialogues(2), "at", 2)
    plain, positional = _build("at"), _build("at", positional=True)
    assert [n for n, _ in plain.named_parameters()] == [n for n, _ in positional.named_parameters()]
    with torch.no_grad():
        assert not torch.allclose(plain(batch)["t"], positional(batch)["t"])


def test_history_attention_gradients_match_plain_autograd():
    torch.manual_seed(0)
    rows, steps, dim = 3, 5, 4
    queries = torch.randn(steps, rows, 2, dim, dtype=torch.float64, requires_grad=True)
    inputs = torch.randn(steps, rows, dim, dtype=torch.float64, requires_grad=True)

    def run(use_history: bool) -> torch.Tensor:
        store = History(rows, steps, dim, inputs) if use_history else None
        past, h, outs = [], torch.zeros(rows, dim, dtype=torch.float64), []
        for t in range(steps):
            if t:
                if use_history:
                    ctx = store.attend(queries[t][: rows - (t > 2)])  # later steps: a prefix of the rows
                else:
                    keys = torch.stack(past, 1)[: rows - (t > 2)]
                    ctx = torch.softmax(queries[t][: rows - (t > 2)] @ keys.transpose(1, 2), -1) @ keys
                h = torch.tanh(inputs[t, : ctx.shape[0]] + ctx.sum(1) + h[: ctx.shape[0]])
            else:
                h = torch.tanh(inputs[t])
            if use_history:
                store.write(h)
            past.append(torch.cat([h, torch.zeros(rows - h.shape[0], dim, dtype=h.dtype)]) if not use_history else h)
            outs.append(h.sum())
        return torch.stack(outs).sum()

    a, b = run(True), run(False)
    torch.testing.assert_close(a, b)
    for ga, gb in zip(torch.autograd.grad(a, (queries, inputs)), torch.autograd.grad(b, (queries, inputs))):
        torch.testing.assert_close(ga, gb)


def test_shared_weight_gradients_match_plain_autograd():
    torch.manual_seed(0)
    weight = torch.randn(2, 4, 9, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, 1, 9, dtype=torch.float64, requires_grad=True)
    xs = torch.randn(6, 2, 3, 4, dtype=torch.float64, requires_grad=True)

    def run(shared: bool) -> torch.Tensor:
        w = SharedWeight(weight) if shared else None
        h = torch.zeros(2, 3, 3, dtype=torch.float64)
        for x in xs:
            gh = w.addmm(bias, x + h.sum(-1, keepdim=True)) if shared else torch.baddbmm(bias, x + h.sum(-1, keepdim=True), weight)
            h = gru_cell(gh, gh, h)
        return h.pow(2).sum()

    for ga, gb in zip(torch.autograd.grad(run(True), (weight, bias, xs)), torch.autograd.grad(run(False), (weight, bias, xs))):
        torch.testing.assert_close(ga, gb)


def test_fused_gru_cell_matches_torch_gru_cell_with_gradients():
    torch.manual_seed(0)
    cell = torch.nn.GRUCell(5, 4).double()
    x = torch.randn(3, 5, dtype=torch.float64)
    h = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(gru_cell(x @ cell.weight_ih.t() + cell.bias_ih, h @ cell.weight_hh.t() + cell.bias_hh, h), cell(x, h))
    gi = torch.randn(3, 12, dtype=torch.float64, requires_grad=True)
    gh = torch.randn(3, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gru_cell, (gi, gh, h))


def test_dialogue_self_attention_matches_multihead_attention_with_a_key_padding_mask():
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    mine = DialogueSelfAttention(8, 2)
    with torch.no_grad():
        mine.qkv.weight.copy_(ref.in_proj_weight)
        mine.qkv.bias.copy_(ref.in_proj_bias)
        mine.out.weight.copy_(ref.out_proj.weight)
        mine.out.bias.copy_(ref.out_proj.bias)
    valid = torch.arange(6)[None, :] < torch.tensor([6, 3, 1])[:, None]
    x = torch.randn(3, 6, 8)
    with torch.no_grad():
        expected, _ = ref(x, x, x, key_padding_mask=~valid, need_weights=False)
        got = mine(x, valid)
    torch.testing.assert_close(got[valid], expected[valid], atol=1e-6, rtol=1e-5)
    assert torch.all(got[~valid] == 0)


def test_heads_must_divide_the_emotion_width():
    with pytest.raises(ValueError, match="must be divisible by n_heads"):
        OriginalBiDDIN("t", {"t": 8}, 4, 2, d_emotion=5, n_heads=4)


def test_extra_config_records_the_switches():
    cfg = _build("at", cross_modal=False, positional=True).extra_config()
    assert cfg["cross_modal"] is False and cfg["positional"] is True
    assert {k: cfg[k] for k in ("d_global", "d_party", "d_emotion")} == {"d_global": 5, "d_party": 4, "d_emotion": 4}
