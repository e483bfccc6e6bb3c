"""MM-DFN: model-specific behaviour (the generic backbone contract is tested elsewhere)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import backbones
from backbones.mm_dfn import IEMOCAP_SPEAKER_WEIGHTS, OriginalMMDFN, speaker_positions
from backbones.multimodal_graph import Packing
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
    return OriginalMMDFN(modalities, DIMS, N_CLASSES, N_SPEAKERS, hidden=8, graph_hidden=6, **kw).eval()


def test_speaker_positions_lay_out_each_speakers_utterances_in_order():
    speakers = [[0, 1, 0, 0, 2], [1, 1, 0]]
    dialogues = [
        Dialogue(f"d{i}", np.zeros(len(s), dtype=np.int64), np.array(s), {"a": np.zeros((len(s), 2), np.float32)})
        for i, s in enumerate(speakers)
    ]
    batch = collate(dialogues, "a", N_SPEAKERS, pad_to=6)
    packing = Packing.from_mask(batch.mask)
    slot, lengths = speaker_positions(batch.speakers, packing)

    # naive reference: every (dialogue, speaker) group's utterance steps, in time order
    groups = {}
    for b, spk in enumerate(speakers):
        for step, s in enumerate(spk):
            groups.setdefault((b, s), []).append(step)
    assert sorted(lengths.tolist()) == sorted(len(v) for v in groups.values())
    n_groups = lengths.numel()
    rows = packing.index.tolist()  # flat b * S + s of each packed row
    seen = {}
    for r, flat in enumerate(rows):
        b, step = divmod(flat, batch.seq_len)
        t, g = divmod(int(slot[r]), n_groups)
        seen.setdefault(g, {})[t] = (b, step)
    assert len(seen) == n_groups
    for g, by_rank in seen.items():
        members = [by_rank[t] for t in range(len(by_rank))]
        b = members[0][0]
        s = speakers[b][members[0][1]]
        assert members == [(b, step) for step in groups[(b, s)]]
        assert lengths[g].item() == len(members)


def test_speaker_encoder_stays_within_a_speaker():
    # audio nodes = Linear(x) + 3 * speaker-GRU(own speaker's sequence): other speakers cannot reach them
    model = make_model("a", speaker_weights={"a": 3.0})
    rng = np.random.default_rng(0)
    spk = np.array([0, 1, 0, 1, 0])
    feats = rng.standard_normal((5, 6)).astype(np.float32)
    d = Dialogue("d", np.zeros(5, dtype=np.int64), spk, {"a": feats})
    changed = feats.copy()
    changed[spk == 1] += 5.0
    d2 = Dialogue("d", np.zeros(5, dtype=np.int64), spk, {"a": changed})
    with torch.no_grad():
        outs = []
        for dia in (d, d2):
            batch = collate([dia], "a", N_SPEAKERS)
            outs.append(model.encode(batch, Packing.from_mask(batch.mask))[0])
    torch.testing.assert_close(outs[0][spk == 0], outs[1][spk == 0], atol=1e-6, rtol=0)
    assert not torch.allclose(outs[0][spk == 1], outs[1][spk == 1])


def test_no_cross_dialogue_or_padding_leakage():
    model = make_model()
    dialogues = make_dialogues([5, 8, 3])
    with torch.no_grad():
        ref = model(collate(dialogues, "atv", N_SPEAKERS))
        others = make_dialogues([5, 8, 3], seed=7)
        out = model(collate([dialogues[0], others[1], others[2]], "atv", N_SPEAKERS))
        for m in "atv":
            torch.testing.assert_close(out[m][:5, 0], ref[m][:5, 0], atol=1e-6, rtol=0)
        noisy = collate(dialogues, "atv", N_SPEAKERS, pad_to=12)
        for x in noisy.features.values():
            x[noisy.mask == 0] = 1e3
        noisy.speakers[noisy.mask == 0] = 2
        out = model(noisy)
        for m in "atv":
            for j, d in enumerate(dialogues):
                torch.testing.assert_close(out[m][: len(d), j], ref[m][: len(d), j], atol=1e-5, rtol=0)
            assert torch.isfinite(out[m]).all()


@pytest.mark.parametrize("fusion", ["dfn", "gated_attention"])
@pytest.mark.parametrize("modalities", MODALITY_SUBSETS)
def test_each_modality_subset_gives_its_keys(modalities, fusion):
    model = make_model(modalities, fusion=fusion)
    out = model(collate(make_dialogues([4, 2]), modalities, N_SPEAKERS))
    assert list(out) == list(modalities)
    for logits in out.values():
        assert logits.shape == (4, 2, N_CLASSES)
        assert torch.isfinite(logits).all()


def test_fusion_option_switches_between_dfn_and_gated_attention():
    dfn = make_model(fusion="dfn")
    assert isinstance(dfn.cell, torch.nn.LSTMCell) and not hasattr(dfn, "attn_gates")
    gated = make_model(fusion="gated_attention")
    assert gated.cell is None and sorted(gated.attn_gates) == ["at", "av", "ta", "tv", "va", "vt"]
    assert gated.extra_config()["fusion"] == "gated_attention"
    with pytest.raises(ValueError, match="fusion"):
        make_model(fusion="concat")


def test_gate_option_picks_the_recurrent_cell_between_layers():
    assert isinstance(make_model(gate="gru").cell, torch.nn.GRUCell)
    assert isinstance(make_model(gate="lstm").cell, torch.nn.LSTMCell)
    with pytest.raises(ValueError, match="gate"):
        make_model(gate="rnn")


@pytest.mark.parametrize("n_layers", [1, 16])
def test_layer_count_sets_the_number_of_graph_layers(n_layers):
    model = make_model(n_layers=n_layers)
    assert len(model.convs) == n_layers and model.extra_config()["n_layers"] == n_layers
    assert all(conv.alpha == 0.2 for conv in model.convs)


def test_paper_defaults():
    model = OriginalMMDFN("atv", DIMS, N_CLASSES, 2)
    cfg = model.extra_config()
    assert (cfg["n_layers"], cfg["alpha"], cfg["lamda"], cfg["hidden"], cfg["graph_hidden"]) == (16, 0.2, 0.5, 200, 100)
    assert cfg["fusion"] == "dfn" and cfg["gate"] == "lstm"
    assert cfg["speaker_weights"] == IEMOCAP_SPEAKER_WEIGHTS


def test_zero_speaker_weights_drop_the_speaker_encoder():
    assert make_model("v").speaker_rnn is None  # IEMOCAP weights: visual 0
    assert make_model("v", speaker_weights={"v": 0.5}).speaker_rnn is not None
    assert make_model("atv", speaker_weights={"a": 0, "t": 0, "v": 0}).speaker_rnn is None


def test_dataset_defaults_pick_the_papers_speaker_weights():
    meld = backbones.build("mm_dfn", "atv", DIMS, 7, 9, dataset="meld", variant="original", n_layers=2)
    iemocap = backbones.build("mm_dfn", "atv", DIMS, 6, 2, dataset="iemocap", variant="original", n_layers=2)
    assert meld.speaker_weights == {"a": 0.5, "t": 1.5, "v": 0.5}
    assert iemocap.speaker_weights == {"a": 3.0, "t": 1.0, "v": 0.0}


def test_one_modality_works_for_both_fusions():
    batch = collate(make_dialogues([6, 3]), "t", N_SPEAKERS)
    for fusion in ("dfn", "gated_attention"):
        out = make_model("t", fusion=fusion)(batch)
        assert list(out) == ["t"] and out["t"].shape == (6, 2, N_CLASSES)


def test_meld_speaker_count_works():
    rng = np.random.default_rng(0)
    feats = {m: rng.standard_normal((12, n)).astype(np.float32) for m, n in DIMS.items()}
    d = Dialogue("m", rng.integers(0, 7, 12), np.arange(12) % 9, feats)
    weights = {"a": 0.5, "t": 1.5, "v": 0.5}
    model = OriginalMMDFN("atv", DIMS, 7, 9, hidden=8, graph_hidden=6, n_layers=2, speaker_weights=weights)
    out = model.eval()(collate([d], "atv", 9))
    assert all(o.shape == (12, 1, 7) for o in out.values())
