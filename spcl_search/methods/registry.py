"""The registry of balance methods: each method describes itself, in one module, and registers itself.

A method is an options dataclass decorated with :func:`register`. The class carries

* ``name`` (``train --method NAME``), ``summary`` (one line: the help text and the README's table) and
  ``space`` (parameter -> ``(low, high, log)``: what a study of the method searches);
* one field per option, declared with :func:`option` (default, help, and the value's kind and range), checked
  by :func:`parse` before any worker starts; ``check()`` adds what concerns several options at once;
* ``build(modalities)``, which returns the :class:`~spcl_search.methods.base.BalanceMethod` the training loop
  calls.

The description needs no torch (``spcl-search --help`` and a study spec's check stay fast): a method module
imports torch inside the code that trains. :func:`methods` finds every method once: the modules of the
``spcl_search.methods`` package, the modules named in ``$SPCL_SEARCH_PLUGINS`` (comma-separated importable
names) and those of the ``spcl_search.methods`` entry-point group, so a lab adds a method without a fork.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from backbones.registry import PLUGINS_ENV, plugin_modules
from spcl_search.errors import ConfigError

if TYPE_CHECKING:
    from spcl_search.methods.base import BalanceMethod

#: the entry-point group of installed method plug-ins
ENTRY_POINT_GROUP = "spcl_search.methods"
#: the method a study or a run uses when none is named
DEFAULT_METHOD = "spcl"
#: a method option's value: a number, a switch, an epoch or no bound, a choice
OptionValue = float | bool | int | str | None
#: modules of this package that describe no method
_NOT_METHODS = ("base", "registry")

#: (low, high, log scale) of one searched parameter
Range = tuple[float, float, bool]


class MethodOptions(Protocol):
    """What :func:`register` requires of a method's options dataclass."""

    name: ClassVar[str]
    summary: ClassVar[str]
    space: ClassVar[Mapping[str, Range]]

    def check(self) -> None: ...

    def build(self, modalities: str) -> BalanceMethod: ...


def option(
    default: OptionValue,
    help: str,
    *,
    minimum: float | None = 0.0,
    above: bool = False,
    epoch: bool = False,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field declaring one method option: its ``default`` and ``help``; a number's ``minimum``
    (``above``: strictly), an ``epoch`` (a whole number >= 1, counted from 1; None: no bound) or ``choices``
    (strings). A switch is an option whose default is true or false."""
    meta = {"help": help, "minimum": minimum, "above": above, "epoch": epoch, "choices": choices}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Option:
    """One option of a method, as the help, the README and the checks read it."""

    name: str
    default: OptionValue
    help: str
    minimum: float | None
    above: bool
    epoch: bool
    choices: tuple[str, ...] | None

    def value(self, method: str, given: Any) -> OptionValue:
        """``given`` as this option takes it, or a one-line ConfigError naming the option."""
        where = f"--method {method}: option {self.name}"
        if self.choices is not None:
            if given not in self.choices:
                raise ConfigError(f"{where} must be one of {', '.join(self.choices)}, got {given!r}")
            return str(given)
        number = isinstance(given, (int, float)) and not isinstance(given, bool) and math.isfinite(given)
        if isinstance(self.default, bool):
            if not isinstance(given, bool):
                raise ConfigError(f"{where} must be true or false, got {given!r}")
            return given
        if self.epoch:
            if given is None:
                return None
            if not (number and float(given).is_integer() and given >= 1):
                raise ConfigError(f"{where} is an epoch, a whole number >= 1 (epochs count from 1), got {given!r}")
            return int(given)
        if not number:
            raise ConfigError(f"{where} must be a number, got {given!r}")
        if self.minimum is not None and (given <= self.minimum if self.above else given < self.minimum):
            raise ConfigError(f"{where} must be {'>' if self.above else '>='} {self.minimum:g}, got {given!r}")
        return float(given)


@dataclass(frozen=True)
class Method:
    """A registered method: its name, one-line summary, options, searched space and options dataclass."""

    name: str
    summary: str
    options: tuple[Option, ...]
    space: Mapping[str, Range]
    cls: type[MethodOptions]

    def defaults(self) -> dict[str, OptionValue]:
        return {o.name: o.default for o in self.options}


_REGISTRY: dict[str, Method] = {}
_discovered = False

T = TypeVar("T")


def register(cls: type[T]) -> type[T]:
    """Class decorator: register the options dataclass ``cls`` as the method ``cls.name`` (see the module)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__}: a method's options must be a dataclass (decorate it with @dataclass first)")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise TypeError(f"{cls.__name__}: a method needs a name (an identifier) as a class attribute")
    opts = tuple(
        Option(f.name, f.default, **{k: f.metadata[k] for k in ("help", "minimum", "above", "epoch", "choices")})  # type: ignore[arg-type]
        for f in dataclasses.fields(cls)
        if "help" in f.metadata
    )
    space = dict(getattr(cls, "space", {}))
    method = Method(name, str(getattr(cls, "summary", "")), opts, space, cls)  # type: ignore[arg-type]
    known = _REGISTRY.get(name)
    if known is not None and known.cls.__qualname__ != cls.__qualname__:
        raise TypeError(f"method {name!r} is registered twice ({known.cls.__module__} and {cls.__module__})")
    _REGISTRY[name] = method
    return cls


def _import_plugins() -> None:
    """Import every module that may register methods: this package's, ``$SPCL_SEARCH_PLUGINS``', the entry points'."""
    package = __name__.rpartition(".")[0]  # this module's package, by name (importing it here would be a cycle)
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name not in _NOT_METHODS and not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
    for name in plugin_modules():
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"{PLUGINS_ENV}: cannot import {name!r} ({exc})") from None
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()


def methods() -> dict[str, Method]:
    """Every registered method by name: the default, ``none``, then the others by name (plug-ins imported on the
    first call)."""
    global _discovered
    if not _discovered:
        _discovered = True
        _import_plugins()
    ordered = sorted(_REGISTRY, key=lambda n: (n != DEFAULT_METHOD, n != "none", n))
    return {name: _REGISTRY[name] for name in ordered}


def names() -> tuple[str, ...]:
    """The registered methods' names, in :func:`methods`' order."""
    return tuple(methods())


def get(name: str) -> Method:
    """The method ``name``, else a one-line ConfigError naming the choices."""
    found = methods().get(name)
    if found is None:
        raise ConfigError(f"--method {name!r}: choose one of {', '.join(methods())}")
    return found


def check_method(name: str) -> str:
    """``name`` if it is a registered method, else ConfigError naming the choices."""
    return get(name).name


def parse(name: str, given: Mapping[str, Any] | None = None) -> MethodOptions:
    """The options of method ``name``: its defaults overridden by ``given``, each checked (unknown or ill-typed
    ones refused with a one-line ConfigError naming the option), then the method's own ``check()``."""
    method = get(name)
    given = dict(given or {})
    unknown = set(given) - {o.name for o in method.options}
    if unknown:
        allowed = ", ".join(o.name for o in method.options) or "none"
        raise ConfigError(f"--method {name}: unknown option(s) {', '.join(sorted(unknown))}; it takes {allowed}")
    values = {o.name: o.value(name, given.get(o.name, o.default)) for o in method.options}
    out = method.cls(**values)
    out.check()
    return out


def method_options(name: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:func:`parse`'s options as a dict (the form stored with runs and trials)."""
    options = parse(name, given)
    return {o.name: getattr(options, o.name) for o in get(name).options}


def build(name: str, given: Mapping[str, Any] | None, modalities: str) -> BalanceMethod:
    """The method ``name`` with options ``given`` (over its defaults), built to train ``modalities``."""
    return parse(name, given).build(modalities)


def space(name: str) -> dict[str, Range]:
    """What a study of method ``name`` searches: parameter -> ``(low, high, log)``."""
    return dict(get(name).space)


def searched_names() -> tuple[str, ...]:
    """Every method's searched parameter names (a spec may name only its own method's)."""
    return tuple(dict.fromkeys(p for m in methods().values() for p in m.space))


def needs_modalities(method: str, modalities: str) -> None:
    """ConfigError naming ``--method`` when ``modalities`` has fewer than two modalities (nothing to balance)."""
    if len(modalities) < 2:
        raise ConfigError(f"--method {method}: balancing needs at least two modalities, got {modalities!r}")


def help_line() -> str:
    """``--method``'s help: every method with its summary."""
    return "Balance method: " + "; ".join(f"{m.name} ({m.summary})" for m in methods().values()) + "."


def options_help() -> str:
    """``--method-option``'s help: every method's options."""
    parts = [f"{m.name} {', '.join(o.name for o in m.options)}" for m in methods().values() if m.options]
    return "A method option KEY=VALUE (repeatable): " + "; ".join(parts) + "."


def markdown_table() -> str:
    """The README's method table: one row per method, its summary, options (default) and searched space."""
    rows = ["| method | what it does | options (default) | a study searches |", "|---|---|---|---|"]
    for m in methods().values():
        opts = ", ".join(f"`{o.name}` ({shown(o.default)})" for o in m.options) or "-"
        searched = ", ".join(f"`{p}` {lo:g}-{hi:g}{' (log)' if log else ''}" for p, (lo, hi, log) in m.space.items()) or "-"
        rows.append(f"| `{m.name}` | {m.summary} | {opts} | {searched} |")
    return "\n".join(rows)


def shown(value: OptionValue) -> str:
    """An option's value as the help and the README show it (``none``, ``true``, ``0.4``)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


__all__ = [
    "DEFAULT_METHOD",
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "Method",
    "MethodOptions",
    "Option",
    "OptionValue",
    "build",
    "check_method",
    "get",
    "help_line",
    "markdown_table",
    "method_options",
    "methods",
    "names",
    "needs_modalities",
    "option",
    "options_help",
    "parse",
    "plugin_modules",
    "register",
    "searched_names",
    "shown",
    "space",
]
