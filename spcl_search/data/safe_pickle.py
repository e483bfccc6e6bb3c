"""A restricted unpickler for feature files downloaded from the internet.

Plain ``pickle.load`` runs any callable a file names, and even a restricted ``pickle.Unpickler`` lets the
file drive numpy's own reconstruction (a ``BUILD`` on a dtype can make numpy read raw bytes as object
pointers) and Python's memo (a 10-byte file can size it to gigabytes). Feature pickles need only
containers, numbers, strings, bytes and numpy arrays of numbers or text, so :func:`safe_load` runs the
opcodes on :class:`~spcl_search.data.pickle_machine.PickleMachine`, which bounds memory, memo,
nesting and shared references by the file size, and admits exactly these globals:

* ``numpy.(_)core.multiarray._reconstruct`` + ``BUILD``, ``numpy.(_)core.numeric._frombuffer`` (protocol 5)
  and ``numpy.(_)core.multiarray.scalar``: the array (scalar) is made here from ``(dtype, shape, bytes)``
  with ``np.frombuffer`` once the byte count equals ``prod(shape) * itemsize``; numpy's ``__setstate__``
  never runs;
* ``numpy.dtype`` + ``BUILD``: the dtype is made here from its type string and byte order; object,
  structured, sub-array and datetime dtypes are refused;
* ``numpy.ndarray`` (only as ``_reconstruct``'s argument), ``collections.OrderedDict``, ``set`` and
  ``frozenset`` (the Python 2 and 3 spellings), ``_codecs.encode`` restricted to latin-1 and ``bytes()``
  without arguments (how Python 3 writes bytes at protocol 2).

Every refusal is a one-line :class:`~spcl_search.errors.DataError` naming the file.
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from spcl_search.data.pickle_machine import (
    BUDGET_FLOOR,
    BUDGET_PER_BYTE,
    Global,
    Pending,
    PersistentRefused,
    PickleMachine,
    PickleRefused,
    TooDeep,
    TooLarge,
    audit,
)
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
        "builtins.bytes",
        "__builtin__.bytes",
    }
)

#: numpy type strings a feature file may use: booleans, integers, floats, complex numbers, bytes and text
_TYPESTR = re.compile(r"[biufc]\d{1,2}|[SU]\d{1,9}")

#: Leading bytes of formats often mistaken for a feature pickle, and what to do instead (no pickle
#: starts with them: protocol 2+ opens with 0x80, and "P" is a persistent id, refused anyway).
_OTHER_FORMATS = (
    (b"PK\x03\x04", "is a zip archive (an .npz?), not a pickle; pass the feature pickle (.pkl)"),
    (b"\x1f\x8b", "is gzip-compressed; decompress it first (gunzip) and pass the .pkl"),
    (b"\x93NUMPY", "is a .npy array, not a pickle; pass the feature pickle (.pkl)"),
)


class _TooLargeArray(TooLarge):
    def __init__(self, shape: tuple[int, ...], nbytes: int) -> None:
        super().__init__(f"a numpy array declares shape {shape} ({nbytes:,} bytes), more than the file can hold")


class _PendingDtype(Pending):
    """``numpy.dtype(typestr, align, copy)`` before its ``BUILD`` says the byte order."""

    what = "dtype"

    def __init__(self, typestr: str) -> None:
        self.typestr = typestr

    def build(self, state: Any) -> np.dtype[Any]:
        if type(state) is not tuple or not 5 <= len(state) <= 9 or type(state[0]) is not int or state[1] not in ("<", ">", "|", "="):
            raise PickleRefused(f"malformed state of numpy dtype {self.typestr!r}")
        rest = state[2:]
        # subarray, names, fields (and version 4's metadata) must be None; the sizes and flags are numbers
        if any(x is not None and type(x) is not int for x in rest):
            raise PickleRefused(f"numpy dtype {self.typestr!r} with fields or a sub-array (structured dtypes are not admitted)")
        dtype = np.dtype(self.typestr).newbyteorder(state[1]) if state[1] in "<>" else np.dtype(self.typestr)
        elsize = state[5] if len(state) > 5 else -1
        if elsize not in (-1, None, dtype.itemsize):
            raise PickleRefused(f"numpy dtype {self.typestr!r} with a state of {elsize} bytes per item")
        return dtype


class _PendingArray(Pending):
    """``numpy.core.multiarray._reconstruct(ndarray, ...)`` before its ``BUILD`` gives shape, dtype and bytes."""

    what = "array"

    def __init__(self, machine: _FeatureUnpickler) -> None:
        self.machine = machine

    def build(self, state: Any) -> np.ndarray:
        if type(state) is not tuple or len(state) not in (4, 5):
            raise PickleRefused("malformed numpy array state")
        shape, dtype, fortran, raw = state[-4:]
        if type(fortran) not in (bool, int):
            raise PickleRefused("malformed numpy array state (order)")
        return self.machine.array(raw, dtype, shape, "F" if fortran else "C")


class _FeatureUnpickler(PickleMachine):
    """The admitted globals (see the module) over the bounded machine."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data, encoding="latin1")
        self._globals = {
            "_reconstruct": Global("numpy _reconstruct", self._reconstruct),
            "scalar": Global("numpy scalar", self._scalar),
            "_frombuffer": Global("numpy _frombuffer", self._frombuffer),
            "ndarray": Global("numpy.ndarray", None),
            "dtype": Global("numpy.dtype", self._dtype),
            "OrderedDict": Global("OrderedDict", self._ordered_dict),
            "set": Global("set", lambda args: self._set(set, args)),
            "frozenset": Global("frozenset", lambda args: self._set(frozenset, args)),
            "encode": Global("_codecs.encode", self._latin1_encode),
            "bytes": Global("bytes", self._empty_bytes),
        }

    def find_class(self, module: str, name: str) -> Global:
        qualified = f"{module}.{name}"
        if qualified not in ALLOWED_GLOBALS:
            shown = qualified.encode("unicode_escape").decode("ascii")[:120]  # a hostile name stays one line
            raise _Refused(f"refuses to load '{shown}': {_REFUSAL}")
        return self._globals[name]

    # numpy
    def array(self, raw: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
        """An array made here from its bytes, once they are exactly ``prod(shape) * itemsize``."""
        if not isinstance(dtype, np.dtype):
            raise PickleRefused("malformed numpy array state (dtype)")
        n = _element_count(shape)
        if type(raw) is str:
            try:
                raw = raw.encode("latin1")  # Python 2 pickles carry the bytes as text
            except UnicodeEncodeError:
                raise PickleRefused("malformed numpy array data") from None
        if type(raw) not in (bytes, bytearray):
            raise PickleRefused("numpy array data must be bytes (arrays of Python objects are not admitted)")
        if n * dtype.itemsize > self.budget:
            raise _TooLargeArray(shape, n * dtype.itemsize)
        if n * dtype.itemsize != len(raw):
            raise PickleRefused(f"a numpy array of shape {shape} and dtype {dtype} needs {n * dtype.itemsize:,} bytes but carries {len(raw):,}")
        self.charge(112 + len(raw))
        flat = np.frombuffer(raw, dtype=dtype, count=n) if n else np.empty(0, dtype)
        return flat.reshape(shape, order="F" if order == "F" else "C").copy(order="K")

    def _reconstruct(self, args: tuple[Any, ...]) -> _PendingArray:
        if len(args) != 3 or args[0] is not self._globals["ndarray"]:
            raise PickleRefused("numpy _reconstruct may only build numpy.ndarray")
        n = _element_count(args[1])
        if n > self.budget:
            raise _TooLargeArray(args[1], n)
        self.charge(112)
        return _PendingArray(self)

    def _dtype(self, args: tuple[Any, ...]) -> _PendingDtype:
        if not 1 <= len(args) <= 3 or type(args[0]) is not str or any(type(a) not in (bool, int) for a in args[1:]):
            raise PickleRefused("malformed numpy dtype")
        if not _TYPESTR.fullmatch(args[0]):
            shown = args[0].encode("unicode_escape").decode("ascii")[:40]
            raise _Refused(f"refuses numpy dtype '{shown}': only arrays of numbers or text are admitted (no objects, records or dates)")
        return _PendingDtype(args[0])

    def _scalar(self, args: tuple[Any, ...]) -> np.generic:
        if len(args) != 2:
            raise PickleRefused("malformed numpy scalar")
        value: Any = self.array(args[1], args[0], (), "C")[()]  # indexing a 0-d array gives its scalar
        return value

    def _frombuffer(self, args: tuple[Any, ...]) -> np.ndarray:
        if len(args) not in (4, 5) or args[3] not in ("C", "F", "K"):
            raise PickleRefused("malformed protocol-5 numpy array")
        buf, dtype, shape, order = args[:4]
        axes = args[4] if len(args) == 5 else None
        if order == "K" and axes is not None:
            if type(axes) is not tuple or type(shape) is not tuple or sorted(axes) != list(range(len(shape))):
                raise PickleRefused("malformed protocol-5 numpy array (axis order)")
            return self.array(buf, dtype, shape, "C").transpose(axes)
        return self.array(buf, dtype, shape, order)

    # containers and bytes
    def _ordered_dict(self, args: tuple[Any, ...]) -> OrderedDict[Any, Any]:
        if args and (len(args) != 1 or type(args[0]) not in (list, tuple)):
            raise PickleRefused("malformed OrderedDict")
        pairs = args[0] if args else []
        if any(type(p) not in (list, tuple) or len(p) != 2 for p in pairs):
            raise PickleRefused("malformed OrderedDict")
        self.charge(72 + 56 * len(pairs))
        return OrderedDict((self.key(k), v) for k, v in pairs)

    def _set(self, kind: type, args: tuple[Any, ...]) -> Any:
        if args and (len(args) != 1 or type(args[0]) not in (list, tuple, set, frozenset)):
            raise PickleRefused(f"malformed {kind.__name__}")
        items = args[0] if args else ()
        self.charge(72 + 56 * len(items))
        return kind(self.key(x) for x in items)

    @staticmethod
    def _empty_bytes(args: tuple[Any, ...]) -> bytes:
        if args:
            raise PickleRefused("bytes() is admitted only without arguments (how protocol 2 writes b'')")
        return b""

    def _latin1_encode(self, args: tuple[Any, ...]) -> bytes:
        if not 1 <= len(args) <= 2 or type(args[0]) is not str:
            raise PickleRefused("_codecs.encode is admitted only to decode latin-1 bytes")
        encoding = args[1] if len(args) == 2 else "utf-8"
        if type(encoding) is not str or encoding.replace("_", "-").lower() not in ("latin1", "latin-1", "iso-8859-1"):
            raise PickleRefused("_codecs.encode is admitted only to decode latin-1 bytes")
        self.charge(40 + len(args[0]))
        try:
            return args[0].encode("latin1")
        except UnicodeEncodeError:
            raise PickleRefused("_codecs.encode of text outside latin-1") from None


class _Refused(PickleRefused):
    """A refusal worded for the user as it is (after the file name)."""


def _element_count(shape: Any) -> int:
    if type(shape) is not tuple or len(shape) > 32 or any(type(d) is not int or d < 0 for d in shape):
        raise PickleRefused(f"malformed numpy array shape {_short(shape)}")
    return math.prod(shape)


def _short(value: Any) -> str:
    text = repr(value) if type(value) in (tuple, int, str) and len(str(value)) < 200 else f"of type {type(value).__name__}"
    return text


def safe_loads(data: bytes, name: str = "<bytes>") -> Any:
    """Unpickle ``data`` with the restricted unpickler; ``name`` is used in error messages.

    Arrays in the result are plain ``numpy.ndarray`` instances that own their data.
    """
    for magic, what in _OTHER_FORMATS:
        if data.startswith(magic):
            raise DataError(f"{name}: {what}")
    try:
        machine = _FeatureUnpickler(data)
        result = machine.run()
        budget = machine.budget
        del machine  # the memo: what the file held, no longer needed
        audit(result, budget)
        return result
    except EOFError:
        raise DataError(f"{name}: is empty or truncated (the pickle ends early)") from None
    except PersistentRefused:
        raise DataError(f"{name}: refuses to load a persistent reference: {_REFUSAL}") from None
    except (_Refused, TooDeep) as exc:
        raise DataError(f"{name}: {exc}") from None
    except TooLarge as exc:
        limit = f"{BUDGET_PER_BYTE}x the file's size plus {BUDGET_FLOOR >> 20} MiB"
        raise DataError(f"{name}: refuses to load: {_one_line(exc)} (the limit is {limit}: a corrupt or hostile pickle)") from None
    except PickleRefused as exc:
        raise DataError(f"{name}: is not a pickle or is corrupt ({_one_line(exc)})") from None
    except MemoryError:
        raise DataError(f"{name}: declares an object larger than memory (corrupt or hostile pickle)") from None
    except RecursionError:
        raise DataError(f"{name}: is nested too deeply to load") from None
    except Exception as exc:  # noqa: BLE001 - any other failure of a damaged file is a data error
        raise DataError(f"{name}: is not a pickle or is corrupt ({type(exc).__name__}: {_one_line(exc)})") from None


def safe_load(path: str | os.PathLike[str]) -> Any:
    """Read and unpickle the file at ``path`` with the restricted unpickler (Python 2 strings as latin-1)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return safe_loads(data, name=str(path))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__
