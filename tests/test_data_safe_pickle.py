"""The restricted unpickler admits containers, numbers, strings and numpy arrays, and nothing that runs code."""

from __future__ import annotations

import io
import os
import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spcl_search.data import load_dataset, safe_load, safe_loads
from spcl_search.errors import DataError

REFUSAL = "pickles may only hold containers, numbers, strings and numpy arrays"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPCL_SEARCH_CACHE", str(tmp_path / "cache"))


class TouchMarker:
    """Unpickling this with plain pickle would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class WriteMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_hostile_reduce_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps({"trainVid": [TouchMarker(marker)]}))
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    assert str(exc.value) == f"{path}: refuses to load '{os.system.__module__}.system': {REFUSAL}"
    assert not marker.exists()


def test_hostile_file_writer_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "MARKER"
    with pytest.raises(DataError, match="refuses to load 'pathlib.Path.write_text'|refuses to load 'pathlib."):
        safe_loads(pickle.dumps(WriteMarker(marker)), name="data.pkl")
    assert not marker.exists()


def test_refusal_names_the_file_and_the_global():
    with pytest.raises(DataError) as exc:
        safe_loads(pickle.dumps(eval), name="data.pkl")
    assert str(exc.value) == f"data.pkl: refuses to load 'builtins.eval': {REFUSAL}"


def test_numpy_functions_other_than_array_rebuilding_are_refused():
    with pytest.raises(DataError) as exc:
        safe_loads(pickle.dumps(np.load), name="data.pkl")
    assert str(exc.value) == f"data.pkl: refuses to load 'numpy.load': {REFUSAL}"


def test_persistent_references_are_refused():
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=4)
    pickler.persistent_id = lambda obj: "ref" if obj == "x" else None
    pickler.dump(["x"])
    with pytest.raises(DataError, match="^data.pkl: refuses to load a persistent reference"):
        safe_loads(buf.getvalue(), name="data.pkl")


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_arrays_numbers_strings_and_containers_round_trip(protocol):
    obj = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "i64": np.arange(3),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "scalar": np.float32(2.5),
        "nested": [("a", 1, 2.0, None, True), {"k": b"bytes"}],
        "ordered": OrderedDict(x=1),
        "set": {1, 2},
    }
    out = safe_loads(pickle.dumps(obj, protocol=protocol))
    for key in ("f32", "i64", "fortran"):
        np.testing.assert_array_equal(out[key], obj[key])
        assert out[key].dtype == obj[key].dtype
    assert out["scalar"] == np.float32(2.5) and out["nested"] == obj["nested"]
    assert out["ordered"] == obj["ordered"] and out["set"] == {1, 2}


def test_numpy_1_spelling_of_array_rebuilding_is_admitted():
    data = pickle.dumps(np.arange(4, dtype=np.float32), protocol=2)
    assert b"numpy._core.multiarray" in data
    old = safe_loads(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    np.testing.assert_array_equal(old, np.arange(4, dtype=np.float32))


class Python2Array:
    """How a Python 2 pickle stores an array: its bytes arrive as a latin-1 ``str``."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        raw = np.arange(3, dtype=np.float32).tobytes().decode("latin1")
        return (_reconstruct, (np.ndarray, (0,), b"b"), (1, (3,), np.dtype("f4"), False, raw))


def test_python_2_arrays_with_text_data_are_admitted():
    data = pickle.dumps(Python2Array(), protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    np.testing.assert_array_equal(safe_loads(data), np.arange(3, dtype=np.float32))


def test_file_that_is_not_a_pickle_is_refused(tmp_path):
    path = tmp_path / "notes.pkl"
    path.write_text("hello, these are not features\n")
    with pytest.raises(DataError, match=f"^{path}: is not a pickle or is corrupt"):
        safe_load(path)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.pkl"
    path.write_bytes(b"")
    with pytest.raises(DataError) as exc:
        safe_load(path)
    assert str(exc.value) == f"{path}: is empty or truncated (the pickle ends early)"


def test_truncated_pickle_is_refused():
    data = pickle.dumps({"a": np.zeros((50, 8), np.float32), "b": list(range(100))}, protocol=4)
    for cut in (len(data) // 3, len(data) - 1):
        with pytest.raises(DataError, match="^data.pkl: (is empty or truncated|is not a pickle or is corrupt)"):
            safe_loads(data[:cut], name="data.pkl")


class ArrayClaimingHugeShape:
    """An array whose pickled state declares 10**12 elements but carries 16 bytes."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (0,), b"b"), (1, (10**12,), np.dtype("f4"), False, b"\0" * 16))


class ObjectArrayClaimingHugeShape:
    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (0,), b"b"), (1, (10**10,), np.dtype("O"), False, [1]))


class ReconstructWithHugeDtype:
    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (1,), np.dtype("(100000000,)f8")))


class ReconstructWithHugeShape:
    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (10**12,), b"b"))


@pytest.mark.parametrize("hostile", [ArrayClaimingHugeShape(), ReconstructWithHugeShape()])
def test_array_declaring_a_huge_size_is_refused_before_allocating(hostile):
    with pytest.raises(DataError, match=r"^data.pkl: refuses to load: a numpy array declares shape \(\d+,\) \([\d,]+ bytes\)"):
        safe_loads(pickle.dumps(hostile, protocol=2), name="data.pkl")


@pytest.mark.parametrize("hostile", [ObjectArrayClaimingHugeShape(), ReconstructWithHugeDtype()])
def test_object_and_sub_array_dtypes_are_refused_before_any_array_is_made(hostile):
    with pytest.raises(DataError, match=r"^data.pkl: refuses numpy dtype '(O8|V800000000)': only arrays of numbers or text"):
        safe_loads(pickle.dumps(hostile, protocol=2), name="data.pkl")


def test_ndarray_cannot_be_allocated_through_newobj():
    # NEWOBJ(numpy.ndarray, ((10**12,),)): plain pickle would call ndarray.__new__ with that shape.
    huge = (10**12).to_bytes(6, "little", signed=True)
    data = b"\x80\x02cnumpy\nndarray\n\x8a\x06" + huge + b"\x85\x85\x81."
    with pytest.raises(DataError, match="^data.pkl: is not a pickle or is corrupt"):
        safe_loads(data, name="data.pkl")


def test_bytes_opcode_declaring_a_huge_length_is_refused():
    data = b"\x80\x04\x8e" + struct.pack("<Q", 10**15) + b"abc."
    with pytest.raises(DataError, match="^data.pkl: "):
        safe_loads(data, name="data.pkl")


def test_deeply_nested_meta_gives_a_clean_error(tmp_path):
    from spcl_search.data import make_synthetic

    data = make_synthetic(n_dialogues=3, min_len=2, max_len=2)
    data["meta"] = "DEEP"
    text = pickle.dumps(data, protocol=0)
    depth = 20_000
    deep = b"(dVx\n" + b"(l" * depth + b"a" * (depth - 1) + b"s"  # {"x": [[[...]]]}, built without recursion
    path = tmp_path / "deep.pkl"
    path.write_bytes(text.replace(b"VDEEP\n", deep, 1))
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    assert str(exc.value) == f"{path}: is nested more than 100 levels deep (a feature file needs a few)"


def test_missing_file_is_a_data_error(tmp_path):
    path = tmp_path / "absent.pkl"
    with pytest.raises(DataError, match=f"^{path}: cannot read"):
        safe_load(path)


VALID = pickle.dumps({"trainVid": ["d0"], "text": {"d0": [np.arange(4, dtype=np.float32)]}, "meta": OrderedDict(k=1)}, protocol=4)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_either_load_or_raise_a_data_error(data):
    try:
        safe_loads(data, name="fuzz.pkl")
    except DataError as exc:
        assert str(exc).startswith("fuzz.pkl: ") and "\n" not in str(exc)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(1, 255)), min_size=1, max_size=4))
def test_corrupted_pickles_either_load_or_raise_a_data_error(flips):
    data = bytearray(VALID)
    for pos, xor in flips:
        data[pos] ^= xor
    try:
        safe_loads(bytes(data), name="fuzz.pkl")
    except DataError as exc:
        assert str(exc).startswith("fuzz.pkl: ") and "\n" not in str(exc)
