"""load_dataset: sources, the dev split and what ERCDataset.info records."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spcl_search.data import collate, load_dataset, make_synthetic
from spcl_search.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPCL_SEARCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def data() -> dict[str, Any]:
    """20 train and 5 test dialogues."""
    return make_synthetic(n_dialogues=25, seed=4, min_len=2, max_len=4)


def save(tmp_path: Path, obj: Any, name: str = "data.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def vids(dialogues) -> list[str]:
    return [d.vid for d in dialogues]


def test_synthetic_source_needs_no_files():
    ds = load_dataset("synthetic")
    assert ds.name == "synthetic" and ds.modalities == "atv" and ds.n_classes == 6
    assert len(ds.train) + len(ds.dev) + len(ds.test) == 120
    assert ds.info["source"] == "synthetic" and ds.info["sha256"] is None


def test_in_memory_object_loads_like_a_file(tmp_path, data):
    from_file = load_dataset(save(tmp_path, data))
    in_memory = load_dataset(data)
    assert vids(in_memory.dev) == vids(from_file.dev) and vids(in_memory.test) == vids(from_file.test)


def test_valid_vid_becomes_dev_and_leaves_train(tmp_path, data):
    data["validVid"] = data["trainVid"][-3:]
    ds = load_dataset(save(tmp_path, data))
    assert vids(ds.dev) == data["trainVid"][-3:]
    assert vids(ds.train) == data["trainVid"][:-3]
    assert ds.info["dev_split"] == {
        "method": "validVid", "fraction": 0.15, "seed": None, "n_dialogues": 3, "ids": data["trainVid"][-3:]
    }


def test_no_valid_vid_option_uses_a_seeded_fraction_instead(tmp_path, data):
    data["validVid"] = data["trainVid"][-3:]
    ds = load_dataset(save(tmp_path, data), use_valid_vid=False, dev_fraction=0.1, dev_seed=5)
    assert ds.info["dev_split"]["method"] == "random" and len(ds.dev) == 2


def test_random_dev_split_takes_the_fraction_and_records_it(tmp_path, data):
    ds = load_dataset(save(tmp_path, data), dev_fraction=0.25, dev_seed=3)
    assert len(ds.dev) == 5 and len(ds.train) == 15
    assert set(vids(ds.dev)).isdisjoint(vids(ds.train))
    assert set(vids(ds.dev)) | set(vids(ds.train)) == set(data["trainVid"])
    assert ds.info["dev_split"] == {"method": "random", "fraction": 0.25, "seed": 3, "n_dialogues": 5, "ids": vids(ds.dev)}


def test_random_dev_split_is_the_same_for_the_same_seed(tmp_path, data):
    path = save(tmp_path, data)
    assert vids(load_dataset(path, dev_seed=7).dev) == vids(load_dataset(path, dev_seed=7).dev)


def test_random_dev_split_changes_with_the_seed(tmp_path, data):
    path = save(tmp_path, data)
    splits = {tuple(vids(load_dataset(path, dev_fraction=0.2, dev_seed=s).dev)) for s in range(5)}
    assert len(splits) > 1


def test_dev_split_keeps_at_least_one_dialogue(tmp_path, data):
    ds = load_dataset(save(tmp_path, data), dev_fraction=0.01)
    assert len(ds.dev) == 1


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_dev_fraction_outside_zero_one_is_a_config_error(fraction):
    with pytest.raises(ConfigError, match="dev_fraction must be between 0 and 1"):
        load_dataset("synthetic", dev_fraction=fraction)


def test_too_few_train_dialogues_for_a_dev_split_is_refused(tmp_path):
    path = save(tmp_path, make_synthetic(n_dialogues=2, min_len=2, max_len=3))
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    assert str(exc.value) == f"{path}: only 1 training dialogue(s), too few to hold out a dev split of 0.1"


def test_valid_vid_covering_all_of_train_is_refused(tmp_path, data):
    data["validVid"] = list(data["trainVid"])
    path = save(tmp_path, data)
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    assert str(exc.value) == f"{path}: no training dialogues are left once the validVid dialogues are removed from trainVid"


def test_missing_file_error_points_to_the_data_readme(tmp_path):
    path = tmp_path / "absent.pkl"
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    assert str(exc.value) == f"{path}: no such file (put feature files under data/, see data/README.md, or use 'synthetic')"


def test_load_records_time_and_provenance(tmp_path, data):
    ds = load_dataset(save(tmp_path, data))
    assert ds.info["load_seconds"] >= 0 and len(ds.info["sha256"]) == 64
    assert ds.info["file_splits"] == {"trainVid": 20, "testVid": 5, "validVid": None}
    assert ds.info["surrogate"] == "atv" and ds.info["has_sentences"] is True


def test_loaded_dialogues_feed_the_batcher():
    ds = load_dataset("synthetic")
    batch = collate(ds.train[:3], "atv", ds.n_speakers)
    assert batch.features["t"].shape == (max(len(d) for d in ds.train[:3]), 3, 64)
    assert int(batch.mask.sum()) == sum(len(d) for d in ds.train[:3])
    assert np.all(batch.labels.numpy()[batch.mask.numpy() == 1] >= 0)
