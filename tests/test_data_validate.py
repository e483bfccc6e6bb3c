"""A bad feature file is refused with one line that names the file and what is wrong."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spcl_search.data import load_dataset, make_synthetic, safe_loads
from spcl_search.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPCL_SEARCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def data() -> dict[str, Any]:
    """A small valid SPCL dict: 4 train and 1 test dialogues of 2-4 utterances."""
    return make_synthetic(n_dialogues=5, seed=0, min_len=2, max_len=4)


def error_for(tmp_path: Path, obj: Any) -> tuple[Path, str]:
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    message = str(exc.value)
    assert "\n" not in message
    return path, message


def test_missing_key_is_named_in_the_error(tmp_path, data):
    del data["label"]
    path, message = error_for(tmp_path, data)
    assert message == (
        f"{path}: missing key 'label' (an SPCL pickle needs trainVid, testVid, label, speaker or speakers, and features)"
    )


def test_missing_split_key_is_named_in_the_error(tmp_path, data):
    del data["testVid"]
    path, message = error_for(tmp_path, data)
    assert message.startswith(f"{path}: missing key 'testVid'")


def test_missing_speaker_key_is_named_in_the_error(tmp_path, data):
    del data["speaker"]
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: missing key 'speaker' (or 'speakers'): the speaker of every utterance"


def test_file_without_any_modality_is_refused(tmp_path, data):
    for key in ("text", "audio", "visual"):
        del data[key]
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: missing key 'text' (an SPCL pickle needs at least one of 'text', 'audio', 'visual')"


def test_different_utterance_counts_name_the_dialogue_and_the_counts(tmp_path, data):
    vid = data["trainVid"][1]
    n = len(data["label"][vid])
    data["audio"][vid] = data["audio"][vid][:-1]
    path, message = error_for(tmp_path, data)
    assert message == (
        f"{path}: dialogue '{vid}' has different utterance counts: label {n}, speaker {n}, audio {n - 1}, text {n}, visual {n}"
    )


def test_dialogue_without_utterances_is_refused(tmp_path, data):
    vid = data["trainVid"][0]
    for key in ("label", "speaker", "text", "audio", "visual"):
        data[key][vid] = []
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: dialogue '{vid}' has no utterances"


def test_inconsistent_feature_dims_across_dialogues_name_both_dialogues(tmp_path, data):
    first, other = data["trainVid"][0], data["trainVid"][2]
    data["visual"][other] = [np.zeros(31, np.float32) for _ in data["visual"][other]]
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: inconsistent 'visual' feature dims: 32 in dialogue '{first}' but 31 in dialogue '{other}'"


def test_ragged_features_within_a_dialogue_are_refused(tmp_path, data):
    vid = data["trainVid"][0]
    data["text"][vid][1] = np.zeros(63, np.float32)
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: inconsistent 'text' feature dims within dialogue '{vid}' (utterances of 63, 64)"


def test_features_that_are_not_numbers_are_refused(tmp_path, data):
    vid = data["trainVid"][0]
    data["text"][vid] = ["hello"] * len(data["text"][vid])
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: dialogue '{vid}' has non-numeric 'text' features"


def test_label_outside_the_class_set_is_refused(tmp_path, data):
    vid = data["trainVid"][3]
    data["label"][vid][0] = 6
    path, message = error_for(tmp_path, data)
    assert message == (
        f"{path}: dialogue '{vid}' has label 6 outside the class set 0..5 (happy, sad, neutral, angry, excited, frustrated)"
    )


def test_negative_label_is_refused(tmp_path, data):
    vid = data["testVid"][0]
    data["label"][vid][-1] = -1
    path, message = error_for(tmp_path, data)
    assert message.startswith(f"{path}: dialogue '{vid}' has label -1 outside the class set 0..5")


def test_non_integer_labels_are_refused(tmp_path, data):
    vid = data["trainVid"][0]
    data["label"][vid][0] = 1.5
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: dialogue '{vid}' has labels in 'label' that are not a list of integers"


def test_nan_features_name_the_dialogue_and_modality(tmp_path, data):
    vid = data["trainVid"][2]
    data["audio"][vid][0] = np.full(48, np.nan, np.float32)
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: dialogue '{vid}' has NaN values in 'audio' features"


def test_inf_features_name_the_dialogue_and_modality(tmp_path, data):
    vid = data["testVid"][0]
    data["visual"][vid][1][3] = np.inf
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: dialogue '{vid}' has inf values in 'visual' features"


def test_empty_split_is_refused(tmp_path, data):
    data["testVid"] = []
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: split 'testVid' is empty"


def test_dialogue_in_both_train_and_test_is_refused(tmp_path, data):
    vid = data["trainVid"][1]
    data["testVid"].append(vid)
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: dialogue '{vid}' is in both 'trainVid' and 'testVid' (1 ids overlap)"


def test_dialogue_in_both_valid_and_test_is_refused(tmp_path, data):
    vid = data["testVid"][0]
    data["validVid"] = [vid]
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: dialogue '{vid}' is in both 'validVid' and 'testVid' (1 ids overlap)"


def test_split_id_without_data_is_named(tmp_path, data):
    vid = data["trainVid"][2]
    del data["audio"][vid]
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: dialogue '{vid}' is listed in 'trainVid' but has no entry in 'audio'"


def test_unknown_split_id_is_named(tmp_path, data):
    data["testVid"].append("nowhere")
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: dialogue 'nowhere' is listed in 'testVid' but has no entry in 'label'"


def test_dialogue_listed_twice_in_a_split_is_refused(tmp_path, data):
    vid = data["trainVid"][0]
    data["trainVid"].append(vid)
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: dialogue '{vid}' is listed twice in 'trainVid'"


def test_split_that_is_not_a_list_is_refused(tmp_path, data):
    data["trainVid"] = "syn0000"
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: split 'trainVid' must be a list of dialogue ids (found str)"


def test_per_dialogue_field_that_is_not_a_dict_is_refused(tmp_path, data):
    data["label"] = list(data["label"].values())
    path, message = error_for(tmp_path, data)
    assert message == f"{path}: 'label' must map dialogue ids to per-utterance lists (found list)"


def test_unreadable_speakers_are_refused(tmp_path, data):
    vid = data["trainVid"][0]
    data["speaker"][vid] = [-1] * len(data["speaker"][vid])
    path, message = error_for(tmp_path, data)
    assert message == (
        f"{path}: dialogue '{vid}' has speakers in 'speaker' that are neither names, non-negative integers nor one-hot rows"
    )


def test_object_of_another_shape_is_refused(tmp_path):
    path, message = error_for(tmp_path, [1, 2, 3])
    assert message == (
        f"{path}: is neither an SPCL dict pickle nor a DialogueGCN/MMGCN tuple pickle of 9 or 10 items (found a list of 3 items)"
    )


SMALL = pickle.dumps(make_synthetic(n_dialogues=3, seed=0, min_len=2, max_len=3), protocol=4)


@settings(max_examples=int(os.environ.get("SPCL_FUZZ_EXAMPLES", "100")), deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SMALL) - 1), st.integers(1, 255)), min_size=1, max_size=3))
def test_corrupted_dataset_pickles_load_or_raise_a_data_error(flips):
    raw = bytearray(SMALL)
    for pos, xor in flips:
        raw[pos] ^= xor
    try:
        load_dataset(safe_loads(bytes(raw), name="fuzz.pkl"), use_cache=False)
    except (DataError, ConfigError) as exc:
        assert "\n" not in str(exc)
