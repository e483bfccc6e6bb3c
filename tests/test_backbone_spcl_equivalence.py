"""The SPCL forms compute the SPCL code's arithmetic: vectorised module == plain restatement (tests/reference_spcl.py).

Each test builds a backbone's ``spcl`` form in reference mode (``reference_arithmetic=True``: attention over
padding, as the SPCL code), copies nothing by hand (the restatement reads the module's own weights), runs
both on one batch of dialogues of different lengths in float64 and compares every real utterance's logits.
The default (masked) form is checked against the restatement run on each dialogue alone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import backbones
from spcl_search.data.batching import collate
from spcl_search.data.types import Dialogue

import reference_spcl

DIMS = {"a": 10, "t": 12, "v": 7}
N_CLASSES = 5
N_SPEAKERS = 3
LENGTHS = (7, 3, 5, 1)
#: small but complete: every part of each form is exercised (two encoder layers, windows that clip, 3 speakers)
SIZES = {
    "late_fusion": {"hidden": 6},
    "mmgcn": {"hidden": 6},
    "mm_dfn": {"hidden": 6},
    "dialoguegcn": {"hidden": 6, "graph_hidden": 5, "window_past": 2, "window_future": 1, "n_bases": 4},
    "biddin": {"d_global": 6, "d_party": 5, "d_emotion": 4, "hidden": 3, "n_heads": 4},
}


def _dialogues(lengths=LENGTHS, seed: int = 0) -> list[Dialogue]:
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


def _model(name: str, modalities: str, reference: bool):
    torch.manual_seed(3)
    dims = {m: DIMS[m] for m in modalities}
    model = backbones.build(name, modalities, dims, N_CLASSES, N_SPEAKERS, variant="spcl", reference_arithmetic=reference, **SIZES[name])
    return model.double().eval()


def _batch(dialogues, modalities):
    batch = collate(dialogues, modalities, N_SPEAKERS)
    batch.features = {m: x.double() for m, x in batch.features.items()}
    return batch


def _assert_real_logits_equal(ours, theirs, batch):
    real = batch.mask > 0
    for m in ours:
        torch.testing.assert_close(ours[m][real], theirs[m][real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("modalities", ["atv", "at"])
@pytest.mark.parametrize("name", list(reference_spcl.REFERENCES))
def test_reference_mode_gives_the_spcl_codes_logits(name, modalities):
    model = _model(name, modalities, reference=True)
    batch = _batch(_dialogues(), modalities)
    with torch.no_grad():
        ours = model(batch)
    _assert_real_logits_equal(ours, reference_spcl.REFERENCES[name](model, batch), batch)


@pytest.mark.parametrize("name", list(reference_spcl.REFERENCES))
def test_default_mode_gives_the_spcl_codes_logits_of_each_dialogue_alone(name):
    """Masking padding = what the SPCL code computes for a dialogue that is alone in its batch."""
    model = _model(name, "atv", reference=False)
    dialogues = _dialogues()
    batch = _batch(dialogues, "atv")
    with torch.no_grad():
        ours = model(batch)
    for b, dialogue in enumerate(dialogues):
        alone = _batch([dialogue], "atv")
        theirs = reference_spcl.REFERENCES[name](model, alone)
        for m in "atv":
            torch.testing.assert_close(ours[m][: len(dialogue), b], theirs[m][:, 0], atol=1e-5, rtol=1e-5)


def test_the_transformer_encoder_matches_torch_on_a_padded_batch_in_reference_mode():
    model = _model("late_fusion", "v", reference=True)
    batch = _batch(_dialogues(), "v")
    from backbones.multimodal_graph import Packing

    packing = Packing.from_mask(batch.mask)
    with torch.no_grad():
        ours = packing.unpack(model.encoders["v"](batch.features["v"], packing))
    theirs = reference_spcl.encode_padded(model.encoders["v"], batch.features["v"])
    real = batch.mask > 0
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-10, rtol=1e-10)
