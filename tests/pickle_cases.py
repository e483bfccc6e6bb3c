"""TEST-ONLY hostile feature pickles and a driver that loads them under a memory limit.

``hostile_cases()`` builds the attacks an adversarial review found (numpy reconstruction driven into
object pointers, shared-reference and memo bombs) inside otherwise valid feature files;
``mutations(seed, n)`` makes ``n`` opcode-level mutations of valid files (protocols 2, 4 and 5).
Run as a script (``python pickle_cases.py FOLDER LIMIT_MB TIMEOUT_S [FIRST]``) it loads every ``*.pkl`` of
FOLDER in name order with ``load_dataset`` (cache in FOLDER/cache) under ``RLIMIT_AS`` (what the process had at start plus
LIMIT_MB), one JSON line per case: ``{"start": name}`` before, then the outcome (``loaded``, ``error``
with the message, or ``traceback``), CPU seconds and the peak RSS so far. A case that runs past
TIMEOUT_S ends the process (faulthandler), as does a crash; the caller resumes after it.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import random
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

# ------------------------------------------------------------------ assembling opcodes


def ops(data: bytes) -> list[tuple[pickletools.OpcodeInfo, Any, bytes]]:
    """(opcode, argument, raw bytes) of every opcode of ``data``."""
    parsed = list(pickletools.genops(data))
    out = []
    for i, (op, arg, pos) in enumerate(parsed):
        end = parsed[i + 1][2] if i + 1 < len(parsed) else len(data)
        out.append((op, arg, data[pos:end]))
    return out


def encode(op: pickletools.OpcodeInfo, arg: Any) -> bytes:
    """The bytes of ``op`` with argument ``arg`` (the argument kinds genops gives back)."""
    code = op.code.encode("latin1")
    kind = op.arg.name if op.arg is not None else None
    if kind is None:
        return code
    if kind == "uint1":
        return code + bytes([arg & 0xFF])
    if kind == "uint2":
        return code + struct.pack("<H", arg & 0xFFFF)
    if kind == "int4":
        return code + struct.pack("<i", max(-(2**31), min(2**31 - 1, arg)))
    if kind == "uint4":
        return code + struct.pack("<I", arg & 0xFFFFFFFF)
    if kind == "uint8":
        return code + struct.pack("<Q", arg & 0xFFFFFFFFFFFFFFFF)
    if kind in ("long1", "long4"):
        body = pickle.encode_long(arg)
        return code + (bytes([len(body) & 0xFF]) if kind == "long1" else struct.pack("<i", len(body))) + body
    if kind in ("string1", "string4"):
        body = arg.encode("latin1") if isinstance(arg, str) else bytes(arg)
        return code + (bytes([len(body) & 0xFF]) if kind == "string1" else struct.pack("<i", len(body))) + body
    if kind in ("bytes1", "bytes4", "bytes8", "bytearray8"):
        body = bytes(arg)
        size = {"bytes1": lambda n: bytes([n & 0xFF]), "bytes4": lambda n: struct.pack("<I", n), "bytes8": lambda n: struct.pack("<Q", n)}
        return code + size.get(kind, size["bytes8"])(len(body)) + body
    if kind in ("unicodestring1", "unicodestring4", "unicodestring8"):
        body = arg.encode("utf-8", "surrogatepass")
        size = {"unicodestring1": bytes([len(body) & 0xFF]), "unicodestring4": struct.pack("<I", len(body))}
        return code + size.get(kind, struct.pack("<Q", len(body))) + body
    if kind == "stringnl_noescape_pair":
        module, _, name = arg.partition(" ")
        return code + f"{module}\n{name}\n".encode()
    if kind in ("decimalnl_short", "decimalnl_long", "floatnl"):
        text = {True: "01", False: "00"}.get(arg, str(arg)) if kind == "decimalnl_short" else str(arg)
        return code + text.encode() + (b"L" if kind == "decimalnl_long" else b"") + b"\n"
    if kind == "float8":
        return code + struct.pack(">d", arg)
    if kind == "unicodestringnl":
        return code + arg.encode("raw-unicode-escape") + b"\n"
    if kind == "stringnl":
        return code + repr(arg.encode("latin1") if isinstance(arg, str) else arg)[1:].encode() + b"\n"
    raise ValueError(kind)


OP = {op.name: op for op in pickletools.opcodes}


def asm(*items: Any) -> bytes:
    """Opcodes given as names, ``(name, arg)`` pairs or raw bytes, assembled."""
    out = io.BytesIO()
    for item in items:
        if isinstance(item, bytes):
            out.write(item)
        elif isinstance(item, str):
            out.write(encode(OP[item], None))
        else:
            out.write(encode(OP[item[0]], item[1]))
    return out.getvalue()


# ------------------------------------------------------------------ valid files


def valid_feature_dict() -> dict[str, Any]:
    """A small SPCL dict feature file (arrays, lists, strings, a meta dict)."""
    from spcl_search.data import make_synthetic

    data = make_synthetic(n_dialogues=6, min_len=2, max_len=4)
    for key, dim in (("text", 6), ("audio", 4), ("visual", 3)):
        data[key] = {vid: [np.asarray(u[:dim], dtype=np.float32) for u in rows] for vid, rows in data[key].items()}
    data["meta"] = {"name": "fuzz", "modalities": {"text": "synthetic"}, "note": [1, 2.5, "x"]}
    return data


def valid_files() -> list[bytes]:
    """The same feature file at protocols 2, 4 and 5 (each writes numpy arrays differently)."""
    data = valid_feature_dict()
    return [pickle.dumps(data, protocol=p) for p in (2, 4, 5)]


def _splice_meta(base: dict[str, Any], protocol: int, replacement: bytes) -> bytes:
    """``base`` pickled with ``meta`` = the opcodes ``replacement`` (which must leave one object)."""
    data = dict(base, meta="@@META@@")
    raw = pickle.dumps(data, protocol=protocol)
    marker = encode(OP["BINUNICODE"] if protocol < 4 else OP["SHORT_BINUNICODE"], "@@META@@")
    assert raw.count(marker) == 1
    return raw.replace(marker, replacement)


def _max_memo(data: bytes) -> int:
    return sum(1 for op, _, _ in ops(data) if "PUT" in op.name or op.name == "MEMOIZE") + 1


# ------------------------------------------------------------------ the attacks found by review


def _dtype(typestr: str, flags: int = 0) -> bytes:
    return asm(("GLOBAL", "numpy dtype"), ("BINUNICODE", typestr), "NEWFALSE", "NEWTRUE", "TUPLE3", "REDUCE",
               "MARK", ("BININT1", 3), ("BINUNICODE", "|"), "NONE", "NONE", "NONE", ("BININT", -1), ("BININT", -1),
               ("BININT", flags), "TUPLE", "BUILD")  # fmt: skip


def _object_array_via_build() -> bytes:
    """dtype('O8') whose BUILD sets flags 0 (numpy forgets it holds objects): bytes read as pointers."""
    return asm(("GLOBAL", "numpy.core.multiarray _reconstruct"), ("GLOBAL", "numpy ndarray"), ("BININT1", 0), "TUPLE1",
               ("SHORT_BINBYTES", b"b"), "TUPLE3", "REDUCE",
               "MARK", ("BININT1", 1), ("BININT1", 2), ("BININT1", 8), "TUPLE2", _dtype("O8", 0), "NEWFALSE",
               ("SHORT_BINBYTES", b"\x41" * 128), "TUPLE", "BUILD")  # fmt: skip


def _object_array_via_frombuffer() -> bytes:
    return asm(("GLOBAL", "numpy.core.numeric _frombuffer"), "MARK", ("SHORT_BINBYTES", b"\x41" * 16), _dtype("O8", 0),
               ("BININT1", 2), "TUPLE1", ("BINUNICODE", "C"), "TUPLE", "REDUCE")  # fmt: skip


def _object_scalar() -> bytes:
    return asm(("GLOBAL", "numpy.core.multiarray scalar"), _dtype("O8", 0), ("SHORT_BINBYTES", b"\x41" * 8), "TUPLE2", "REDUCE")


def _shared_lists(depth: int, first: int) -> bytes:
    """[[...], [...]] where each level is a 2-list of the level before, by memo reference: 2**depth leaves."""
    parts = [asm("EMPTY_LIST", ("BININT1", 0), "APPEND", ("LONG_BINPUT", first))]
    for i in range(1, depth + 1):
        get = ("LONG_BINGET", first + i - 1)
        parts.append(asm("POP", "EMPTY_LIST", "MARK", get, get, "APPENDS", ("LONG_BINPUT", first + i)))
    return b"".join(parts)


def _shared_tuple_key(depth: int, first: int) -> bytes:
    """{key: None} where each level of the tuple key is a 2-tuple of the level before: hashing it takes 2**depth steps."""
    parts = [asm("EMPTY_DICT", ("BININT1", 0), "TUPLE1", ("LONG_BINPUT", first))]
    for i in range(1, depth + 1):
        get = ("LONG_BINGET", first + i - 1)
        parts.append(asm("POP", get, get, "TUPLE2", ("LONG_BINPUT", first + i)))
    return b"".join(parts) + asm("NONE", "SETITEM")


def hostile_cases() -> dict[str, bytes]:
    """name -> bytes of every attack, each inside a valid feature file where it has one."""
    base = valid_feature_dict()
    raw2 = pickle.dumps(base, protocol=2)
    first = _max_memo(raw2) + 10
    cases = {}
    for name, payload in (
        ("object_dtype_build", _object_array_via_build()),
        ("object_dtype_frombuffer", _object_array_via_frombuffer()),
        ("object_dtype_scalar", _object_scalar()),
        ("structured_dtype", _dtype("V8")),
        ("datetime_dtype", _dtype("M8")),
    ):
        cases[name] = _splice_meta(base, 2, payload)
    # the object array as a dialogue's features rather than in meta
    feats = pickle.dumps(dict(base, text={**base["text"], next(iter(base["text"])): "@@X@@"}), protocol=2)
    cases["object_dtype_features"] = feats.replace(encode(OP["BINUNICODE"], "@@X@@"), _object_array_via_build())
    for depth in (24, 40):
        cases[f"shared_lists_{depth}"] = _splice_meta(base, 2, _shared_lists(depth, first))
    cases["shared_tuple_key_40"] = _splice_meta(base, 2, _shared_tuple_key(40, first))
    cases["memo_index_2_27"] = asm(("PROTO", 2), "NONE", ("LONG_BINPUT", 2**27), "STOP")
    cases["memo_index_in_file"] = _splice_meta(base, 2, asm("NONE", ("LONG_BINPUT", 2**31)))
    cases["deep_tuple_key"] = _splice_meta(base, 2, asm("EMPTY_DICT", ("BININT1", 0)) + b"\x85" * 100_000 + asm("NONE", "SETITEM"))
    cases["deep_lists"] = _splice_meta(base, 2, asm("EMPTY_LIST") + asm("EMPTY_LIST") * 50_000 + asm("APPEND") * 50_000)
    cases["many_marks"] = asm(("PROTO", 2)) + b"(" * 200_000 + asm("NONE", "STOP")
    cases["memoize_flood"] = asm(("PROTO", 4), "NONE") + b"\x94" * 200_000 + asm("STOP")
    cases["huge_int_key"] = _splice_meta(base, 2, asm("EMPTY_DICT", ("LONG4", 1 << 80_000), ("LONG_BINPUT", first), "POP") + asm(("LONG_BINGET", first), "NONE", "SETITEM") * 2000)
    cases["huge_declared_bytes"] = asm(("PROTO", 4)) + b"\x8e" + struct.pack("<Q", 10**15) + b"abc."
    cases["newobj_ndarray"] = asm(("PROTO", 2), ("GLOBAL", "numpy ndarray"), ("LONG1", 10**12), "TUPLE1", "NEWOBJ", "STOP")
    cases["build_on_dict"] = _splice_meta(base, 2, asm("EMPTY_DICT", "EMPTY_DICT", ("BINUNICODE", "keys"), "NONE", "SETITEM", "BUILD"))
    cases["reference_cycle"] = _splice_meta(base, 2, asm("EMPTY_LIST", ("LONG_BINPUT", first), ("LONG_BINGET", first), "APPEND"))
    # integers k * (2**61 - 1) all hash to 0: a dict of them makes every insert probe every earlier key
    flood = b"".join(asm(("LONG1", k * (2**61 - 1)), ("BININT1", 0)) for k in range(1, 50_001))
    cases["hash_flood_ints"] = _splice_meta(base, 2, asm("EMPTY_DICT", "MARK") + flood + asm("SETITEMS"))
    return cases


# ------------------------------------------------------------------ opcode-level mutations

_INSERTS = [
    "MARK", "POP", "POP_MARK", "DUP", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET",
    "APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "FROZENSET", "BUILD", "REDUCE", "STOP", "NONE", "MEMOIZE",
    "STACK_GLOBAL", "NEWOBJ", "EMPTY_TUPLE", "NEWTRUE",
]  # fmt: skip
_INT_VALUES = [0, 1, 2, 3, 7, 255, 256, 65535, 2**31 - 1, -1, -(2**31), 2**32 - 1, 2**40, 2**63, 10**12]
_STRINGS = ["O8", "V8", "f4,i4", "S999999999", "U0", "M8", "f8", "i8", "<", ">", "|", "C", "F", "K", "latin1", "utf-8",
            "numpy.core.multiarray", "_reconstruct", "scalar", "dtype", "ndarray", "builtins", "set", "eval", "os", "system",
            "collections", "OrderedDict", "numpy._core.numeric", "_frombuffer", "_codecs", "encode", ""]  # fmt: skip
_GLOBALS = ["numpy.core.multiarray _reconstruct", "numpy.core.multiarray scalar", "numpy dtype", "numpy ndarray",
            "numpy.core.numeric _frombuffer", "collections OrderedDict", "__builtin__ set", "_codecs encode", "builtins eval"]  # fmt: skip
_SAME_KIND = [
    {"BINPUT", "BINGET"}, {"LONG_BINPUT", "LONG_BINGET"}, {"TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE"},
    {"APPENDS", "SETITEMS", "ADDITEMS", "TUPLE", "LIST", "DICT", "FROZENSET", "POP_MARK"}, {"APPEND", "SETITEM", "BUILD", "REDUCE", "POP"},
    {"EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "NONE", "NEWTRUE"}, {"SHORT_BINBYTES", "SHORT_BINSTRING"},
    {"BINBYTES", "BINSTRING"}, {"BININT1", "BINPUT", "BINGET"},
]  # fmt: skip


def _mutate_arg(rng: random.Random, op: pickletools.OpcodeInfo, arg: Any) -> bytes | None:
    kind = op.arg.name if op.arg is not None else None
    if kind in ("uint1", "uint2", "int4", "uint4", "uint8", "long1", "long4", "decimalnl_short", "decimalnl_long"):
        value = rng.choice(_INT_VALUES) if rng.random() < 0.7 else (arg or 0) + rng.choice([-2, -1, 1, 2, 100])
        if isinstance(arg, bool) or kind.startswith("uint"):
            value = abs(value)
        return encode(op, value)
    if kind in ("unicodestring1", "unicodestring4", "unicodestring8", "string1", "string4", "stringnl", "unicodestringnl"):
        if rng.random() < 0.5:
            return encode(op, rng.choice(_STRINGS))
        text = str(arg)
        return encode(op, text[: rng.randrange(len(text) + 1)] if rng.random() < 0.5 else text * rng.randint(2, 4))
    if kind in ("bytes1", "bytes4", "bytes8", "bytearray8"):
        body = bytes(arg)
        choice = rng.random()
        if choice < 0.4:
            return encode(op, body[: rng.randrange(len(body) + 1)])
        if choice < 0.7:
            return encode(op, body + bytes(rng.randrange(1, 17)))
        raw = bytearray(encode(op, body))  # keep the body, lie about its length
        size = {"bytes1": 1, "bytes4": 4}.get(kind, 8)
        raw[1 : 1 + size] = rng.choice([0, len(body) + 1, 2**size * 8 - 1]).to_bytes(size, "little", signed=False) if size < 8 else struct.pack("<Q", rng.choice([0, len(body) + 1, 2**63]))
        return bytes(raw)
    if kind == "stringnl_noescape_pair":
        return encode(op, rng.choice(_GLOBALS))
    if kind == "float8":
        return encode(op, rng.choice([float("nan"), float("inf"), -0.0, 1e308]))
    return None


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to three opcode-level changes of ``data``."""
    items = [raw for _, _, raw in ops(data)]
    parsed = [(op, arg) for op, arg, _ in ops(data)]
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(1, len(items))  # keep PROTO
        how = rng.randrange(8)
        if how == 0:
            del items[i]
            del parsed[i]
        elif how == 1:
            items.insert(i, items[i])
            parsed.insert(i, parsed[i])
        elif how == 2:
            j = rng.randrange(1, len(items))
            items[i], items[j] = items[j], items[i]
            parsed[i], parsed[j] = parsed[j], parsed[i]
        elif how == 3:
            name = rng.choice(_INSERTS)
            items.insert(i, encode(OP[name], None))
            parsed.insert(i, (OP[name], None))
        elif how == 4 or how == 5:
            candidates = [k for k in range(1, len(items)) if parsed[k][0].arg is not None]
            k = rng.choice(candidates)
            new = _mutate_arg(rng, *parsed[k])
            if new is not None:
                items[k] = new
        elif how == 6:
            op = parsed[i][0]
            group = next((g for g in _SAME_KIND if op.name in g), None)
            if group:
                other = OP[rng.choice(sorted(group - {op.name}) or [op.name])]
                if (other.arg is None) == (op.arg is None):
                    items[i] = other.code.encode("latin1") + items[i][len(op.code) :]
        else:  # repeat a run of opcodes somewhere else
            j = rng.randrange(i, min(len(items), i + 40))
            times = rng.randint(1, 50)
            k = rng.randrange(1, len(items))
            items[k:k], parsed[k:k] = items[i : j + 1] * times, parsed[i : j + 1] * times
    return b"".join(items)


def mutations(seed: int, n: int) -> Iterator[tuple[str, bytes]]:
    """``n`` mutated files, spread over the valid files of every protocol."""
    rng = random.Random(seed)
    bases = valid_files()
    for k in range(n):
        yield f"mutation_{k:03d}", mutate(rng, bases[k % len(bases)])


# ------------------------------------------------------------------ the driver


def _drive(folder: str, limit_mb: int, timeout: float, first: int) -> None:
    import faulthandler
    import json
    import resource
    import sys
    import time
    import traceback
    from pathlib import Path

    from spcl_search.data import load_dataset
    from spcl_search.errors import SpclSearchError

    size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + (limit_mb << 20), resource.getrlimit(resource.RLIMIT_AS)[1]))
    paths = sorted(Path(folder).glob("*.pkl"))[first:]
    print(json.dumps({"ready": True, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
    for path in paths:
        print(json.dumps({"start": path.stem}), flush=True)
        faulthandler.dump_traceback_later(timeout, exit=True)
        cpu = time.process_time()
        record: dict[str, Any] = {"case": path.stem}
        try:
            load_dataset(path, cache_dir=Path(folder) / "cache")  # the cache write too (meta as JSON)
            record["outcome"] = "loaded"
        except SpclSearchError as exc:
            record.update(outcome="error", message=str(exc))
        except BaseException:  # noqa: BLE001 - what the test counts as a failure
            record.update(outcome="traceback", message=traceback.format_exc())
        faulthandler.cancel_dump_traceback_later()
        record["cpu"] = time.process_time() - cpu
        record["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(record), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    import sys

    _drive(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0)
