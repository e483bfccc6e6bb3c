"""DialogueGCN: the window graph, its relation types and edge weights, the vectorised layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from backbones.dialoguegcn import OriginalDialogueGCN, RelationalGraphConv, WindowGraph
from backbones.recurrent import GroupedBiLSTM, SequenceLayout
from spcl_search.data.batching import collate
from spcl_search.data.types import Dialogue

from conftest import DIMS, make_dialogues


def _dialogue(vid: str, speakers: list[int], seed: int = 0) -> Dialogue:
    rng = np.random.default_rng(seed)
    n = len(speakers)
    feats = {m: rng.normal(size=(n, d)).astype(np.float32) for m, d in DIMS.items()}
    return Dialogue(vid, np.zeros(n, dtype=np.int64), np.array(speakers, dtype=np.int64), feats)


def _graph(dialogues, wp, wf, n_speakers=2, pad_to=None) -> WindowGraph:
    batch = collate(dialogues, "t", n_speakers, pad_to=pad_to)
    return WindowGraph.build(batch.mask.t() > 0, batch.speakers.t(), wp, wf, n_speakers)


def test_window_edges_and_relation_types_on_a_two_speaker_dialogue():
    speakers = [0, 1, 0, 0, 1]
    graph = _graph([_dialogue("d", speakers)], wp=1, wf=2)
    rel = graph.relation()[0]
    for i in range(5):  # target
        for j in range(5):  # source
            if i - 1 <= j <= i + 2:
                expected = (speakers[j] * 2 + speakers[i]) * 2 + int(j > i)
            else:
                expected = -1
            assert rel[i, j].item() == expected, (i, j)
    assert graph.n_relations == 8
    # the same graph as edge lists: 3 + 4 + 4 + 3 + 2 edges, self-loops counted as "past"
    edge_index, edge_type = graph.edge_index()
    assert edge_index.shape == (2, 16)
    loops = edge_index[0] == edge_index[1]
    assert loops.sum() == 5
    assert (edge_type[loops] % 2 == 0).all()


def test_padded_nodes_keep_only_their_self_loop_and_dialogues_stay_apart():
    graph = _graph([_dialogue("long", [0, 1, 0, 1]), _dialogue("short", [1, 0])], wp=10, wf=10, pad_to=6)
    short = graph.edge[1]
    assert short[:2, :2].all()  # the real part is fully connected (window 10)
    assert not short[:2, 2:].any() and not short[2:, :2].any()  # padding neither sends nor receives
    assert torch.equal(short[2:, 2:], torch.eye(4, dtype=torch.bool))
    assert graph.edge.shape == (2, 6, 6)  # one block per dialogue: no edge can join two dialogues


def test_attention_edge_weights_sum_to_one_over_each_window():
    dialogues = make_dialogues(3, min_len=4, max_len=12)
    batch = collate(dialogues, "at", 2, pad_to=15)
    torch.manual_seed(0)
    model = OriginalDialogueGCN("at", {m: DIMS[m] for m in "at"}, 4, 2, hidden=8, window_past=2, window_future=3).eval()
    with torch.no_grad():
        weights = model.edge_weights(batch, "t")
    graph = model.graph(batch)
    assert torch.all(weights[~graph.edge] == 0)
    sums = weights.sum(-1)
    torch.testing.assert_close(sums, torch.ones_like(sums))


def _reference_rgcn(conv: RelationalGraphConv, x, weight, graph: WindowGraph) -> torch.Tensor:
    """Per-edge loop over the paper's formula (no vectorisation)."""
    rel = graph.relation()
    w_rel = torch.einsum("rk,kio->rio", conv.comp, conv.bases)
    out = torch.zeros(x.shape[0], x.shape[1], conv.out_dim, dtype=x.dtype)
    for b in range(x.shape[0]):
        for i in range(x.shape[1]):
            for j in range(x.shape[1]):
                r = int(rel[b, i, j])
                if r < 0:
                    continue
                norm = 1.0
                if conv.aggr == "mean":
                    norm = float((rel[b, i] == r).sum())
                out[b, i] += weight[b, i, j] / norm * (x[b, j] @ w_rel[r])
            out[b, i] += weight[b, i, i] * (x[b, i] @ conv.root) + conv.bias
    return out


@pytest.mark.parametrize("n_speakers,n_bases", [(2, 30), (3, 4)], ids=["relation-matrices", "bases"])
@pytest.mark.parametrize("aggr", ["add", "mean"])
def test_vectorised_relational_conv_matches_a_per_edge_loop(n_speakers, n_bases, aggr):
    torch.manual_seed(0)
    dialogues = [_dialogue("a", [0, 2 % n_speakers, 1, 0, 1, 1]), _dialogue("b", [1, 0, 1 % n_speakers])]
    graph = _graph(dialogues, wp=2, wf=1, n_speakers=n_speakers)
    conv = RelationalGraphConv(5, 3, n_speakers, n_bases=n_bases, aggr=aggr).double()
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    weight = torch.rand(2, 6, 6, dtype=torch.float64) * graph.edge
    real = graph.valid  # padded nodes send no message (their own output is never read)
    torch.testing.assert_close(conv(x, weight, graph)[real], _reference_rgcn(conv, x, weight, graph)[real])


def test_grouped_bilstm_matches_nn_lstm_on_packed_sequences():
    torch.manual_seed(0)
    hidden, dim = 4, 5
    ref = torch.nn.LSTM(dim, hidden, num_layers=2, bidirectional=True).eval()
    mine = GroupedBiLSTM([dim], hidden, num_layers=2).eval()
    order = torch.cat([torch.arange(0, 2 * hidden), torch.arange(3 * hidden, 4 * hidden), torch.arange(2 * hidden, 3 * hidden)])  # (i,f,g,o) -> (i,f,o,g)

    def w(name):
        return getattr(ref, name)[order]

    with torch.no_grad():
        mine.weight_in[0].copy_(torch.cat([w("weight_ih_l0"), w("weight_ih_l0_reverse")]).t())
        mine.bias_in[0].copy_(torch.cat([w("bias_ih_l0") + w("bias_hh_l0"), w("bias_ih_l0_reverse") + w("bias_hh_l0_reverse")]))
        mine.weight_ih[0].copy_(torch.cat([w("weight_ih_l1"), w("weight_ih_l1_reverse")]).t()[None])
        mine.bias_ih[0].copy_(torch.cat([w("bias_ih_l1") + w("bias_hh_l1"), w("bias_ih_l1_reverse") + w("bias_hh_l1_reverse")])[None, None])
        for layer in range(2):
            mine.weight_hh[layer].copy_(torch.stack([w(f"weight_hh_l{layer}").t(), w(f"weight_hh_l{layer}_reverse").t()]))
    lengths = torch.tensor([3, 7, 5])
    mask = (torch.arange(7)[:, None] < lengths[None]).float()
    x = torch.randn(7, 3, dim) * mask[..., None]
    with torch.no_grad():
        expected, _ = pad_packed_sequence(ref(pack_padded_sequence(x, lengths, enforce_sorted=False))[0])
        layout = SequenceLayout.from_mask(mask)
        got = layout.to_padded(mine([x], layout))[0].transpose(0, 1)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_window_sizes_and_aggregation_switch_the_model():
    batch = collate(make_dialogues(2, min_len=8, max_len=8), "t", 2)

    def logits(**kw):
        torch.manual_seed(0)
        return OriginalDialogueGCN("t", {"t": DIMS["t"]}, 4, 2, hidden=8, **kw).eval()(batch)["t"]

    base = logits()
    assert not torch.allclose(base, logits(window_past=1, window_future=1))
    assert not torch.allclose(base, logits(rgcn_aggr="mean"))
    with pytest.raises(ValueError, match="rgcn_aggr must be one of add, mean"):
        logits(rgcn_aggr="max")


def test_meld_sized_speaker_sets_use_the_basis_path_and_stay_padding_invariant():
    dialogues = [_dialogue("a", [0, 8, 3, 8, 1], seed=1), _dialogue("b", [5, 2, 7], seed=2)]
    torch.manual_seed(0)
    model = OriginalDialogueGCN("at", {m: DIMS[m] for m in "at"}, 7, 9, hidden=8).eval()
    assert model.graphs["t"].rgcn.n_relations == 162 > model.n_bases
    with torch.no_grad():
        tight = model(collate(dialogues, "at", 9))
        padded = model(collate(dialogues, "at", 9, pad_to=9))
    for m in "at":
        torch.testing.assert_close(padded[m][:5], tight[m][:5], atol=1e-5, rtol=1e-4)


def test_extra_config_records_the_hyperparameters():
    model = OriginalDialogueGCN("t", {"t": 8}, 4, 2, hidden=12, window_past=2, window_future=5, rgcn_aggr="mean")
    assert model.extra_config() == {
        "variant": "original",
        "hidden": 12,
        "graph_hidden": 12,
        "window_past": 2,
        "window_future": 5,
        "n_bases": 30,
        "rgcn_aggr": "mean",
        "dropout": 0.5,
    }
