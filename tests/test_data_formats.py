"""Both pickle layouts users have (SPCL dict, DialogueGCN/MMGCN/MM-DFN tuple) load into the same dialogues."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spcl_search.data import IEMOCAP_CLASSES, MELD_CLASSES, ERCDataset, load_dataset, make_synthetic


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPCL_SEARCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def data() -> dict[str, Any]:
    return make_synthetic(n_dialogues=6, seed=1, min_len=2, max_len=5)


def save(tmp_path: Path, obj: Any, name: str = "data.pkl", protocol: int = 4) -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def to_tuple(d: dict[str, Any], layout: str) -> tuple[Any, ...]:
    """The same dialogues in the DialogueGCN/MMGCN layouts."""
    ids = d["trainVid"] + d["testVid"]
    video_ids = {v: [f"{v}_{i}" for i in range(len(d["label"][v]))] for v in ids}
    if layout == "iemocap":
        return (video_ids, d["speaker"], d["label"], d["text"], d["audio"], d["visual"], d["sentence"],
                d["trainVid"], d["testVid"])
    one_hot = {v: [[int(s == "F"), int(s == "M"), 0, 0, 0, 0, 0, 0, 0] for s in d["speaker"][v]] for v in ids}
    sentiment = {v: [0] * len(d["label"][v]) for v in ids}
    if layout == "meld":
        return (video_ids, one_hot, d["label"], d["text"], d["audio"], d["visual"], d["sentence"],
                d["trainVid"], d["testVid"], sentiment)
    return (video_ids, one_hot, d["label"], d["text"], d["audio"], d["sentence"], d["trainVid"], d["testVid"], sentiment)


def assert_same_dialogues(a: ERCDataset, b: ERCDataset, modalities: str = "atv") -> None:
    for split in ("train", "dev", "test"):
        assert [d.vid for d in a.split(split)] == [d.vid for d in b.split(split)]
        for x, y in zip(a.split(split), b.split(split)):
            np.testing.assert_array_equal(x.labels, y.labels)
            for m in modalities:
                np.testing.assert_array_equal(x.features[m], y.features[m])


def test_spcl_dict_gives_dialogues_splits_and_dims(tmp_path, data):
    ds = load_dataset(save(tmp_path, data))
    assert ds.dims == {"a": 48, "t": 64, "v": 32} and ds.modalities == "atv"
    assert {d.vid for d in ds.train + ds.dev} == set(data["trainVid"])
    assert [d.vid for d in ds.test] == data["testVid"]
    first = ds.test[0]
    np.testing.assert_array_equal(first.features["t"], np.stack(data["text"][first.vid]))
    np.testing.assert_array_equal(first.labels, data["label"][first.vid])
    assert first.features["a"].dtype == np.float32 and first.labels.dtype == np.int64
    assert ds.info["format"] == "spcl"


def test_iemocap_tuple_pickle_gives_the_same_dialogues_as_the_spcl_dict(tmp_path, data):
    spcl = load_dataset(save(tmp_path, data))
    tup = load_dataset(save(tmp_path, to_tuple(data, "iemocap"), "IEMOCAP_features.pkl"))
    assert_same_dialogues(spcl, tup)
    assert tup.info["format"] == "dialoguegcn"
    assert tup.name == "iemocap" and tup.classes == IEMOCAP_CLASSES


def test_meld_tuple_pickle_maps_one_hot_speakers_to_their_index(tmp_path, data):
    ds = load_dataset(save(tmp_path, to_tuple(data, "meld"), "MELD_features_raw.pkl"))
    first = ds.test[0]
    expected = [1 if s == "M" else 0 for s in data["speaker"][first.vid]]
    np.testing.assert_array_equal(first.speakers, expected)
    assert ds.name == "meld" and ds.classes == MELD_CLASSES and ds.modalities == "atv"


def test_dialoguegcn_meld_tuple_without_visual_is_recognised(tmp_path, data):
    spcl = load_dataset(save(tmp_path, data))
    ds = load_dataset(save(tmp_path, to_tuple(data, "meld-no-visual"), "MELD_features.pkl"))
    assert ds.modalities == "at" and ds.dims == {"a": 48, "t": 64}
    assert_same_dialogues(spcl, ds, modalities="at")


def test_tuple_splits_may_be_sets(tmp_path, data):
    items = list(to_tuple(data, "iemocap"))
    items[7], items[8] = set(items[7]), set(items[8])
    ds = load_dataset(save(tmp_path, tuple(items)))
    assert sorted(d.vid for d in ds.train + ds.dev) == sorted(data["trainVid"])


def test_features_may_be_2d_arrays_or_lists_of_lists(tmp_path, data):
    reference = load_dataset(save(tmp_path, data, "a.pkl"))
    data["text"] = {v: np.stack(x) for v, x in data["text"].items()}
    data["audio"] = {v: [u.tolist() for u in x] for v, x in data["audio"].items()}
    data["visual"] = {v: np.stack(x).astype(np.float64) for v, x in data["visual"].items()}
    assert_same_dialogues(reference, load_dataset(save(tmp_path, data, "b.pkl")))


def test_iemocap_speakers_map_m_to_0_and_f_to_1(tmp_path, data):
    vid = data["testVid"][0]
    data["speaker"][vid] = ["F", "M"] + ["F"] * (len(data["speaker"][vid]) - 2)
    ds = load_dataset(save(tmp_path, data))
    np.testing.assert_array_equal(ds.test[0].speakers, [1, 0] + [1] * (len(ds.test[0]) - 2))
    assert ds.n_speakers == 2


def test_integer_speakers_are_kept_and_n_speakers_is_the_largest_plus_one(tmp_path, data):
    data["speakers"] = {v: [i % 3 for i in range(len(s))] for v, s in data.pop("speaker").items()}
    vid = data["testVid"][0]
    data["speakers"][vid][0] = 4
    ds = load_dataset(save(tmp_path, data))
    assert ds.n_speakers == 5
    assert ds.test[0].speakers[0] == 4


def test_named_speakers_are_numbered_by_first_appearance(tmp_path, data):
    vid = data["testVid"][0]
    n = len(data["speaker"][vid])
    data["speaker"][vid] = (["Ross", "Rachel", "Ross"] * n)[:n]
    ds = load_dataset(save(tmp_path, data))
    np.testing.assert_array_equal(ds.test[0].speakers, ([0, 1, 0] * n)[:n])


def test_integer_dialogue_ids_become_strings(tmp_path, data):
    renamed = {v: i for i, v in enumerate(data["trainVid"] + data["testVid"])}
    for key in ("label", "speaker", "text", "audio", "visual", "sentence"):
        data[key] = {renamed[v]: x for v, x in data[key].items()}
    data["trainVid"] = [renamed[v] for v in data["trainVid"]]
    data["testVid"] = [renamed[v] for v in data["testVid"]]
    ds = load_dataset(save(tmp_path, data))
    assert [d.vid for d in ds.test] == [str(v) for v in data["testVid"]]


def test_classes_come_from_meta(tmp_path, data):
    ds = load_dataset(save(tmp_path, data, "whatever.pkl"))
    assert ds.classes == ("happy", "sad", "neutral", "angry", "excited", "frustrated")
    assert ds.name == "whatever"  # a file is never "synthetic", the embedded set's name


def test_file_name_picks_the_benchmark_and_its_classes(tmp_path, data):
    del data["meta"]
    ds = load_dataset(save(tmp_path, data, "my_meld_features.pkl"))
    assert ds.name == "meld" and ds.classes == MELD_CLASSES


@pytest.mark.parametrize(
    ("n_classes", "classes"),
    [(6, IEMOCAP_CLASSES), (7, MELD_CLASSES), (4, ("c0", "c1", "c2", "c3"))],
)
def test_label_count_picks_class_names_when_nothing_else_does(tmp_path, data, n_classes, classes):
    del data["meta"]
    data["label"] = {v: [i % n_classes for i in range(len(x))] for v, x in data["label"].items()}
    data["label"][data["trainVid"][0]][0] = n_classes - 1  # the largest label sets the count
    ds = load_dataset(save(tmp_path, data, "features.pkl"))
    assert ds.classes == classes
    assert ds.name == "features"


def test_surrogate_modalities_are_read_from_meta(tmp_path, data):
    data["meta"]["modalities"] = {"text": "real", "audio": "surrogate (synthetic)", "visual": "surrogate (synthetic)"}
    ds = load_dataset(save(tmp_path, data))
    assert ds.info["surrogate"] == "av"
    assert ds.info["provenance"]["t"] == "real"


def test_missing_modality_is_simply_absent(tmp_path, data):
    del data["visual"]
    ds = load_dataset(save(tmp_path, data))
    assert ds.modalities == "at" and "v" not in ds.train[0].features


@pytest.mark.parametrize("protocol", [0, 2])
def test_old_protocol_pickles_load_like_new_ones(tmp_path, data, protocol):
    reference = load_dataset(save(tmp_path, data, "new.pkl"))
    assert_same_dialogues(reference, load_dataset(save(tmp_path, data, f"old{protocol}.pkl", protocol=protocol)))
