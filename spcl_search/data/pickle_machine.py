"""A bounded pickle opcode interpreter: what a hostile file can make it build is bounded by the file.

Python's unpickler trusts its input in ways a feature file must not be trusted: a 10-byte file can make
it allocate gigabytes (a memo index of ``2**27`` sizes its memo table), and what it builds may share
references so that a few hundred bytes describe a structure of ``2**40`` nodes once expanded. This
interpreter runs the opcodes of protocols 0-5 itself, so that:

* memory: every object it creates is charged (a rough CPython size) against a budget set from the file
  size; memo indices may not exceed what the file could number; no opcode allocates more than the bytes
  it reads;
* globals: only the :class:`Global` objects ``find_class`` hands out can be called (``REDUCE``); ``BUILD``
  only fills a :class:`Pending` object one of them made, never calls ``__setstate__`` on anything else;
  ``NEWOBJ``, ``INST``, ``OBJ``, extensions, persistent ids and out-of-band buffers are refused;
* hashing: dict keys and set members are bounded in size, so no key can cost unbounded time to hash;
* the result: :func:`audit` walks it once (iteratively, sharing-aware) and refuses cycles, nesting deeper
  than :data:`MAX_DEPTH`, a structure whose expanded size (every shared reference counted each time it
  is reached, as a JSON dump or a per-dialogue conversion would) exceeds the budget, and anything that
  is not plain data.

Errors are :class:`PickleRefused` (a one-line reason) or :class:`EOFError` (truncated); the caller
names the file.
"""

from __future__ import annotations

import codecs
import itertools
import struct
import sys
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = [
    "MAX_DEPTH",
    "MAX_KEY_COST",
    "Global",
    "Pending",
    "PersistentRefused",
    "PickleMachine",
    "PickleRefused",
    "TooDeep",
    "TooLarge",
    "audit",
    "budget_for",
]

#: deepest nesting of containers a feature file may have (its own layouts need 5)
MAX_DEPTH = 100
#: largest estimated size of one dict key or set member (a tuple of a few ids, a short string, a 64-bit int...)
MAX_KEY_COST = 1024
#: keys of one dict or set that may share a hash value: numbers, tuples and frozensets hash the same in every
#: process, so a file could fill a dict with colliding keys and make each insert probe all of them (hash
#: flooding); strings and bytes are hashed with the process's secret and cannot be aimed
MAX_SAME_HASH = 8
#: budget per byte of file: what the loaded objects may weigh, and their size with shared references expanded
BUDGET_PER_BYTE = 8
#: budget every file gets on top (small files, Python's per-object overheads)
BUDGET_FLOOR = 32 << 20

_UNPACK_I = struct.Struct("<i").unpack_from
_UNPACK_H = struct.Struct("<H").unpack_from
_UNPACK_UI = struct.Struct("<I").unpack_from
_UNPACK_Q = struct.Struct("<Q").unpack_from
_UNPACK_D = struct.Struct(">d").unpack_from

# rough CPython sizes (bytes) of what an opcode creates, including the 8-byte reference that holds it
_CONTAINER = 72
_LIST_ITEM = 8
_DICT_ITEM = 56
_SCALAR = 40
_MEMO_ENTRY = 112
_MARK = 40
_STR = 57


def budget_for(n_bytes: int) -> int:
    """The memory budget (estimated bytes) of a file of ``n_bytes``."""
    return BUDGET_PER_BYTE * n_bytes + BUDGET_FLOOR


class PickleRefused(Exception):
    """The pickle is malformed or does something a feature file may not do (one line)."""


class TooLarge(PickleRefused):
    """What the pickle builds, or would expand to, exceeds the budget set from the file size."""


class TooDeep(PickleRefused):
    """What the pickle builds is nested deeper than :data:`MAX_DEPTH`."""


class Global:
    """A callable a pickle may name (``GLOBAL``/``STACK_GLOBAL``) and call (``REDUCE``) with checked arguments."""

    def __init__(self, name: str, call: Callable[[tuple[Any, ...]], Any] | None) -> None:
        self.name = name
        self._call = call

    def __call__(self, args: tuple[Any, ...]) -> Any:
        if self._call is None:
            raise PickleRefused(f"{self.name} cannot be called in a feature file")
        return self._call(args)

    def __repr__(self) -> str:
        return self.name


class Pending:
    """An object a :class:`Global` made that ``BUILD`` completes: ``build(state)`` returns the finished object,
    which replaces this one on the stack and in the memo. One left unfinished in the result is refused."""

    what = "object"

    def build(self, state: Any) -> Any:
        raise NotImplementedError


def _bad(what: str) -> PickleRefused:
    return PickleRefused(what)


class PickleMachine:
    """Run the opcodes of one pickle (see the module); ``run()`` returns the top-level object.

    Subclasses admit globals by overriding :meth:`find_class`; their functions allocate through
    :meth:`charge` and check dict keys or set members with :meth:`key`.
    """

    def __init__(self, data: bytes, *, encoding: str = "latin1") -> None:
        self.data = data
        self.pos = 0
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: list[Any] = []  # memo indices as a pickler writes them: 0, 1, 2, ...
        self.memo_extra: dict[int, Any] = {}  # any others
        self.encoding = encoding
        self.budget = budget_for(len(data))
        self.used = 0
        self.max_memo = len(data)
        self._tuple_cost: dict[int, tuple[Any, int]] = {}
        self._pending_keys: dict[int, list[int]] = {}
        self._hashes: dict[int, tuple[Any, Counter[int]]] = {}  # container id -> (container, hash counts of aimable keys)
        self._ops = self._opcodes()

    # ------------------------------------------------------------------ driver

    def run(self) -> Any:
        data, ops, n = self.data, self._ops, len(self.data)
        budget = self.budget
        while True:
            pos = self.pos
            if pos >= n:
                raise EOFError
            op = data[pos]
            self.pos = pos + 1
            handler = ops.get(op)
            if handler is None:
                raise _bad(f"unknown opcode 0x{op:02x} at byte {pos}")
            if handler() is _STOP:
                return self.stack.pop()
            if self.used > budget:
                raise TooLarge(f"it builds more than {budget:,} bytes of objects")

    def find_class(self, module: str, name: str) -> Global:
        """The :class:`Global` a pickle may name as ``module.name``; subclasses admit some."""
        raise _bad(f"refuses the global {module}.{name}")

    def charge(self, n: int) -> None:
        """Count ``n`` more bytes against the budget (globals that allocate call it)."""
        self.used += n

    # ------------------------------------------------------------------ reading

    def _read(self, n: int) -> bytes:
        pos = self.pos
        end = pos + n
        if n < 0:
            raise _bad("negative length")
        if end > len(self.data):
            raise EOFError
        self.pos = end
        return self.data[pos:end]

    def _readline(self) -> bytes:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise EOFError
        line = self.data[self.pos : end]
        self.pos = end + 1
        return line

    # ------------------------------------------------------------------ the stack

    def _fence(self) -> int:
        return self.marks[-1] if self.marks else 0

    def _pop(self) -> Any:
        stack = self.stack
        if len(stack) <= (self.marks[-1] if self.marks else 0):
            raise _bad("stack underflow")
        return stack.pop()

    def _top(self) -> Any:
        if len(self.stack) <= self._fence():
            raise _bad("stack underflow")
        return self.stack[-1]

    def _pop_mark(self) -> list[Any]:
        if not self.marks:
            raise _bad("no MARK before a collection")
        at = self.marks.pop()
        n = len(self.stack) - at
        self._spend(_LIST_ITEM * n)  # the copy below (the stack's slots are freed)
        items = self.stack[at:]
        del self.stack[at:]
        self.used -= _LIST_ITEM * n + _MARK
        return items

    def _release(self, n: int) -> None:
        """Give back ``n`` charged for memory that is free again (copies, stack slots)."""
        self.used -= n

    def _spend(self, n: int) -> None:
        """Charge ``n`` before allocating it (for what one opcode may allocate in bulk)."""
        self.used += n
        if self.used > self.budget:
            raise TooLarge(f"it builds more than {self.budget:,} bytes of objects")

    def _push(self, obj: Any, cost: int) -> None:
        self.used += cost
        self.stack.append(obj)

    # ------------------------------------------------------------------ keys and the tuples that may become keys

    def hash_cost(self, obj: Any) -> int:
        """Estimated work to hash ``obj`` (a tuple's hash visits every item; nothing caches it)."""
        t = type(obj)
        if t is tuple or t is frozenset:
            known = self._tuple_cost.get(id(obj))
            if known is not None and known[0] is obj:
                return known[1]
            cost = _CONTAINER
            for x in obj:  # a flat tuple: its items are not tuples
                cost += _leaf_cost(x)
                if cost > MAX_KEY_COST:
                    break
            return cost
        return _leaf_cost(obj)

    def key(self, obj: Any) -> Any:
        """``obj`` as a dict key or set member, refused when it is not plain data or too large to hash cheaply."""
        t = type(obj)
        if not (t in _KEY_TYPES or isinstance(obj, np.dtype) or (isinstance(obj, np.generic) and not obj.dtype.hasobject)):
            raise _bad(f"a dict key or set member of type {t.__name__}")
        if self.hash_cost(obj) > MAX_KEY_COST:
            raise _bad("a dict key or set member too large to be an id")
        return obj

    def keys_into(self, container: Any, keys: list[Any]) -> list[Any]:
        """``keys`` checked as :meth:`key` does, and refused when more than MAX_SAME_HASH of the keys ``container``
        holds share a hash value (a hash flood)."""
        checked = [self.key(k) for k in keys]
        aimable = [k for k in checked if type(k) is not str and type(k) is not bytes]
        if aimable:
            _, counts = self._hashes.setdefault(id(container), (container, Counter()))
            for k in aimable:
                h = hash(k)
                counts[h] += 1
                if counts[h] > MAX_SAME_HASH:
                    raise _bad(f"more than {MAX_SAME_HASH} keys of one dict or set with the same hash (a hash flood)")
            self.used += _LIST_ITEM * len(aimable)
        return checked

    def _track(self, out: Any) -> None:
        """Remember the hash cost of a tuple or frozenset that holds tuples (keyed by id, holding the object so
        that the id stays its own), so that checking a key never walks more than MAX_KEY_COST."""
        cost = _CONTAINER
        for x in out:
            cost += self.hash_cost(x)
            if cost > MAX_KEY_COST:
                break
        self._tuple_cost[id(out)] = (out, cost)
        self.used += _MEMO_ENTRY

    def _new_tuple(self, items: list[Any] | tuple[Any, ...]) -> tuple[Any, ...]:
        self._spend(_CONTAINER + _LIST_ITEM * len(items))
        out = tuple(items)
        if any(type(x) is tuple or type(x) is frozenset for x in out):
            self._track(out)
        return out

    # ------------------------------------------------------------------ opcodes

    def _opcodes(self) -> dict[int, Callable[[], Any]]:
        o = self
        table: dict[bytes, Callable[[], Any]] = {
            b"(": o.op_mark,
            b".": o.op_stop,
            b"0": o.op_pop,
            b"1": o.op_pop_mark,
            b"2": o.op_dup,
            b"F": o.op_float,
            b"I": o.op_int,
            b"J": o.op_binint,
            b"K": o.op_binint1,
            b"L": o.op_long,
            b"M": o.op_binint2,
            b"N": o.op_none,
            b"P": o.op_persid,
            b"Q": o.op_persid,
            b"R": o.op_reduce,
            b"S": o.op_string,
            b"T": o.op_binstring,
            b"U": o.op_short_binstring,
            b"V": o.op_unicode,
            b"X": o.op_binunicode,
            b"a": o.op_append,
            b"b": o.op_build,
            b"c": o.op_global,
            b"d": o.op_dict,
            b"}": o.op_empty_dict,
            b"e": o.op_appends,
            b"g": o.op_get,
            b"h": o.op_binget,
            b"i": o.op_refused_class,
            b"j": o.op_long_binget,
            b"l": o.op_list,
            b"]": o.op_empty_list,
            b"o": o.op_refused_class,
            b"p": o.op_put,
            b"q": o.op_binput,
            b"r": o.op_long_binput,
            b"s": o.op_setitem,
            b"t": o.op_tuple,
            b")": o.op_empty_tuple,
            b"u": o.op_setitems,
            b"G": o.op_binfloat,
            b"\x80": o.op_proto,
            b"\x81": o.op_refused_class,
            b"\x82": o.op_ext,
            b"\x83": o.op_ext,
            b"\x84": o.op_ext,
            b"\x85": o.op_tuple1,
            b"\x86": o.op_tuple2,
            b"\x87": o.op_tuple3,
            b"\x88": o.op_true,
            b"\x89": o.op_false,
            b"\x8a": o.op_long1,
            b"\x8b": o.op_long4,
            b"B": o.op_binbytes,
            b"C": o.op_short_binbytes,
            b"\x8c": o.op_short_binunicode,
            b"\x8d": o.op_binunicode8,
            b"\x8e": o.op_binbytes8,
            b"\x8f": o.op_empty_set,
            b"\x90": o.op_additems,
            b"\x91": o.op_frozenset,
            b"\x92": o.op_refused_class,
            b"\x93": o.op_stack_global,
            b"\x94": o.op_memoize,
            b"\x95": o.op_frame,
            b"\x96": o.op_bytearray8,
            b"\x97": o.op_buffer,
            b"\x98": o.op_buffer,
        }
        return {key[0]: fn for key, fn in table.items()}

    def op_proto(self) -> None:
        proto = self._read(1)[0]
        if proto > 5:
            raise _bad(f"unsupported pickle protocol {proto}")

    def op_frame(self) -> None:
        (size,) = _UNPACK_Q(self._read(8))
        if size > len(self.data) - self.pos:
            raise EOFError

    def op_stop(self) -> object:
        self._top()
        return _STOP

    def op_mark(self) -> None:
        self.used += _MARK
        self.marks.append(len(self.stack))

    def op_pop(self) -> None:
        if len(self.stack) > self._fence():
            self.stack.pop()
        elif self.marks:
            self._pop_mark()
        else:
            raise _bad("stack underflow")

    def op_pop_mark(self) -> None:
        self._pop_mark()

    def op_dup(self) -> None:
        self._push(self._top(), 8)

    # numbers
    def op_none(self) -> None:
        self._push(None, 8)

    def op_true(self) -> None:
        self._push(True, 8)

    def op_false(self) -> None:
        self._push(False, 8)

    def op_int(self) -> None:
        line = self._readline()
        if line == b"00":
            value: Any = False
        elif line == b"01":
            value = True
        else:
            value = _parse_int(line)
        self._push(value, _SCALAR)

    def op_binint(self) -> None:
        self._push(_UNPACK_I(self._read(4))[0], _SCALAR)

    def op_binint1(self) -> None:
        self._push(self._read(1)[0], 8)

    def op_binint2(self) -> None:
        self._push(_UNPACK_H(self._read(2))[0], _SCALAR)

    def op_long(self) -> None:
        line = self._readline()
        if line.endswith(b"L"):
            line = line[:-1]
        self._push(_parse_int(line), _SCALAR + len(line) // 2)

    def op_long1(self) -> None:
        n = self._read(1)[0]
        self._push(int.from_bytes(self._read(n), "little", signed=True), _SCALAR + n)

    def op_long4(self) -> None:
        (n,) = _UNPACK_I(self._read(4))
        self._push(int.from_bytes(self._read(n), "little", signed=True), _SCALAR + n)

    def op_float(self) -> None:
        try:
            value = float(self._readline())
        except ValueError:
            raise _bad("malformed FLOAT") from None
        self._push(value, _SCALAR)

    def op_binfloat(self) -> None:
        self._push(_UNPACK_D(self._read(8))[0], _SCALAR)

    # strings and bytes
    def _push_text(self, raw: bytes) -> None:
        try:
            text = raw.decode(self.encoding)
        except UnicodeDecodeError:
            raise _bad(f"a string that is not {self.encoding}") from None
        self._push(text, _STR + len(text) * 4)

    def op_string(self) -> None:
        line = self._readline()
        if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
            line = line[1:-1]
        else:
            raise _bad("the STRING opcode argument must be quoted")
        try:
            raw = codecs.escape_decode(line)[0]
        except ValueError:
            raise _bad("malformed STRING escape") from None
        self._push_text(raw)

    def op_binstring(self) -> None:
        (n,) = _UNPACK_I(self._read(4))
        self._push_text(self._read(n))

    def op_short_binstring(self) -> None:
        self._push_text(self._read(self._read(1)[0]))

    def _push_unicode(self, raw: bytes, codec: str = "utf-8") -> None:
        try:
            text = str(raw, codec, "surrogatepass")
        except UnicodeDecodeError:
            raise _bad("a string that is not UTF-8") from None
        self._push(text, sys.getsizeof(text) + 8)

    def op_unicode(self) -> None:
        try:
            text = self._readline().decode("raw-unicode-escape")
        except UnicodeDecodeError:
            raise _bad("malformed UNICODE escape") from None
        self._push(text, sys.getsizeof(text) + 8)

    def op_binunicode(self) -> None:
        (n,) = _UNPACK_UI(self._read(4))
        self._push_unicode(self._read(n))

    def op_short_binunicode(self) -> None:
        self._push_unicode(self._read(self._read(1)[0]))

    def op_binunicode8(self) -> None:
        (n,) = _UNPACK_Q(self._read(8))
        self._push_unicode(self._read(n))

    def op_binbytes(self) -> None:
        (n,) = _UNPACK_UI(self._read(4))
        self._push(self._read(n), _SCALAR + n)

    def op_short_binbytes(self) -> None:
        n = self._read(1)[0]
        self._push(self._read(n), _SCALAR + n)

    def op_binbytes8(self) -> None:
        (n,) = _UNPACK_Q(self._read(8))
        self._push(self._read(n), _SCALAR + n)

    def op_bytearray8(self) -> None:
        (n,) = _UNPACK_Q(self._read(8))
        self._push(bytearray(self._read(n)), _SCALAR + 2 * n)

    # containers
    def op_empty_tuple(self) -> None:
        self._push((), 8)

    def op_tuple(self) -> None:
        items = self._pop_mark()
        out = self._new_tuple(items)
        self._release(_LIST_ITEM * len(items))
        self._push(out, 8)

    def op_tuple1(self) -> None:
        a = self._pop()
        self._push(self._new_tuple((a,)), 0)

    def op_tuple2(self) -> None:
        b = self._pop()
        a = self._pop()
        self._release(_LIST_ITEM)
        self._push(self._new_tuple((a, b)), 0)

    def op_tuple3(self) -> None:
        c = self._pop()
        b = self._pop()
        a = self._pop()
        self._release(2 * _LIST_ITEM)
        self._push(self._new_tuple((a, b, c)), 0)

    def op_empty_list(self) -> None:
        self._push([], _CONTAINER)

    def op_list(self) -> None:
        self._push(self._pop_mark(), _CONTAINER)  # the list is the copy _pop_mark charged

    def _target_list(self) -> list[Any]:
        target = self._top()
        if type(target) is not list:
            raise _bad(f"APPEND to a {type(target).__name__}")
        return target

    def op_append(self) -> None:
        item = self._pop()
        self._target_list().append(item)  # its stack slot becomes the list's

    def op_appends(self) -> None:
        items = self._pop_mark()
        target = self._target_list()
        self._spend(_LIST_ITEM * len(items))
        target.extend(items)
        self._release(_LIST_ITEM * len(items))  # the copy

    def op_empty_dict(self) -> None:
        self._push({}, _CONTAINER)

    def op_dict(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            raise _bad("DICT with an odd number of items")
        self._spend(_CONTAINER + _DICT_ITEM * (len(items) // 2))
        out: dict[Any, Any] = {}
        keys = self.keys_into(out, [items[i] for i in range(0, len(items), 2)])
        out.update(zip(keys, items[1::2]))
        self._release(_LIST_ITEM * len(items))
        self._push(out, 8)

    def _target_dict(self) -> dict[Any, Any]:
        target = self._top()
        if type(target) is not dict and type(target) is not OrderedDict:
            raise _bad(f"SETITEM on a {type(target).__name__}")
        return target

    def op_setitem(self) -> None:
        value = self._pop()
        key = self._pop()
        target = self._target_dict()
        (checked,) = self.keys_into(target, [key])
        target[checked] = value
        self.used += _DICT_ITEM - 2 * _LIST_ITEM  # two stack slots become one entry

    def op_setitems(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            raise _bad("SETITEMS with an odd number of items")
        target = self._target_dict()
        self._spend(_DICT_ITEM * (len(items) // 2))
        target.update(zip(self.keys_into(target, items[0::2]), items[1::2]))
        self._release(_LIST_ITEM * len(items))

    def op_empty_set(self) -> None:
        self._push(set(), _CONTAINER)

    def op_additems(self) -> None:
        items = self._pop_mark()
        target = self._top()
        if type(target) is not set:
            raise _bad(f"ADDITEMS on a {type(target).__name__}")
        self._spend(_DICT_ITEM * len(items))
        target.update(self.keys_into(target, items))
        self._release(_LIST_ITEM * len(items))

    def op_frozenset(self) -> None:
        items = self._pop_mark()
        self._spend(_CONTAINER + _DICT_ITEM * len(items))
        out = frozenset(self.keys_into(items, items))
        self._release(_LIST_ITEM * len(items))
        self._track(out)
        self._push(out, 8)

    # the memo
    def _memo_index(self, index: int) -> int:
        if not 0 <= index <= self.max_memo:
            raise TooLarge(f"memo index {index:,} is beyond what a {len(self.data):,}-byte file can number")
        return index

    def _put(self, index: int) -> None:
        obj = self._top()
        index = self._memo_index(index)
        memo = self.memo
        if index < len(memo):
            memo[index] = obj
        elif index == len(memo):
            memo.append(obj)
            self.used += _LIST_ITEM
        else:
            self.memo_extra[index] = obj
            self.used += _MEMO_ENTRY
        if isinstance(obj, Pending):
            self._pending_keys.setdefault(id(obj), []).append(index)

    def op_put(self) -> None:
        self._put(_parse_int(self._readline()))

    def op_binput(self) -> None:
        self._put(self._read(1)[0])

    def op_long_binput(self) -> None:
        self._put(_UNPACK_UI(self._read(4))[0])

    def op_memoize(self) -> None:
        self._put(len(self.memo) + len(self.memo_extra))

    def _memo_get(self, index: int) -> Any:
        if 0 <= index < len(self.memo):
            return self.memo[index]
        try:
            return self.memo_extra[index]
        except KeyError:
            raise _bad(f"memo index {index} was never stored") from None

    def _get(self, index: int) -> None:
        self._push(self._memo_get(index), 8)

    def op_get(self) -> None:
        self._get(_parse_int(self._readline()))

    def op_binget(self) -> None:
        self._get(self._read(1)[0])

    def op_long_binget(self) -> None:
        self._get(_UNPACK_UI(self._read(4))[0])

    # globals and calls
    def _global(self, module: str, name: str) -> None:
        self._push(self.find_class(module, name), 8)

    def op_global(self) -> None:
        try:
            module = self._readline().decode("utf-8")
            name = self._readline().decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("a GLOBAL name that is not text") from None
        self._global(module, name)

    def op_stack_global(self) -> None:
        name = self._pop()
        module = self._pop()
        if type(name) is not str or type(module) is not str:
            raise _bad("STACK_GLOBAL needs two strings")
        self._global(module, name)

    def op_reduce(self) -> None:
        args = self._pop()
        func = self._pop()
        if not isinstance(func, Global):
            raise _bad(f"REDUCE calls a {type(func).__name__}, not an admitted global")
        if type(args) is not tuple:
            raise _bad(f"REDUCE arguments must be a tuple, not a {type(args).__name__}")
        self._push(func(args), 8)

    def op_build(self) -> None:
        state = self._pop()
        obj = self._top()
        if not isinstance(obj, Pending):
            raise _bad(f"BUILD (set state) on a {type(obj).__name__}: only numpy arrays and dtypes are rebuilt")
        done = obj.build(state)
        self.stack[-1] = done
        for index in self._pending_keys.pop(id(obj), ()):
            if index < len(self.memo) and self.memo[index] is obj:
                self.memo[index] = done
            elif self.memo_extra.get(index) is obj:
                self.memo_extra[index] = done

    def op_refused_class(self) -> None:
        raise _bad("the pickle instantiates a class (INST/OBJ/NEWOBJ); feature files hold plain data")

    def op_ext(self) -> None:
        raise _bad("the pickle uses the copyreg extension registry")

    def op_persid(self) -> None:
        raise PersistentRefused

    def op_buffer(self) -> None:
        raise _bad("the pickle uses out-of-band buffers")


class PersistentRefused(PickleRefused):
    """A persistent id (``PERSID``/``BINPERSID``): a reference to something outside the file."""


_STOP = object()
_KEY_TYPES = frozenset({str, bytes, int, float, bool, type(None), tuple, frozenset})


def _leaf_cost(obj: Any) -> int:
    t = type(obj)
    if t is str:
        return _STR + len(obj)
    if t is bytes or t is bytearray:
        return _SCALAR + len(obj)
    if t is int:
        return _SCALAR + obj.bit_length() // 8
    return _SCALAR


def _parse_int(line: bytes) -> int:
    try:
        return int(line)
    except ValueError:
        raise _bad("malformed integer (or one with too many digits)") from None


# ------------------------------------------------------------------ the result


def _own_cost(obj: Any) -> int | None:
    """Estimated size of ``obj`` itself; None for a container (its items are walked)."""
    t = type(obj)
    if t is str:
        return _STR + len(obj)
    if t is bytes or t is bytearray:
        return _SCALAR + len(obj)
    if t is int:
        return 8 if -5 <= obj <= 256 else _SCALAR + obj.bit_length() // 8  # small ints are shared
    if t is float or t is bool or obj is None:
        return 8
    if t is np.ndarray:
        if obj.dtype.hasobject:
            raise _bad("a numpy array of Python objects")
        return 112 + obj.nbytes
    if isinstance(obj, np.generic):
        if obj.dtype.hasobject:
            raise _bad("a numpy scalar of a Python object")
        return _SCALAR + obj.nbytes
    if isinstance(obj, np.dtype):
        return 8
    if t in (dict, OrderedDict, list, tuple, set, frozenset):
        return None
    if isinstance(obj, Pending):
        raise _bad(f"a numpy {obj.what} whose state never came (a malformed numpy pickle)")
    if isinstance(obj, Global):
        raise _bad(f"a bare reference to {obj.name} where data was expected")
    raise _bad(f"an object of type {t.__name__}")


def _items(obj: Any) -> Iterator[Any]:
    if type(obj) is dict or type(obj) is OrderedDict:
        return itertools.chain(obj.keys(), obj.values())
    return iter(obj)


def audit(root: Any, budget: int) -> None:
    """Refuse cycles, nesting beyond :data:`MAX_DEPTH`, an expanded size over ``budget`` and anything but plain
    data in ``root``. Each container is walked once (shared ones too), depth first with one frame per level,
    while sizes add up as if each reference were a copy, which is what a JSON dump or a conversion per
    dialogue would make of them."""
    if _own_cost(root) is not None:
        return
    done: dict[int, int] = {}  # id of a finished container -> cost * _DEPTHS + depth
    on_path = {id(root)}
    frames: list[tuple[Any, Iterator[Any]]] = [(root, _items(root))]
    sizes: list[list[int]] = [[_CONTAINER + _LIST_ITEM * len(root), 0]]  # per frame: cost so far, deepest child
    while frames:
        obj, items = frames[-1]
        size = sizes[-1]
        for child in items:
            packed = done.get(id(child))
            if packed is not None:
                size[0] += packed // _DEPTHS
                size[1] = max(size[1], packed % _DEPTHS)
                continue
            own = _own_cost(child)
            if own is not None:
                size[0] += own
                continue
            if id(child) in on_path:
                raise _bad("the pickle holds a reference cycle")
            if len(frames) >= MAX_DEPTH:
                raise TooDeep(f"is nested more than {MAX_DEPTH} levels deep (a feature file needs a few)")
            on_path.add(id(child))
            frames.append((child, _items(child)))
            sizes.append([_CONTAINER + _LIST_ITEM * len(child), 0])
            break
        else:
            frames.pop()
            sizes.pop()
            on_path.discard(id(obj))
            cost, depth = size[0], size[1] + 1
            if cost > budget:
                raise TooLarge(f"its shared references expand to more than {budget:,} bytes")
            done[id(obj)] = cost * _DEPTHS + depth
            if sizes:
                sizes[-1][0] += cost
                sizes[-1][1] = max(sizes[-1][1], depth)


_DEPTHS = 1 << 8
