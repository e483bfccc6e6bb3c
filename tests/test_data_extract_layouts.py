"""The layout readers of ``data extract``: which utterances, labels, splits and files each layout gives.

These read label and transcript files only (no media is decoded), so they need neither espeak-ng nor models.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from extract_corpora import (
    MANIFEST_DIALOGUES,
    MELD_CSV,
    MELD_DIALOGUES,
    make_iemocap,
    make_manifest,
    make_meld,
    read_manifest_rows,
    write_manifest,
)

from spcl_search.data.extract import read_corpus
from spcl_search.data.formats import IEMOCAP_CLASSES, MELD_CLASSES
from spcl_search.errors import ConfigError, DataError


@pytest.fixture
def iemocap(tmp_path: Path) -> Path:
    return make_iemocap(tmp_path / "IEMOCAP_full_release", media=False)


@pytest.fixture
def meld(tmp_path: Path) -> Path:
    return make_meld(tmp_path / "MELD.Raw", media=False)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return make_manifest(tmp_path / "corpus", media=False)


# ---------------------------------------------------------------------------------------------- IEMOCAP


def test_iemocap_keeps_the_six_classes_and_counts_other_labels_as_dropped(iemocap):
    corpus = read_corpus("iemocap", iemocap)
    assert corpus.classes == IEMOCAP_CLASSES
    assert {u.label for u in corpus.utterances} == set(IEMOCAP_CLASSES)
    assert len(corpus.utterances) == 13
    assert corpus.dropped == {f"label '{x}' (not one of the 6 classes)": 1 for x in ("xxx", "sur", "oth")}


def test_iemocap_session5_is_test_and_the_dev_split_is_seeded_and_recorded(iemocap):
    corpus = read_corpus("iemocap", iemocap, dev_fraction=0.4, dev_seed=3)
    splits = {u.dialogue: u.split for u in corpus.utterances}
    assert splits["Ses05F_impro01"] == "test"
    assert list(splits.values()).count("dev") == 1 and list(splits.values()).count("train") == 2
    assert corpus.dev_split == {"method": "random", "from": "sessions 1-4", "fraction": 0.4, "seed": 3, "n_dialogues": 1}
    again = read_corpus("iemocap", iemocap, dev_fraction=0.4, dev_seed=3)
    assert [u.split for u in again.utterances] == [u.split for u in corpus.utterances]
    devs = {tuple(sorted({u.dialogue for u in read_corpus("iemocap", iemocap, dev_seed=s).utterances if u.split == "dev"}))
            for s in range(6)}
    assert len(devs) > 1  # the seed chooses


def test_iemocap_turns_are_in_time_order_with_speaker_text_and_media_of_the_release(iemocap):
    corpus = read_corpus("iemocap", iemocap)
    turns = corpus.dialogues()["Ses01F_impro01"]
    assert [u.uid for u in turns] == ["Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_impro01_M001"]
    assert [u.speaker for u in turns] == ["F", "M", "M"]
    assert [u.text for u in turns] == ["Excuse me.", "Do you have your forms?", "Let me see them."]
    first = turns[0]
    assert first.audio == iemocap / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F000.wav"
    assert first.video == iemocap / "Session1" / "dialog" / "avi" / "DivX" / "Ses01F_impro01.avi"
    assert first.segment == (0.5, 1.5)
    assert first.where.endswith("EmoEvaluation/Ses01F_impro01.txt:3")


def test_iemocap_merge_exc_counts_excited_as_happy(iemocap):
    corpus = read_corpus("iemocap", iemocap, merge_exc=True)
    assert corpus.classes == ("hap", "sad", "neu", "ang", "fru")
    labels = {u.uid: u.label for u in corpus.utterances}
    assert labels["Ses01F_impro02_M001"] == "hap"  # labelled exc in the release


def test_iemocap_without_session5_is_refused(iemocap):
    (iemocap / "Session5").rename(iemocap / "Held-out")
    with pytest.raises(DataError, match="no Session5 folder; Session 5 is the test split"):
        read_corpus("iemocap", iemocap)


def test_iemocap_turn_listed_twice_is_refused_naming_both_lines(iemocap):
    path = iemocap / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    path.write_text(path.read_text() + "[9.0000 - 9.5000]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]\n")
    with pytest.raises(DataError, match=r"Ses01F_impro01\.txt:15: utterance Ses01F_impro01_F000 appears twice \(first at .*:3\)"):
        read_corpus("iemocap", iemocap)


# ------------------------------------------------------------------------------------------------- MELD


def test_meld_keeps_the_official_splits_and_maps_emotions_to_the_spcl_classes(meld):
    corpus = read_corpus("meld", meld)
    assert corpus.classes == MELD_CLASSES
    dialogues = corpus.dialogues()
    assert list(dialogues) == ["train/dia0", "train/dia1", "dev/dia0", "test/dia0"]
    assert {d: us[0].split for d, us in dialogues.items()} == {
        "train/dia0": "train", "train/dia1": "train", "dev/dia0": "dev", "test/dia0": "test"
    }
    assert [u.label for u in dialogues["train/dia1"]] == ["sad", "ang", "fea"]
    assert [u.speaker for u in dialogues["train/dia0"]] == ["Chandler", "Monica", "Chandler"]
    assert corpus.dev_split == {"method": "official", "from": "dev_sent_emo.csv"}
    assert len(corpus.utterances) == sum(len(t) for ds in MELD_DIALOGUES.values() for _, t in ds)


def test_meld_clips_are_looked_for_in_the_release_folders(meld):
    (meld / "dev_splits_complete").mkdir()
    corpus = read_corpus("meld", meld)
    clips = {u.uid: u.video for u in corpus.utterances}
    assert clips["dev/dia0_utt1"] == meld / "dev_splits_complete" / "dia0_utt1.mp4"
    assert clips["test/dia0_utt0"] == meld / "output_repeated_splits_test" / "dia0_utt0.mp4"
    assert all(u.audio == u.video for u in corpus.utterances)  # the sound comes from the clip


def test_meld_unknown_emotion_is_a_problem_of_that_utterance(meld):
    path = meld / MELD_CSV["dev"]
    path.write_text(path.read_text().replace("disgust", "boredom"))
    corpus = read_corpus("meld", meld)
    assert [(p.uid, p.file, p.reason.split(" (")[0]) for p in corpus.problems] == [
        ("dev/dia0_utt0", f"{path}:2", "label 'boredom' is not a MELD emotion")
    ]
    assert "dev/dia0_utt0" not in {u.uid for u in corpus.utterances}


def test_meld_windows_1252_leftovers_become_the_characters_meant(meld):
    path = meld / MELD_CSV["test"]
    path.write_text(path.read_text().replace("We did it!", "We did it\x92s \x93fine\x94\x85"), encoding="utf-8")
    texts = {u.uid: u.text for u in read_corpus("meld", meld).utterances}
    assert texts["test/dia0_utt0"] == "We did it’s “fine”…"
    assert len(texts) == 11  # U+0085 inside a field is no line break


def test_meld_without_a_csv_is_refused_naming_it(meld):
    (meld / MELD_CSV["test"]).unlink()
    with pytest.raises(DataError, match=r"test_sent_emo\.csv: no such file; `layout` meld needs"):
        read_corpus("meld", meld)


# --------------------------------------------------------------------------------------------- manifest


def test_manifest_classes_are_the_sorted_labels_unless_given(manifest):
    assert read_corpus("manifest", manifest).classes == ("calm", "upset")
    assert read_corpus("manifest", manifest, classes=["upset", "calm", "bored"]).classes == ("upset", "calm", "bored")


def test_manifest_keeps_its_splits_order_and_names(manifest):
    corpus = read_corpus("manifest", manifest)
    assert corpus.name == "manifest"
    assert {d: us[0].split for d, us in corpus.dialogues().items()} == {d: s for d, s, _ in MANIFEST_DIALOGUES}
    assert [u.uid for u in corpus.dialogues()["call-4"]] == ["call-4/0", "call-4/1"]
    assert corpus.dev_split == {"method": "manifest"}


def test_manifest_paths_are_relative_to_the_csv_and_a_clip_stands_in_for_missing_audio(manifest):
    utterances = read_corpus("manifest", manifest).utterances
    assert utterances[0].video == manifest.parent / "video" / "call-1" / "0.mp4"
    assert utterances[0].audio == utterances[0].video
    assert utterances[5].audio == manifest.parent / "audio" / "call-2" / "2.wav" and utterances[5].video is None


def test_manifest_utterances_are_ordered_by_their_number(manifest):
    rows = read_manifest_rows(manifest)
    write_manifest(manifest, list(reversed(rows)))
    corpus = read_corpus("manifest", manifest)
    assert [u.order for u in corpus.dialogues()["call-1"]] == [0, 1, 2]
    assert list(corpus.dialogues()) == ["call-4", "call-3", "call-2", "call-1"]


def test_manifest_label_outside_the_given_classes_is_a_problem_naming_the_line(manifest):
    corpus = read_corpus("manifest", manifest, classes=["calm"])
    assert len(corpus.problems) == 4
    assert corpus.problems[0].file == f"{manifest}:3"
    assert corpus.problems[0].reason == "label 'upset' is not one of the classes calm"


def test_manifest_duplicate_utterance_is_refused_naming_both_lines(manifest):
    rows = read_manifest_rows(manifest)
    write_manifest(manifest, rows + [rows[1]])
    with pytest.raises(DataError, match=rf"{manifest}:12: utterance 1 of dialogue 'call-1' appears twice \(first on line 3\)"):
        read_corpus("manifest", manifest)


def test_manifest_missing_column_is_refused_naming_it(manifest):
    manifest.write_text(manifest.read_text().replace("speaker,", "who,", 1))
    with pytest.raises(DataError, match="missing column\\(s\\) 'speaker' in the header"):
        read_corpus("manifest", manifest)


def test_manifest_dialogue_in_two_splits_is_refused(manifest):
    rows = read_manifest_rows(manifest)
    rows[1][4] = "test"
    write_manifest(manifest, rows)
    with pytest.raises(DataError, match=r":3: dialogue 'call-1' is in split 'test' here but 'train' at .*:2"):
        read_corpus("manifest", manifest)


def test_manifest_unknown_split_is_refused(manifest):
    rows = read_manifest_rows(manifest)
    rows[0][4] = "validation"
    write_manifest(manifest, rows)
    with pytest.raises(DataError, match=r":2: split 'validation' is not one of train, dev, test"):
        read_corpus("manifest", manifest)


# ---------------------------------------------------------------------------------------------- options


def test_an_option_of_another_layout_is_refused(iemocap, manifest):
    with pytest.raises(ConfigError, match="`classes` applies to `layout` manifest only"):
        read_corpus("iemocap", iemocap, classes=["a"])
    with pytest.raises(ConfigError, match="`merge_exc` applies to `layout` iemocap only"):
        read_corpus("manifest", manifest, merge_exc=True)
    with pytest.raises(ConfigError, match="`layout` 'kaldi' is not one of iemocap, meld, manifest"):
        read_corpus("kaldi", manifest)


def test_a_source_of_the_wrong_layout_is_refused_saying_what_was_expected(manifest, meld):
    with pytest.raises(DataError, match="no Session1..Session5 folders; pass the IEMOCAP release folder"):
        read_corpus("iemocap", meld)
    with pytest.raises(DataError, match="is a folder; `layout` manifest needs the CSV file"):
        read_corpus("manifest", manifest.parent)
