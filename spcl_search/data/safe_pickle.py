"""A restricted unpickler for feature files downloaded from the internet.

Plain ``pickle.load`` runs any callable a file names. Feature pickles only need containers, numbers,
strings, bytes and numpy arrays, so :func:`safe_load` admits exactly those and refuses every other
global with a one-line :class:`~spcl_search.errors.DataError` (before anything is called). It also
turns the ways a hostile or damaged file can misbehave (not a pickle, truncated, absurd declared sizes,
deep nesting) into the same one-line error instead of a traceback or an out-of-memory kill.

Admitted globals: ``numpy.(_)core.multiarray._reconstruct`` and ``.scalar`` (both spellings, numpy 1.x
and 2.x), ``numpy.(_)core.numeric._frombuffer`` (protocol 5, re-implemented here), ``numpy.ndarray``, ``numpy.dtype``, ``collections.OrderedDict``, ``set``/``frozenset`` (the
Python 2 and 3 spellings) and ``_codecs.encode`` restricted to latin-1 (how Python 3 writes bytes at
protocol 2). Arrays are rebuilt as a private ``ndarray`` subclass whose ``__setstate__`` checks the
declared size against the file size before numpy allocates anything.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from spcl_search.errors import DataError

__all__ = ["ALLOWED_GLOBALS", "safe_load", "safe_loads"]

_REFUSAL = "pickles may only hold containers, numbers, strings and numpy arrays"

#: ``module.name`` of every global a feature pickle may name.
ALLOWED_GLOBALS = frozenset(
    {
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",
        "numpy._core.numeric._frombuffer",
        "numpy.ndarray",
        "numpy.dtype",
        "collections.OrderedDict",
        "builtins.set",
        "builtins.frozenset",
        "__builtin__.set",
        "__builtin__.frozenset",
        "_codecs.encode",
    }
)

#: Slack on the size bound, so that tiny files may still hold small empty-ish arrays.
_MIN_BUDGET = 1 << 20

#: Leading bytes of formats often mistaken for a feature pickle, and what to do instead (no pickle
#: starts with them: protocol 2+ opens with 0x80, and "P" is a persistent id, refused anyway).
_OTHER_FORMATS = (
    (b"PK\x03\x04", "is a zip archive (an .npz?), not a pickle; pass the feature pickle (.pkl)"),
    (b"\x1f\x8b", "is gzip-compressed; decompress it first (gunzip) and pass the .pkl"),
    (b"\x93NUMPY", "is a .npy array, not a pickle; pass the feature pickle (.pkl)"),
)


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` in a pickle: only :func:`_reconstruct` may use it.

    Handing the real class to the unpickler would let ``NEWOBJ`` call ``ndarray.__new__`` with any
    shape; this token is neither callable nor a type, so that opcode fails instead.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayToken()


class _CheckedArray(np.ndarray):
    """``ndarray`` whose unpickling refuses a declared size larger than the file can hold."""

    _budget: int

    def __setstate__(self, state: Any) -> None:
        budget = getattr(self, "_budget", _MIN_BUDGET)
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("malformed numpy array state")
        _check_size(state[-4], state[-3], budget)
        super().__setstate__(state)


class _TooLarge(pickle.UnpicklingError):
    def __init__(self, shape: tuple[int, ...], nbytes: int) -> None:
        super().__init__(f"a numpy array declares shape {shape} ({nbytes:,} bytes), more than the file can hold")


def _check_size(shape: Any, dtype: Any, budget: int) -> None:
    """Refuse an array whose declared bytes exceed ``budget`` (set from the file size)."""
    n = _element_count(shape)
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("malformed numpy array state (dtype)")
    # Object arrays hold one pointer per element; others hold itemsize bytes, all read from the file.
    per_item = max(dtype.itemsize, 8 if dtype.hasobject else 1)
    if n * per_item > budget:
        raise _TooLarge(shape, n * per_item)


def _element_count(shape: Any) -> int:
    try:
        n = math.prod(shape) if type(shape) is tuple else None
    except TypeError:
        n = None
    if type(n) is not int or (shape and min(shape) < 0):
        raise pickle.UnpicklingError(f"malformed numpy array shape {shape!r}")
    return n


def _latin1_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: latin-1 only."""
    if not isinstance(text, str) or encoding.replace("_", "-").lower() not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError("_codecs.encode is admitted only to decode latin-1 bytes")
    return text.encode("latin1")


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: str, axis_order: Any = None) -> np.ndarray:
    """Protocol-5 arrays: a view of bytes already read from the file, so no size can be inflated."""
    if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)) or not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("malformed protocol-5 numpy array")
    _element_count(shape)
    flat = np.frombuffer(memoryview(buf), dtype=dtype)
    if order == "K" and axis_order is not None:
        return flat.reshape(shape, order="C").transpose(axis_order)
    return flat.reshape(shape, order="F" if order == "F" else "C")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, *, name: str, budget: int) -> None:
        super().__init__(file, encoding="latin1")
        self._name = name
        self._budget = budget

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        if qualified not in ALLOWED_GLOBALS:
            shown = qualified.encode("unicode_escape").decode("ascii")[:120]  # a hostile name stays one line
            raise DataError(f"{self._name}: refuses to load '{shown}': {_REFUSAL}")
        if name == "_reconstruct":
            return self._reconstruct
        if name == "_frombuffer":
            return _frombuffer
        if name == "scalar":
            return np._core.multiarray.scalar  # type: ignore[attr-defined]  # numpy 2's private home of the scalar pickles name
        if name == "ndarray":
            return _NDARRAY
        if name == "dtype":
            return np.dtype
        if name == "OrderedDict":
            return OrderedDict
        if name == "set":
            return set
        if name == "frozenset":
            return frozenset
        return _latin1_encode  # _codecs.encode

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self._name}: refuses to load a persistent reference: {_REFUSAL}")

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError("numpy _reconstruct may only build numpy.ndarray")
        dtype = np.dtype(dtype)
        _check_size(shape, dtype, self._budget)
        arr = np.ndarray.__new__(_CheckedArray, shape, dtype)
        arr._budget = self._budget
        return arr


def safe_loads(data: bytes, name: str = "<bytes>") -> Any:
    """Unpickle ``data`` with the restricted unpickler; ``name`` is used in error messages.

    Arrays in the result are ``numpy.ndarray`` instances (a private subclass); ``np.asarray`` gives plain ones.
    """
    for magic, what in _OTHER_FORMATS:
        if data.startswith(magic):
            raise DataError(f"{name}: {what}")
    budget = max(8 * len(data), _MIN_BUDGET)
    try:
        return _RestrictedUnpickler(io.BytesIO(data), name=name, budget=budget).load()
    except DataError:
        raise
    except EOFError:
        raise DataError(f"{name}: is empty or truncated (the pickle ends early)") from None
    except _TooLarge as exc:
        raise DataError(f"{name}: refuses to load: {exc}") from None
    except pickle.UnpicklingError as exc:
        raise DataError(f"{name}: is not a pickle or is corrupt ({_one_line(exc)})") from None
    except MemoryError:
        raise DataError(f"{name}: declares an object larger than memory (corrupt or hostile pickle)") from None
    except RecursionError:
        raise DataError(f"{name}: is nested too deeply to load") from None
    except Exception as exc:  # noqa: BLE001 - any other failure of a damaged file is a data error
        raise DataError(f"{name}: is not a pickle or is corrupt ({type(exc).__name__}: {_one_line(exc)})") from None


def safe_load(path: str | os.PathLike[str]) -> Any:
    """Read and unpickle the file at ``path`` with the restricted unpickler (``encoding='latin1'``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return safe_loads(data, name=str(path))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__
