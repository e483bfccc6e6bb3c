"""A feature file's dataset name comes from the file: its meta name, IEMOCAP or MELD recognised by classes and
dialogue ids, else its stem; never "synthetic". ``run --data FILE`` names and sizes the study after it."""

from __future__ import annotations

import pickle

import optuna
import pytest
from typer.testing import CliRunner

from spcl_search.cli import app
from spcl_search.data import IEMOCAP_CLASSES, MELD_CLASSES, load_dataset, make_synthetic
from spcl_search.errors import ConfigError
from spcl_search.schema.records import SPEC_ATTR


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPCL_SEARCH_CACHE", str(tmp_path / "cache"))


def _file(tmp_path, name, *, meta=None, ids=None, n_classes=6):
    """A small SPCL dict pickle: synthetic features, the given meta (none by default), dialogue ids and classes."""
    data = make_synthetic(n_dialogues=8, seed=2, min_len=2, max_len=4)
    del data["meta"]
    if meta is not None:
        data["meta"] = meta
    old = data["trainVid"] + data["testVid"]
    new = dict(zip(old, ids or old))
    for key in ("speaker", "label", "text", "audio", "visual", "sentence"):
        data[key] = {new[v]: x for v, x in data[key].items()}
    data["label"] = {v: [i % n_classes for i in range(len(x))] for v, x in data["label"].items()}
    data["label"][new[data["trainVid"][0]]][0] = n_classes - 1
    data["trainVid"], data["testVid"] = [new[v] for v in data["trainVid"]], [new[v] for v in data["testVid"]]
    path = tmp_path / name
    path.write_bytes(pickle.dumps(data))
    return path


def test_a_file_takes_its_meta_name(tmp_path):
    assert load_dataset(_file(tmp_path, "x.pkl", meta={"name": "My Corpus"})).name == "my_corpus"


def test_iemocap_is_recognised_by_its_classes_and_session_ids(tmp_path):
    ids = [f"Ses0{1 + i % 5}{'MF'[i % 2]}_impro0{i}" for i in range(8)]
    ds = load_dataset(_file(tmp_path, "corpus.pkl", ids=ids, n_classes=6))
    assert ds.name == "iemocap" and ds.classes == IEMOCAP_CLASSES


def test_meld_is_recognised_by_its_classes_and_dialogue_numbers(tmp_path):
    ds = load_dataset(_file(tmp_path, "corpus.pkl", ids=[str(i) for i in range(8)], n_classes=7))
    assert ds.name == "meld" and ds.classes == MELD_CLASSES


def test_ids_alone_do_not_make_a_benchmark(tmp_path):
    ids = [f"Ses0{1 + i % 5}{'MF'[i % 2]}_impro0{i}" for i in range(8)]
    assert load_dataset(_file(tmp_path, "corpus.pkl", ids=ids, n_classes=4)).name == "corpus"


def test_an_unrecognised_file_takes_its_stem_and_never_the_synthetic_name(tmp_path):
    assert load_dataset(_file(tmp_path, "corpus.pkl")).name == "corpus"
    assert load_dataset(_file(tmp_path, "mine.pkl", meta={"name": "synthetic"})).name == "mine"
    assert load_dataset(_file(tmp_path, "synthetic.pkl")).name == "synthetic_file"
    assert load_dataset("synthetic").name == "synthetic"  # the embedded set keeps its name


def _run(tmp_path, *args):
    db = tmp_path / "names.db"
    result = CliRunner().invoke(app, ["run", "--backbone", "mmgcn", "--workers", "0", "--storage", f"sqlite:///{db}", *args])
    return result, f"sqlite:///{db}"


def test_run_on_a_users_file_names_the_study_after_it_with_the_real_data_defaults(tmp_path):
    result, url = _run(tmp_path, "--data", str(_file(tmp_path, "corpus.pkl")))
    assert result.exit_code == 0, result.output
    (name,) = optuna.get_all_study_names(url)
    assert name == "mmgcn-corpus-search"
    study = optuna.load_study(study_name=name, storage=url)
    spec = study.user_attrs[SPEC_ATTR]
    assert study.user_attrs["dataset"] == spec["dataset"] == "corpus"
    assert "lr" not in spec["train"]  # the synthetic demo's lr 1e-3 is the synthetic set's alone
    assert spec["epochs"] == 60 and spec["n_trials"] == 100  # the form's protocol, a real study's budget


def test_run_refuses_to_call_a_users_file_synthetic(tmp_path):
    result, url = _run(tmp_path, "--dataset", "synthetic", "--data", str(_file(tmp_path, "corpus.pkl")))
    assert isinstance(result.exception, ConfigError)
    assert "--dataset synthetic" in str(result.exception) and "corpus.pkl" in str(result.exception)
