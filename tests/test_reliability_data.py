"""Bad inputs never crash: hostile, truncated or wrong-format feature files and arbitrary study specs end
in a one-line DataError / ConfigError (exit code 2 at the CLI, no traceback), never in a traceback,
an allocation the file cannot back, or code run on load.

Property-based tests (hypothesis) feed the loaders arbitrary bytes, arbitrary pickled objects and damaged
feature dicts, and feed the spec parser arbitrary TOML documents, arbitrary text and arbitrary field values.
"""

from __future__ import annotations

import copy
import dataclasses
import gzip
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spcl_search.cli import main
from spcl_search.data import load_dataset, make_synthetic
from spcl_search.errors import ConfigError, DataError
from spcl_search.schema import spec as specs

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
SYNTHETIC = make_synthetic(n_dialogues=6, seed=1, min_len=2, max_len=4)
SYNTHETIC_BYTES = pickle.dumps(SYNTHETIC, protocol=4)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPCL_SEARCH_CACHE", str(tmp_path / "cache"))


def _one_line(exc: BaseException) -> bool:
    return "\n" not in str(exc) and bool(str(exc).strip())


# ----------------------------------------------------------------------------- bad feature files


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


class HugeArray:
    """An array whose state declares 10**11 float32 values but carries 16 bytes."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (0,), b"b"), (1, (10**11,), np.dtype("f4"), False, b"\0" * 16))


def _with(**changes):
    data = copy.deepcopy(SYNTHETIC)
    data.update(changes)
    return pickle.dumps(data, protocol=2)


def _deep_list(depth: int) -> bytes:
    return b"(l" * depth + b"a" * (depth - 1) + b"."  # [[[...]]] in protocol 0, built without recursion


BAD_FILES = {
    "code on load": (lambda p: p.write_bytes(_with(meta=RunsCode())), "refuses to load 'posix.system'"),
    "huge declared array": (lambda p: p.write_bytes(_with(meta=HugeArray())), "more than the file can hold"),
    "deeply nested": (lambda p: p.write_bytes(_deep_list(50_000)), ": "),
    "truncated": (lambda p: p.write_bytes(SYNTHETIC_BYTES[: len(SYNTHETIC_BYTES) // 2]), "truncated"),
    "text file": (lambda p: p.write_text("dialogue,label\nd0,1\n"), "is not a pickle or is corrupt"),
    "json": (lambda p: p.write_text(json.dumps({"trainVid": ["d0"]})), "is not a pickle or is corrupt"),
    "npz": (lambda p: np.savez(open(p, "wb"), text=np.zeros((2, 3))), "is a zip archive (an .npz?)"),
    "gzip": (lambda p: p.write_bytes(gzip.compress(SYNTHETIC_BYTES)), "decompress it first"),
    "empty": (lambda p: p.write_bytes(b""), "is empty or truncated"),
    "directory": (lambda p: p.mkdir(), "is a directory"),
    "missing": (lambda p: None, "no such file"),
    "wrong layout": (lambda p: p.write_bytes(pickle.dumps([1, 2, 3])), "is neither an SPCL dict pickle nor"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_feature_file_is_a_one_line_data_error_naming_it(tmp_path, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "features.pkl"
    make, says = BAD_FILES[kind]
    make(path)
    with pytest.raises(DataError) as err:
        load_dataset(path)
    assert _one_line(err.value) and str(err.value).startswith(f"{path}: ") and says in str(err.value)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_data_info_on_a_bad_file_exits_2_with_one_line(tmp_path, kind, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "features.pkl"
    BAD_FILES[kind][0](path)
    with pytest.raises(SystemExit) as exc:
        main(["data", "info", str(path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(f"error: {path}: ") and err.count("\n") == 1
    assert not (tmp_path / "PWNED").exists()


def test_a_real_data_info_process_on_a_hostile_file_exits_2_without_a_traceback(tmp_path):
    path = tmp_path / "features.pkl"
    BAD_FILES["code on load"][0](path)
    result = subprocess.run([sys.executable, "-m", "spcl_search", "data", "info", str(path)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env={**os.environ, "SPCL_SEARCH_CACHE": str(tmp_path / "c")})
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "PWNED").exists()


def test_a_dialogue_id_with_a_newline_still_gives_a_one_line_error():
    data = copy.deepcopy(SYNTHETIC)
    data["trainVid"].append("evil\nid")
    with pytest.raises(DataError) as err:
        load_dataset(data)
    assert _one_line(err.value) and "evil\\nid" in str(err.value)


def test_a_split_listing_none_is_a_one_line_data_error():
    # found by the property test below: None as the offending id was taken for "no offending id"
    data = copy.deepcopy(SYNTHETIC)
    data["trainVid"] = [None, np.array(0.0, dtype=np.float32)]
    with pytest.raises(DataError, match="split 'trainVid' holds None, which is not a dialogue id"):
        load_dataset(data)


# ----------------------------------------------------------------- property-based: the loaders


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_in_a_feature_file_load_or_give_a_one_line_data_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "f.pkl"
    path.write_bytes(data)
    try:
        load_dataset(path, use_cache=False)
    except DataError as exc:
        assert _one_line(exc) and str(exc).startswith(f"{path}: ")


_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4), st.binary(max_size=4),
    st.builds(lambda shape, dt: np.zeros(shape, dt), st.lists(st.integers(0, 3), max_size=3).map(tuple),
              st.sampled_from(["f4", "f8", "i8", "O", "U2", "c8", "?"])),
)
_keys = st.one_of(st.sampled_from(["trainVid", "testVid", "validVid", "label", "text", "audio", "visual", "speaker", "speakers",
                                   "sentence", "meta"]), st.text(max_size=3), st.integers())
_objects = st.recursive(
    _leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.lists(inner, min_size=9, max_size=10).map(tuple),
                            st.dictionaries(_keys, inner, max_size=6), st.frozensets(st.integers(), max_size=3)),
    max_leaves=25,
)


@FUZZ
@given(_objects, st.sampled_from([0, 2, 4, 5]))
def test_any_pickled_object_loads_or_gives_a_one_line_data_error(tmp_path_factory, obj, protocol):
    path = tmp_path_factory.mktemp("objects") / "f.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    try:
        load_dataset(path, use_cache=False)
    except DataError as exc:
        assert _one_line(exc)


_VID = SYNTHETIC["trainVid"][0]
_TABLES = [k for k, v in SYNTHETIC.items() if isinstance(v, dict)]
_junk = st.one_of(_leaf, st.lists(st.integers(-2, 9), max_size=4), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))
_damage = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(list(SYNTHETIC)), st.none()),
    st.tuples(st.just("replace"), st.sampled_from(list(SYNTHETIC)), _junk),
    st.tuples(st.just("entry"), st.sampled_from(_TABLES), _junk),
    st.tuples(st.just("drop entry"), st.sampled_from(_TABLES), st.none()),
    st.tuples(st.just("list id"), st.sampled_from(["trainVid", "testVid"]), st.one_of(st.text(max_size=3), st.integers(), _junk)),
)


@FUZZ
@given(st.lists(_damage, min_size=1, max_size=4), st.booleans())
def test_a_damaged_feature_dict_loads_or_gives_a_one_line_data_error(damage, as_tuple):
    data = copy.deepcopy(SYNTHETIC)
    for op, key, value in damage:
        if op == "drop":
            data.pop(key, None)
        elif op == "replace":
            data[key] = value
        elif op == "entry" and isinstance(data.get(key), dict):
            data[key][_VID] = value
        elif op == "drop entry" and isinstance(data.get(key), dict):
            data[key].pop(_VID, None)
        elif op == "list id" and isinstance(data.get(key), list):
            data[key].append(value)
    obj: object = data
    if as_tuple:  # the DialogueGCN / MMGCN layout of the same content
        labels = data.get("label")
        ids = list(labels) if isinstance(labels, dict) else labels
        obj = (ids, data.get("speaker"), labels, data.get("text"), data.get("audio"), data.get("visual"), data.get("sentence", {}),
               data.get("trainVid"), data.get("testVid"))
    try:
        load_dataset(obj, use_cache=False)
    except DataError as exc:
        assert _one_line(exc)


# -------------------------------------------------------------- property-based: the spec parser


def _toml(value) -> str:
    """``value`` as a TOML value (inline tables and arrays)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


FIELDS = [f for f in specs.StudySpec.__dataclass_fields__] + ["objectives", "search", "balance"]
_toml_scalars = st.one_of(st.booleans(), st.integers(-10**20, 10**20), st.floats(), st.text(max_size=6),
                          st.sampled_from(["atv", "at,tv", "search", "balance", "tpe", "nsga2", "median", "none", "cheap", "paper"]))
_toml_values = st.recursive(
    _toml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.one_of(st.sampled_from(["low", "high", "log", "step", "choices", *specs.PARAMS, "seconds",
                                                                       "fault", "lr", "cap", "n_trials", "space"]), st.text(max_size=3)),
                                            inner, max_size=4)),
    max_leaves=10,
)
_toml_docs = st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=4)), _toml_values, max_size=7)


def _spec_or_config_error(build):
    try:
        return build()
    except ConfigError as exc:
        assert _one_line(exc), str(exc)
        return None


@FUZZ
@given(_toml_docs, st.sampled_from([None, "search", "balance"]))
def test_any_toml_document_gives_a_spec_or_a_one_line_config_error(tmp_path_factory, doc, kind):
    path = tmp_path_factory.mktemp("specs") / "study.toml"
    path.write_text("".join(f"{json.dumps(k)} = {_toml(v)}\n" for k, v in doc.items()))
    fields = _spec_or_config_error(lambda: specs.load_file(path, kind))
    if fields is not None:
        _spec_or_config_error(lambda: specs.build({"backbone": "mmgcn", **fields}))


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_as_a_spec_file_give_fields_or_a_one_line_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("specs") / "study.toml"
    path.write_bytes(data)
    _spec_or_config_error(lambda: specs.load_file(path))


_junk_values = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(), st.text(max_size=5),
                         st.lists(st.one_of(st.integers(-3, 3), st.floats(), st.text(max_size=2)), max_size=3),
                         st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
_numbers = st.one_of(st.integers(-5, 300), st.floats(-5, 300), st.floats(), st.text(max_size=4), st.booleans())
_ranges = st.fixed_dictionaries({}, optional={"low": _numbers, "high": _numbers, "log": st.one_of(st.booleans(), _junk_values),
                                              "step": st.one_of(_numbers, _junk_values),
                                              "choices": st.one_of(st.lists(st.one_of(_numbers, _junk_values), max_size=3), _junk_values)})
_field_values = {
    "kind": st.sampled_from(specs.KINDS),
    "modalities": st.one_of(st.sampled_from(["atv", "atv,at", "a,t,v", "tv", "x"]), st.lists(st.text(max_size=3), max_size=3)),
    "epochs": st.integers(-2, 6),
    "seeds": st.lists(st.one_of(st.integers(-3, 3), st.floats(), st.text(max_size=2)), max_size=3),
    "n_trials": st.integers(-2, 6),
    "sampler": st.sampled_from(specs.SAMPLERS),
    "pruner": st.sampled_from(specs.PRUNERS),
    "pruner_options": st.dictionaries(st.sampled_from(["n_startup_trials", "n_warmup_steps", "min_resource", "reduction_factor", "x"]),
                                      _numbers, max_size=2),
    "warm_start": st.sampled_from(["none", "paper", "paper:meld", "paper:x"]),
    "train": st.dictionaries(st.sampled_from([*specs.TRAIN_KEYS, "x"]), st.one_of(_numbers, _junk_values), max_size=2),
    "spcl": st.dictionaries(st.sampled_from(["normalise", "score", "cap", "x"]), st.one_of(_numbers, st.sampled_from(["all", "mean"])), max_size=2),
    "space": st.dictionaries(st.sampled_from([*specs.PARAMS, "modalities"]), st.one_of(_ranges, _junk_values), max_size=3),
    "dataset": st.sampled_from(["synthetic", "iemocap", ""]),
    "baseline": _junk_values,
}
_requests = st.fixed_dictionaries(
    {"backbone": st.sampled_from(["mmgcn", "late_fusion"])},
    optional={k: st.one_of(v, _junk_values) for k, v in _field_values.items()},
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_requests)
def test_random_field_values_give_a_usable_spec_or_a_one_line_config_error(requested):
    spec = _spec_or_config_error(lambda: specs.build(requested))
    if spec is None:
        return
    import optuna
    from simulated import SimulatedTrainer

    from spcl_search.search.algorithms import make_pruner, make_sampler
    from spcl_search.search.objectives import make_objective

    assert specs.from_dict(spec.to_dict()) == spec  # what a study stores reads back the same
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["maximize"] * len(spec.metrics), sampler=make_sampler(spec), pruner=make_pruner(spec))
    fast = dataclasses.replace(spec, epochs=min(spec.epochs, 2))
    study.optimize(make_objective(fast, SimulatedTrainer(fast.epochs)), n_trials=1, catch=(DataError, ConfigError, MemoryError, RuntimeError))
    assert study.trials[0].state.is_finished()


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), _junk_values, max_size=6))
def test_a_damaged_stored_spec_is_a_one_line_config_error(stored):
    _spec_or_config_error(lambda: specs.from_dict(stored))
