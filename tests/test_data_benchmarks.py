"""The shared IEMOCAP and MELD benchmark files (text real, audio/visual SURROGATE) load with the documented counts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from spcl_search.data import IEMOCAP_CLASSES, MELD_CLASSES, class_counts, load_dataset

SHARED_DATA = Path(os.environ.get("SPCL_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))

# From shared/data/README.md: (train, valid, test) dialogues, total utterances, class totals, dims.
EXPECTED = {
    "iemocap/iemocap_surrogate.pkl": dict(
        name="iemocap", classes=IEMOCAP_CLASSES, train_vid=120, valid=12, test=31, utterances=7433,
        class_totals=[648, 1084, 1708, 1103, 1041, 1849], dims={"a": 512, "t": 384, "v": 1024}, n_speakers=2,
    ),
    "meld/meld_surrogate.pkl": dict(
        name="meld", classes=MELD_CLASSES, train_vid=1152, valid=114, test=280, utterances=13708,
        class_totals=[6436, 1636, 358, 1002, 2308, 361, 1607], dims={"a": 300, "t": 384, "v": 342}, n_speakers=9,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("relpath", list(EXPECTED))
def test_shared_surrogate_benchmark_loads_with_the_documented_counts(relpath, tmp_path):
    path = SHARED_DATA / relpath
    if not path.is_file():
        pytest.skip(f"{path} is absent; set SPCL_SHARED_DATA to the folder that holds iemocap/ and meld/")
    want = EXPECTED[relpath]
    cold = load_dataset(path, cache_dir=tmp_path)
    warm = load_dataset(path, cache_dir=tmp_path)
    assert (cold.info["cache"]["hit"], warm.info["cache"]["hit"]) == (False, True)
    for ds in (cold, warm):
        everything = ds.train + ds.dev + ds.test
        assert ds.name == want["name"] and ds.classes == want["classes"]
        assert ds.info["file_splits"] == {"trainVid": want["train_vid"], "testVid": want["test"], "validVid": want["valid"]}
        assert (len(ds.train), len(ds.dev), len(ds.test)) == (want["train_vid"] - want["valid"], want["valid"], want["test"])
        assert ds.info["dev_split"]["method"] == "validVid"
        assert sum(len(d) for d in everything) == want["utterances"]
        assert class_counts(everything, ds.n_classes).tolist() == want["class_totals"]
        assert ds.dims == want["dims"] and ds.n_speakers == want["n_speakers"]
        assert ds.info["surrogate"] == "av"  # audio and visual are SURROGATE
    np.testing.assert_array_equal(cold.test[-1].features["v"], warm.test[-1].features["v"])
