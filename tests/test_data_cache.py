"""A feature file is converted once into an npz + JSON cache that cannot run code, keyed by its sha256."""

from __future__ import annotations

import json
import os
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


# ------------------------------------------------------------------ only this user's entries are trusted


def test_the_cache_folder_is_private_and_its_files_readable_only_by_their_user(source, cache_dir):
    load_dataset(source, cache_dir=cache_dir)
    assert cache_dir.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in cache_dir.iterdir()} == {0o600}


def test_a_loose_cache_folder_of_ones_own_is_made_private(source, cache_dir):
    cache_dir.mkdir(mode=0o777)
    cache_dir.chmod(0o777)
    load_dataset(source, cache_dir=cache_dir)
    assert cache_dir.stat().st_mode & 0o777 == 0o700


def _plant(victim: Path, donor: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Write the donor's parsed content as the victim's cache entry, signed with another user's key."""
    from spcl_search.data.cache import write_cache
    from spcl_search.data.formats import parse
    from spcl_search.data.safe_pickle import safe_load

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "someone-else"))
    write_cache(parse(safe_load(donor), "donor"), file_sha256(victim), cache_dir)
    monkeypatch.delenv("XDG_CONFIG_HOME")


def test_an_entry_planted_by_someone_else_is_not_read_as_the_file(source, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "me"))
    honest = load_dataset(source, cache_dir=cache_dir, use_cache=False)
    donor = tmp_path / "donor.pkl"
    relabelled = make_synthetic(n_dialogues=6, seed=2, min_len=2, max_len=5)
    relabelled["label"] = {vid: [(y + 1) % 6 for y in ys] for vid, ys in relabelled["label"].items()}
    relabelled["meta"] = {"modalities": {}}  # no surrogate flags
    donor.write_bytes(pickle.dumps(relabelled, protocol=4))
    _plant(source, donor, cache_dir, monkeypatch, tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "me"))
    loaded = load_dataset(source, cache_dir=cache_dir)
    assert loaded.info["cache"]["hit"] is False
    assert_same_arrays(honest, loaded)
    assert loaded.info["surrogate"] == honest.info["surrogate"] != ""


def test_an_entry_whose_metadata_was_edited_is_rebuilt(source, cache_dir):
    load_dataset(source, cache_dir=cache_dir)
    _, meta = entry(source, cache_dir)
    header = json.loads(meta.read_text())
    header["meta"]["modalities"] = {}
    meta.write_text(json.dumps(header))
    assert load_dataset(source, cache_dir=cache_dir).info["cache"]["hit"] is False


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another user")
def test_a_cache_folder_owned_by_another_user_is_not_used(source, cache_dir):
    load_dataset(source, cache_dir=cache_dir)
    os.chown(cache_dir, 65534, 65534)
    with pytest.warns(UserWarning, match="belongs to another user"):
        assert load_dataset(source, cache_dir=cache_dir).info["cache"]["hit"] is False


def test_an_extraction_cache_entry_planted_by_someone_else_reads_as_missing(tmp_path, monkeypatch):
    from spcl_search.data.extract.cache import FeatureCache

    cache = FeatureCache(tmp_path / "extract")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "someone-else"))
    cache.put("ab" * 32, np.ones((2, 3), np.float32))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "me"))
    assert cache.get("ab" * 32) is None
    cache.put("ab" * 32, np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(cache.get("ab" * 32), np.zeros((2, 3), np.float32))
    assert (tmp_path / "extract").stat().st_mode & 0o777 == 0o700
    assert cache.path("ab" * 32).stat().st_mode & 0o777 == 0o600
