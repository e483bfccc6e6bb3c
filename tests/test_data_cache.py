"""A feature file is converted once into an npz + JSON cache that cannot run code, keyed by its sha256."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from spcl_search.data import load_dataset, make_synthetic
from spcl_search.data.cache import cache_paths, default_cache_dir, file_sha256, read_cache


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "features.pkl"
    path.write_bytes(pickle.dumps(make_synthetic(n_dialogues=6, seed=2, min_len=2, max_len=5), protocol=4))
    return path


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def entry(source: Path, cache_dir: Path) -> tuple[Path, Path]:
    return cache_paths(file_sha256(source), cache_dir)


def assert_same_arrays(a, b) -> None:
    for split in ("train", "dev", "test"):
        for x, y in zip(a.split(split), b.split(split), strict=True):
            assert x.vid == y.vid
            np.testing.assert_array_equal(x.labels, y.labels)
            np.testing.assert_array_equal(x.speakers, y.speakers)
            for m in "atv":
                np.testing.assert_array_equal(x.features[m], y.features[m])
                assert y.features[m].dtype == np.float32


def test_first_load_converts_and_second_load_reads_the_cache(source, cache_dir):
    cold = load_dataset(source, cache_dir=cache_dir)
    warm = load_dataset(source, cache_dir=cache_dir)
    assert cold.info["cache"]["hit"] is False
    assert warm.info["cache"]["hit"] is True


def test_cache_round_trip_gives_the_same_arrays_and_metadata(source, cache_dir):
    cold = load_dataset(source, cache_dir=cache_dir)
    warm = load_dataset(source, cache_dir=cache_dir)
    assert_same_arrays(cold, warm)
    assert (warm.name, warm.classes, warm.n_speakers, warm.dims) == (cold.name, cold.classes, cold.n_speakers, cold.dims)
    assert warm.info["meta"] == cold.info["meta"] and warm.info["dev_split"] == cold.info["dev_split"]


def test_cache_entry_is_named_by_the_source_sha256(source, cache_dir):
    load_dataset(source, cache_dir=cache_dir)
    npz, meta = entry(source, cache_dir)
    assert npz.name.startswith(file_sha256(source)) and npz.is_file() and meta.is_file()


def test_cache_files_open_without_pickle(source, cache_dir):
    load_dataset(source, cache_dir=cache_dir)
    npz, meta = entry(source, cache_dir)
    with np.load(npz, allow_pickle=False) as z:
        assert {"labels", "speakers", "lengths", "features_t"} <= set(z.files)
        assert all(z[k].dtype != object for k in z.files)
    assert json.loads(meta.read_text())["sha256"] == file_sha256(source)


def test_cache_is_keyed_by_content_not_by_file_name(source, cache_dir, tmp_path):
    load_dataset(source, cache_dir=cache_dir)
    copy = tmp_path / "renamed.pkl"
    shutil.copy(source, copy)
    assert load_dataset(copy, cache_dir=cache_dir).info["cache"]["hit"] is True


def test_changed_file_is_converted_again(source, cache_dir):
    load_dataset(source, cache_dir=cache_dir)
    source.write_bytes(pickle.dumps(make_synthetic(n_dialogues=6, seed=3, min_len=2, max_len=5), protocol=4))
    assert load_dataset(source, cache_dir=cache_dir).info["cache"]["hit"] is False


def test_truncated_cache_is_detected_and_rebuilt(source, cache_dir):
    cold = load_dataset(source, cache_dir=cache_dir)
    npz, _ = entry(source, cache_dir)
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    assert read_cache(file_sha256(source), cache_dir) is None
    again = load_dataset(source, cache_dir=cache_dir)
    assert again.info["cache"]["hit"] is False
    assert_same_arrays(cold, again)
    assert load_dataset(source, cache_dir=cache_dir).info["cache"]["hit"] is True


def test_corrupted_cache_bytes_are_detected(source, cache_dir):
    load_dataset(source, cache_dir=cache_dir)
    npz, _ = entry(source, cache_dir)
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    npz.write_bytes(bytes(raw))
    assert read_cache(file_sha256(source), cache_dir) is None


def test_cache_metadata_of_another_file_is_not_trusted(source, cache_dir):
    load_dataset(source, cache_dir=cache_dir)
    _, meta = entry(source, cache_dir)
    header = json.loads(meta.read_text())
    header["sha256"] = "0" * 64
    meta.write_text(json.dumps(header))
    assert load_dataset(source, cache_dir=cache_dir).info["cache"]["hit"] is False


def test_no_temporary_files_are_left_behind(source, cache_dir):
    load_dataset(source, cache_dir=cache_dir)
    assert sorted(p.suffix for p in cache_dir.iterdir()) == [".json", ".npz"]


def test_use_cache_false_neither_reads_nor_writes(source, cache_dir):
    ds = load_dataset(source, cache_dir=cache_dir, use_cache=False)
    assert not cache_dir.exists()
    assert ds.info["cache"] == {"used": False, "hit": False, "path": None}


def test_unwritable_cache_warns_and_still_loads(source, tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache directory should be")
    with pytest.warns(UserWarning, match="could not write the feature cache"):
        ds = load_dataset(source, cache_dir=blocked / "cache")
    assert len(ds.test) == 1


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SPCL_SEARCH_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("SPCL_SEARCH_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "spcl-search"
