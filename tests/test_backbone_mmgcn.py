"""MMGCN and the shared multimodal graph: model-specific behaviour (the generic contract is tested elsewhere)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backbones.mmgcn import OriginalMMGCN
from backbones.multimodal_graph import (
    MultimodalGraph,
    Packing,
    PaddedBiRNN,
    build_graph,
    edge_weights,
    plan_buckets,
)
from spcl_search.data.batching import collate
from spcl_search.data.types import MODALITY_SUBSETS, Dialogue

DIMS = {"a": 6, "t": 5, "v": 7}
N_CLASSES = 4
N_SPEAKERS = 3


def make_dialogues(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [
        Dialogue(
            f"d{i}",
            rng.integers(0, N_CLASSES, n),
            rng.integers(0, N_SPEAKERS, n),
            {m: rng.standard_normal((n, d)).astype(np.float32) for m, d in DIMS.items()},
        )
        for i, n in enumerate(lengths)
    ]


def make_model(modalities="atv", **kw):
    torch.manual_seed(0)
    kw.setdefault("n_layers", 3)
    return OriginalMMGCN(modalities, DIMS, N_CLASSES, N_SPEAKERS, hidden=8, graph_hidden=6, **kw).eval()


def angular(u, v):
    cos = float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
    return 1.0 - math.acos(cos) / math.pi


def test_edge_weights_equal_one_minus_arccos_over_pi_on_a_hand_made_example():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    t = np.array([[0.0, 1.0], [-1.0, -1.0], [1.0, 0.0]])
    nodes = torch.tensor(np.stack([a, t]), dtype=torch.float32)  # [M=2, R=3, H=2]
    mask = torch.tensor([[1.0], [1.0], [1.0], [0.0]])  # one dialogue of 3 utterances padded to 4 steps
    packing = Packing.from_mask(mask)
    intra, cross = edge_weights(nodes, packing)

    assert intra.shape == (2, 1, 4, 4) and cross.shape == (2, 2, 3)
    for m, feats in enumerate((a, t)):
        for i in range(3):
            for j in range(3):
                expected = 1.0 if i == j else angular(feats[i], feats[j])
                assert intra[m, 0, i, j].item() == pytest.approx(expected, abs=1e-5)
    # hand values: orthogonal 0.5, 45 degrees 0.75, 135 degrees 0.25
    assert intra[0, 0, 0, 1].item() == pytest.approx(0.5, abs=1e-6)
    assert intra[0, 0, 0, 2].item() == pytest.approx(0.75, abs=1e-6)
    assert intra[1, 0, 0, 1].item() == pytest.approx(0.25, abs=1e-6)
    # across modalities only the same utterance: a_i -- t_i
    assert cross[0, 1].tolist() == pytest.approx([0.5, 0.25, 0.75], abs=1e-6)
    assert cross[1, 0].tolist() == pytest.approx([0.5, 0.25, 0.75], abs=1e-6)
    assert cross[0, 0].abs().sum().item() == 0.0
    # the padded step is isolated: only its self-loop
    assert intra[:, 0, 3, :3].abs().sum().item() == 0.0 and intra[:, 0, :3, 3].abs().sum().item() == 0.0
    assert intra[:, 0, 3, 3].tolist() == [1.0, 1.0]


def test_adjacency_is_symmetrically_normalised():
    rng = np.random.default_rng(1)
    nodes = torch.tensor(rng.standard_normal((3, 5, 4)), dtype=torch.float32)
    mask = torch.ones(5, 1)
    graph = build_graph(nodes, Packing.from_mask(mask))
    adj = graph.dense()[0].double()  # [15, 15], node order (modality, step)

    # rebuild A by hand from the definition and normalise it
    feats = nodes.double().numpy()
    raw = np.zeros((15, 15))
    for m in range(3):
        for n in range(3):
            for i in range(5):
                for j in range(5):
                    if m == n and i == j:
                        raw[m * 5 + i, n * 5 + j] = 1.0
                    elif m == n or i == j:
                        raw[m * 5 + i, n * 5 + j] = angular(feats[m, i], feats[n, j])
    d = raw.sum(1) ** -0.5
    expected = d[:, None] * raw * d[None, :]
    np.testing.assert_allclose(adj.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(adj.numpy(), adj.numpy().T, atol=1e-6)


@pytest.mark.parametrize("overhead", [0.0, 2048.0, math.inf])
def test_bucketed_propagation_equals_the_dense_adjacency_product(overhead):
    lengths = [7, 2, 5, 7, 1, 4]
    s = max(lengths) + 2
    mask = (torch.arange(s).unsqueeze(1) < torch.tensor(lengths)).float()  # [S, B]
    packing = Packing.from_mask(mask, overhead)
    torch.manual_seed(0)
    graph = build_graph(torch.randn(3, packing.n_real, 5), packing)
    h = torch.randn(3, packing.n_real, 4)

    got = graph.propagate(h)
    dense_h = packing.scatter(h).permute(1, 0, 2, 3).reshape(len(lengths), 3 * s, 4)  # [B, M*S, H]
    want = torch.bmm(graph.dense(), dense_h).view(len(lengths), 3, s, 4).permute(1, 0, 2, 3)
    want = want.reshape(3, len(lengths) * s, 4).index_select(1, packing.index)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_bucket_plan_groups_similar_lengths():
    assert plan_buckets([100, 98, 97, 10, 9, 8], overhead=1000) == [3, 3]
    assert plan_buckets([100, 98, 97], overhead=0) == [1, 1, 1]
    assert plan_buckets([5, 4, 3], overhead=math.inf) == [3]
    assert sum(plan_buckets([30, 20, 20, 10, 1], overhead=100)) == 5


def test_no_cross_dialogue_or_padding_leakage():
    model = make_model()
    dialogues = make_dialogues([5, 8, 3])
    base = collate(dialogues, "atv", N_SPEAKERS)
    with torch.no_grad():
        ref = model(base)

        # other dialogues' features change: dialogue 0 is untouched
        others = make_dialogues([5, 8, 3], seed=7)
        mixed = collate([dialogues[0], others[1], others[2]], "atv", N_SPEAKERS)
        out = model(mixed)
        for m in "atv":
            torch.testing.assert_close(out[m][:5, 0], ref[m][:5, 0], atol=1e-6, rtol=0)

        # garbage in the padded positions, and extra padding: real logits unchanged
        noisy = collate(dialogues, "atv", N_SPEAKERS, pad_to=12)
        for m, x in noisy.features.items():
            x[noisy.mask == 0] = 1e3
        noisy.speakers[noisy.mask == 0] = 2
        out = model(noisy)
        for m in "atv":
            for j, d in enumerate(dialogues):
                torch.testing.assert_close(out[m][: len(d), j], ref[m][: len(d), j], atol=1e-5, rtol=0)
            assert torch.isfinite(out[m]).all()


@pytest.mark.parametrize("modalities", MODALITY_SUBSETS)
def test_each_modality_subset_gives_its_keys(modalities):
    model = make_model(modalities)
    batch = collate(make_dialogues([4, 2]), modalities, N_SPEAKERS)
    out = model(batch)
    assert list(out) == list(modalities)
    for logits in out.values():
        assert logits.shape == (4, 2, N_CLASSES)
        assert torch.isfinite(logits).all()


def test_one_modality_builds_a_graph_over_that_modality_only():
    model = make_model("v")
    batch = collate(make_dialogues([6, 3]), "v", N_SPEAKERS)
    packing = Packing.from_mask(batch.mask)
    graph = build_graph(model.encode(batch, packing), packing)
    assert isinstance(graph, MultimodalGraph) and graph.n_modalities == 1 and graph.cross is None
    assert graph.dense().shape == (2, 6, 6)
    assert model(batch)["v"].shape == (6, 2, N_CLASSES)
    assert model.speaker_embedding is None and model.text_rnn is None


@pytest.mark.parametrize("n_layers", [1, 8])
def test_layer_count_sets_the_number_of_gcnii_layers(n_layers):
    model = make_model(n_layers=n_layers)
    assert len(model.convs) == n_layers
    assert model.extra_config()["n_layers"] == n_layers
    thetas = [conv.theta for conv in model.convs]
    assert thetas == pytest.approx([math.log(0.5 / layer + 1) for layer in range(1, n_layers + 1)])


def test_variant_switch_changes_the_gcnii_weight_shape():
    assert make_model(gcn_variant=True).convs[0].weight.shape == (12, 6)
    assert make_model(gcn_variant=False).convs[0].weight.shape == (6, 6)


def test_speaker_embedding_reaches_up_to_meld_speaker_count():
    model = OriginalMMGCN("t", {"t": 5}, 7, 9, hidden=8, graph_hidden=6, n_layers=2).eval()
    rng = np.random.default_rng(0)
    d = Dialogue("m", rng.integers(0, 7, 9), np.arange(9), {"t": rng.standard_normal((9, 5)).astype(np.float32)})
    out = model(collate([d], "t", 9))
    assert out["t"].shape == (9, 1, 7) and model.speaker_embedding.num_embeddings == 9


def test_padded_birnn_equals_packed_bidirectional_lstm():
    torch.manual_seed(0)
    ref = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    ours = PaddedBiRNN("lstm", 3, 4, num_layers=2)
    for layer in range(2):
        for direction, rnns in (("", ours.forward_rnns), ("_reverse", ours.backward_rnns)):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(rnns[layer], f"{kind}_l0").data.copy_(getattr(ref, f"{kind}_l{layer}{direction}"))
    lengths = torch.tensor([5, 2, 4])
    x = torch.randn(6, 3, 3)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    want, _ = torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], total_length=6)
    got = ours(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(got[:n, b], want[:n, b], atol=1e-6, rtol=1e-5)


def test_same_seed_gives_the_same_training_step():
    batch = collate(make_dialogues([5, 3]), "atv", N_SPEAKERS)
    outs = []
    for _ in range(2):
        model = make_model().train()
        torch.manual_seed(123)
        outs.append(model(batch)["t"])
    torch.testing.assert_close(outs[0], outs[1], atol=0, rtol=0)


def test_invalid_hyper_parameters_are_rejected():
    with pytest.raises(ValueError, match="even"):
        OriginalMMGCN("t", DIMS, 4, 2, hidden=7)
    with pytest.raises(ValueError, match="n_layers"):
        OriginalMMGCN("t", DIMS, 4, 2, n_layers=0)
