"""The embedded synthetic dataset: seeded, SPCL-formatted, two speakers taking turns, learnable, text > audio > visual."""

from __future__ import annotations

import numpy as np
import pytest

from spcl_search.data import ERCDataset, load_dataset, make_synthetic


def probe_accuracy(ds: ERCDataset, modality: str, context: bool = False) -> float:
    """Test accuracy of a logistic regression on single utterances (optionally + same-speaker context)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    def xy(dialogues):
        xs = []
        for d in dialogues:
            z = d.features[modality]
            if context:
                same = d.speakers[:, None] == d.speakers[None, :]
                near = np.abs(np.arange(len(d))[:, None] - np.arange(len(d))[None, :]) <= 3
                w = (same & near & ~np.eye(len(d), dtype=bool)).astype(np.float32)
                z = np.hstack([z, w @ z / np.maximum(w.sum(1, keepdims=True), 1)])
            xs.append(z)
        return np.concatenate(xs), np.concatenate([d.labels for d in dialogues])

    x_train, y_train = xy(ds.train + ds.dev)
    x_test, y_test = xy(ds.test)
    with threadpool_limits(1):  # the machine is shared; one BLAS thread is also the fastest here
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(x_train, y_train)
        return 100 * model.score(x_test, y_test)


@pytest.fixture(scope="module")
def synthetic() -> ERCDataset:
    return load_dataset("synthetic")


def test_same_seed_gives_identical_data():
    a, b = make_synthetic(n_dialogues=8, seed=11), make_synthetic(n_dialogues=8, seed=11)
    assert a["trainVid"] == b["trainVid"] and a["label"] == b["label"] and a["speaker"] == b["speaker"]
    for v in a["label"]:
        np.testing.assert_array_equal(np.stack(a["audio"][v]), np.stack(b["audio"][v]))


def test_different_seeds_give_different_data():
    a, b = make_synthetic(n_dialogues=8, seed=1), make_synthetic(n_dialogues=8, seed=2)
    assert a["label"] != b["label"]


def test_default_dataset_has_the_documented_size_and_dims(synthetic):
    dialogues = synthetic.train + synthetic.dev + synthetic.test
    assert len(dialogues) == 120 and len(synthetic.test) == 24
    assert all(8 <= len(d) <= 30 for d in dialogues)
    assert synthetic.dims == {"a": 48, "t": 64, "v": 32} and synthetic.n_classes == 6


def test_it_is_an_spcl_dict_with_every_modality_marked_synthetic():
    data = make_synthetic(n_dialogues=4)
    assert {"trainVid", "testVid", "label", "text", "audio", "visual", "sentence", "speaker", "meta"} <= set(data)
    assert set(data["meta"]["modalities"].values()) == {"synthetic"}
    assert load_dataset(data).info["surrogate"] == "atv"


def test_two_speakers_take_turns(synthetic):
    dialogues = synthetic.train + synthetic.dev + synthetic.test
    assert synthetic.n_speakers == 2
    switches = np.concatenate([d.speakers[1:] != d.speakers[:-1] for d in dialogues])
    assert 0.6 < switches.mean() < 0.8  # p_switch = 0.7


def test_emotions_persist_within_a_speaker(synthetic):
    same = []
    for d in synthetic.train:
        last: dict[int, int] = {}
        for s, y in zip(d.speakers.tolist(), d.labels.tolist()):
            if s in last:
                same.append(last[s] == y)
            last[s] = y
    assert np.mean(same) > 0.7  # inertia 0.75 plus chance; a shuffled dataset gives about 0.2


def test_a_linear_probe_ranks_text_over_audio_over_visual_over_majority(synthetic):
    text, audio, visual = (probe_accuracy(synthetic, m) for m in "tav")
    test_labels = np.concatenate([d.labels for d in synthetic.test])
    train_labels = np.concatenate([d.labels for d in synthetic.train])
    majority = 100 * np.mean(test_labels == np.bincount(train_labels).argmax())
    assert text > audio + 8
    assert audio > visual + 8
    assert visual > majority + 8


def test_same_speaker_context_helps_the_text_probe(synthetic):
    assert probe_accuracy(synthetic, "t", context=True) > probe_accuracy(synthetic, "t") + 3


def test_too_few_dialogues_are_refused():
    with pytest.raises(ValueError, match="at least 2 dialogues"):
        make_synthetic(n_dialogues=1)
