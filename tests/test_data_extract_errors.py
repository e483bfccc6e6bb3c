"""Bad input to ``data extract``: a one-line error naming the file (exit 2, nothing written), or with
``--on-error skip`` a recorded skip; never a partial file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from extract_corpora import MELD_FOLDERS, make_manifest, make_meld, read_manifest_rows, require_extract_tools, write_manifest

from spcl_search.cli import main
from spcl_search.data import load_dataset, safe_load


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return int(exc.value.code or 0)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A manifest corpus (wavs only) and a MELD release, built once and copied by each test."""
    require_extract_tools()
    root = tmp_path_factory.mktemp("pristine")
    return {"manifest": make_manifest(root / "manifest", video_rows=0).parent, "meld": make_meld(root / "meld")}


@pytest.fixture
def corpus(pristine: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("SPCL_SEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    copies = {name: Path(shutil.copytree(src, tmp_path / name)) for name, src in pristine.items()}
    copies["csv"] = copies["manifest"] / "manifest.csv"
    return copies


def extract(source: Path, layout: str, out: Path, *options: str) -> int:
    return run("data", "extract", str(source), "--layout", layout, "--out", str(out), *options)


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def nothing_written(out: Path) -> bool:
    return not out.exists() and not list(out.parent.glob(f".{out.name}.*"))


def skipped(out: Path) -> list[dict[str, str]]:
    return safe_load(out)["meta"]["extraction"]["skipped"]


# ----------------------------------------------------------------------------------------- corrupt wav


def test_corrupt_wav_is_a_one_line_error_naming_the_file_and_nothing_is_written(corpus, tmp_path, capsys):
    wav = corpus["manifest"] / "audio" / "call-2" / "1.wav"
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" + bytes(200))
    out = tmp_path / "out.pkl"
    assert extract(corpus["csv"], "manifest", out, "-m", "a") == 2
    line = one_line_error(capsys)
    assert line.startswith(f"error: {wav}: cannot decode its audio")
    assert "(utterance call-2/1)" in line and "--on-error skip" in line
    assert nothing_written(out)


def test_corrupt_wav_with_on_error_skip_is_left_out_and_recorded(corpus, tmp_path):
    wav = corpus["manifest"] / "audio" / "call-2" / "1.wav"
    wav.write_bytes(bytes(300))
    out = tmp_path / "out.pkl"
    assert extract(corpus["csv"], "manifest", out, "-m", "a", "--on-error", "skip") == 0
    [record] = skipped(out)
    assert record["utterance"] == "call-2/1" and record["file"] == str(wav) and "cannot decode" in record["reason"]
    data = safe_load(out)
    assert data["utterance_id"]["call-2"] == ["call-2/0", "call-2/2"]
    assert sum(len(v) for v in data["label"].values()) == 9


# ---------------------------------------------------------------------------------------- missing clip


def test_missing_clip_is_a_one_line_error_naming_it_before_any_work(corpus, tmp_path, capsys):
    clip = corpus["meld"] / MELD_FOLDERS["train"] / "dia1_utt2.mp4"
    clip.unlink()
    out = tmp_path / "out.pkl"
    assert extract(corpus["meld"], "meld", out, "-m", "av", "--cache-dir", str(tmp_path / "cache")) == 2
    assert one_line_error(capsys).startswith(f"error: {clip}: no such file (utterance train/dia1_utt2)")
    assert nothing_written(out) and not (tmp_path / "cache").exists()  # refused before extracting anything


def test_missing_clip_with_on_error_skip_is_left_out_and_recorded(corpus, tmp_path):
    clip = corpus["meld"] / MELD_FOLDERS["dev"] / "dia0_utt0.mp4"
    clip.unlink()
    out = tmp_path / "out.pkl"
    assert extract(corpus["meld"], "meld", out, "-m", "a", "--on-error", "skip") == 0
    assert skipped(out) == [
        {"utterance": "dev/dia0_utt0", "dialogue": "dev/dia0", "file": str(clip), "reason": "no such file"}
    ]
    assert safe_load(out)["utterance_id"]["dev/dia0"] == ["dev/dia0_utt1"]


# ----------------------------------------------------------------------------------- empty transcript


def test_empty_transcript_is_a_one_line_error_naming_the_line(corpus, tmp_path, capsys):
    rows = read_manifest_rows(corpus["csv"])
    rows[3][5] = "   "
    write_manifest(corpus["csv"], rows)
    out = tmp_path / "out.pkl"
    assert extract(corpus["csv"], "manifest", out, "-m", "at") == 2
    assert one_line_error(capsys).startswith(f"error: {corpus['csv']}:5: empty transcript (utterance call-2/0)")
    assert nothing_written(out)


def test_empty_transcript_with_on_error_skip_is_left_out_and_recorded(corpus, tmp_path):
    rows = read_manifest_rows(corpus["csv"])
    rows[3][5] = ""
    write_manifest(corpus["csv"], rows)
    out = tmp_path / "out.pkl"
    assert extract(corpus["csv"], "manifest", out, "-m", "t", "--on-error", "skip") == 0
    assert [(r["utterance"], r["reason"]) for r in skipped(out)] == [("call-2/0", "empty transcript")]


def test_empty_transcript_is_no_defect_when_text_is_not_extracted(corpus, tmp_path):
    rows = read_manifest_rows(corpus["csv"])
    rows[3][5] = ""
    write_manifest(corpus["csv"], rows)
    out = tmp_path / "out.pkl"
    assert extract(corpus["csv"], "manifest", out, "-m", "a") == 0
    assert skipped(out) == [] and safe_load(out)["sentence"]["call-2"][0] == ""


# ------------------------------------------------------------------------- paths outside the corpus folder


def _point_row_at(corpus: dict[str, Path], row: int, path: str) -> None:
    rows = read_manifest_rows(corpus["csv"])
    rows[row][6] = path
    write_manifest(corpus["csv"], rows)


def _outside_wav(corpus: dict[str, Path], tmp_path: Path) -> Path:
    outside = tmp_path / "outside" / "x.wav"
    outside.parent.mkdir()
    shutil.move(corpus["manifest"] / "audio" / "call-2" / "0.wav", outside)
    return outside


def test_a_manifest_path_climbing_out_of_its_folder_is_refused_naming_the_row(corpus, tmp_path, capsys):
    _outside_wav(corpus, tmp_path)
    _point_row_at(corpus, 3, "../outside/x.wav")
    out = tmp_path / "out.pkl"
    assert extract(corpus["csv"], "manifest", out, "-m", "a") == 2
    line = one_line_error(capsys)
    assert line.startswith(f"error: {corpus['csv']}:5: audio path ") and "resolves outside the corpus folder" in line
    assert "--allow-outside" in line and nothing_written(out)


def test_an_absolute_manifest_path_is_refused(corpus, tmp_path, capsys):
    outside = _outside_wav(corpus, tmp_path)
    _point_row_at(corpus, 3, str(outside))
    assert extract(corpus["csv"], "manifest", tmp_path / "out.pkl", "-m", "a") == 2
    assert "resolves outside the corpus folder" in one_line_error(capsys)


def test_a_symlink_inside_the_folder_that_leads_out_of_it_is_refused(corpus, tmp_path, capsys):
    outside = _outside_wav(corpus, tmp_path)
    (corpus["manifest"] / "audio" / "call-2" / "0.wav").symlink_to(outside)
    assert extract(corpus["csv"], "manifest", tmp_path / "out.pkl", "-m", "a") == 2
    assert one_line_error(capsys).startswith(f"error: {corpus['csv']}:5: audio path ")


def test_an_utterance_id_cannot_lead_visual_from_out_of_its_folder(tmp_path):
    from spcl_search.data.extract.corpus import Utterance
    from spcl_search.data.extract.visual import ImportedSpec

    (tmp_path / "secret.npy").write_bytes(b"")
    spec = ImportedSpec(root=str(tmp_path / "arrays"))
    u = Utterance("../secret", "..", 0, "A", "calm", "train", "hi", None, None, None, "m.csv:2", "m.csv:2")
    problem = spec.check(u)
    assert problem is not None and "outside --visual-from" in problem.reason


def test_allow_outside_reads_a_path_outside_the_folder(corpus, tmp_path):
    _outside_wav(corpus, tmp_path)
    _point_row_at(corpus, 3, "../outside/x.wav")
    out = tmp_path / "out.pkl"
    assert extract(corpus["csv"], "manifest", out, "-m", "a", "--allow-outside") == 0
    assert skipped(out) == [] and len(safe_load(out)["audio"]["call-2"]) == 3


# ------------------------------------------------------------------------------ label outside the classes


def test_label_outside_the_class_set_is_a_one_line_error_naming_the_line(corpus, tmp_path, capsys):
    out = tmp_path / "out.pkl"
    assert extract(corpus["csv"], "manifest", out, "-m", "a", "--classes", "calm,bored") == 2
    assert one_line_error(capsys).startswith(
        f"error: {corpus['csv']}:3: label 'upset' is not one of the classes calm,bored (utterance call-1/1)"
    )
    assert nothing_written(out)


def test_label_outside_the_class_set_with_on_error_skip_is_left_out_and_recorded(corpus, tmp_path):
    out = tmp_path / "out.pkl"
    assert extract(corpus["csv"], "manifest", out, "-m", "a", "--classes", "calm,bored", "--on-error", "skip") == 0
    assert len(skipped(out)) == 4 and {r["reason"] for r in skipped(out)} == {"label 'upset' is not one of the classes calm,bored"}
    ds = load_dataset(out)
    assert ds.classes == ("calm", "bored") and all((d.labels == 0).all() for d in ds.train + ds.dev + ds.test)


# ------------------------------------------------------------------------------- duplicate utterance ids


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_duplicate_utterance_ids_are_refused_whatever_on_error_says(corpus, tmp_path, capsys, on_error):
    rows = read_manifest_rows(corpus["csv"])
    write_manifest(corpus["csv"], rows + [rows[4]])
    out = tmp_path / "out.pkl"
    assert extract(corpus["csv"], "manifest", out, "-m", "a", "--on-error", on_error) == 2
    assert one_line_error(capsys) == (
        f"error: {corpus['csv']}:12: utterance 1 of dialogue 'call-2' appears twice (first on line 6); utterance ids must be unique"
    )
    assert nothing_written(out)


# ----------------------------------------------------------------------------------------------- options


def test_missing_text_model_is_a_one_line_error_naming_the_option(corpus, tmp_path, capsys):
    out = tmp_path / "out.pkl"
    assert extract(corpus["csv"], "manifest", out, "--text-model", str(tmp_path / "no-model")) == 2
    assert one_line_error(capsys).startswith(f"error: --text-model {tmp_path / 'no-model'}: no such model folder or installed package")
    assert nothing_written(out)


def test_existing_output_is_kept_without_force(corpus, tmp_path, capsys):
    out = tmp_path / "out.pkl"
    out.write_text("keep me")
    assert extract(corpus["csv"], "manifest", out, "-m", "a") == 2
    assert one_line_error(capsys) == f"error: {out}: already exists; pass --force to overwrite it"
    assert out.read_text() == "keep me"
    assert extract(corpus["csv"], "manifest", out, "-m", "a", "--force") == 0
    assert load_dataset(out).dims == {"a": 88}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--audio-set", "IS09"], "--audio-set 'IS09' is not one of eGeMAPSv02, ComParE_2016, emobase"),
        (["--modalities", "atx"], "--modalities: modalities 'atx' is not one of"),
        (["--on-error", "ignore"], "--on-error 'ignore' is not one of raise, skip"),
        (["--jobs", "0"], "--jobs must be at least 1, got 0"),
        (["-m", "at", "--visual-from", "."], "--visual-from gives visual features, but --modalities has no 'v'"),
    ],
)
def test_bad_option_is_a_one_line_error_naming_it(corpus, tmp_path, capsys, option, message):
    assert extract(corpus["csv"], "manifest", tmp_path / "out.pkl", *option) == 2
    assert one_line_error(capsys).startswith(f"error: {message}")


# -------------------------------------------------------------------------------------------- --visual-from


def test_visual_from_imports_per_utterance_arrays_averaging_frames(corpus, tmp_path):
    arrays = tmp_path / "openface"
    for i, row in enumerate(read_manifest_rows(corpus["csv"])):
        (arrays / row[0]).mkdir(parents=True, exist_ok=True)
        np.save(arrays / row[0] / f"{row[1]}.npy", np.full((3, 5), float(i)) + np.arange(3)[:, None])
    out = tmp_path / "out.pkl"
    assert extract(corpus["csv"], "manifest", out, "-m", "v", "--visual-from", str(arrays)) == 0
    data = safe_load(out)
    np.testing.assert_array_equal(data["visual"]["call-1"][2], np.full(5, 3.0, dtype=np.float32))  # row 2: 2 + mean(0, 1, 2)
    assert data["meta"]["extraction"]["extractors"]["visual"]["name"] == "imported"
    assert data["meta"]["modalities"]["visual"] == f"imported from {arrays}"


def test_visual_from_with_a_missing_array_is_a_one_line_error_naming_it(corpus, tmp_path, capsys):
    arrays = tmp_path / "openface"
    arrays.mkdir()
    assert extract(corpus["csv"], "manifest", tmp_path / "out.pkl", "-m", "v", "--visual-from", str(arrays)) == 2
    assert one_line_error(capsys).startswith(f"error: {arrays / 'call-1' / '0.npy'}: no such file (utterance call-1/0)")


def test_skipping_every_test_utterance_is_an_error_not_a_file_without_test(corpus, tmp_path, capsys):
    for i in (0, 1):
        (corpus["manifest"] / "audio" / "call-4" / f"{i}.wav").write_bytes(bytes(100))
    out = tmp_path / "out.pkl"
    assert extract(corpus["csv"], "manifest", out, "-m", "a", "--on-error", "skip") == 2
    assert "no test dialogue is left to write (every one was skipped or dropped)" in one_line_error(capsys)
    assert nothing_written(out)
