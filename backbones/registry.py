"""Backbone forms as registered classes, keyed by (backbone, form), each carrying its own defaults.

A :class:`Form` subclass names its backbone and form (``"mmgcn"``, ``"spcl"``), the model class that builds
it, its constructor defaults and training protocol per dataset (``'default'``, and ``'iemocap'`` or ``'meld'``
laid over it), whether its protocol uses the fused Adam, and the run options it accepts (e.g.
``reference_arithmetic``, only the SPCL code's forms have it). Defining the subclass registers it, as timm's
models carry their configs. A backbone's shared card (``backbone`` set, ``form`` not) registers nothing; its
forms subclass it.

Forms are found by importing every module of :mod:`backbones.cards`, the modules named in the environment
variable ``SPCL_SEARCH_PLUGINS`` (comma-separated) and the entry points of group ``spcl_search.backbones``.
A form is checked once, by :func:`lookup`. This module and the built-in cards import no torch: a study's
schema reads its protocol before any worker starts; the model class is imported when a form is built.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from backbones.base import Backbone

#: the form every command trains unless told otherwise (the SPCL code's)
DEFAULT_FORM = "spcl"
#: environment variable naming extra modules to import (methods and backbone forms register themselves there)
PLUGINS_ENV = "SPCL_SEARCH_PLUGINS"
#: entry-point group of installed packages that add backbone forms
ENTRY_POINTS = "spcl_search.backbones"
#: the SPCL paper's training protocol (Adam 2e-4, batch 16, 50 epochs), which the original forms are trained with
SPCL_PROTOCOL: Mapping[str, Any] = {"lr": 2e-4, "weight_decay": 1e-8, "batch_size": 16, "epochs": 50, "patience": None}

_FORMS: dict[tuple[str, str], type[Form]] = {}
_discovered = False


class UnknownForm(ValueError):
    """An unknown backbone or form: ``field`` says which (``"backbone"`` or ``"variant"``), ``choices`` the known ones."""

    def __init__(self, field: str, value: str, choices: list[str]) -> None:
        self.field, self.value, self.choices = field, value, choices
        super().__init__(f"unknown {field} {value!r}; choose one of {', '.join(choices)}")


class Form:
    """One backbone in one form: what builds it and the defaults it carries (subclass it to register one)."""

    #: registry name of the backbone, e.g. ``"mmgcn"``
    backbone: ClassVar[str] = ""
    #: the form's name, e.g. ``"spcl"`` or ``"original"``
    form: ClassVar[str] = ""
    #: the :class:`~backbones.base.Backbone` subclass, or ``"module:Class"`` (imported when first built)
    model: ClassVar[str | type[Backbone]] = ""
    #: dataset ('default', 'iemocap', 'meld') -> constructor kwargs; a dataset's entry is laid over 'default'
    defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: dataset -> training protocol (lr, weight_decay, batch_size, epochs, patience), laid over 'default' likewise
    protocol: ClassVar[Mapping[str, Mapping[str, Any]]] = {"default": SPCL_PROTOCOL}
    #: the protocol's Adam is the fused one (the SPCL code's forms)
    fused_optimizer: ClassVar[bool] = False
    #: run options the form accepts besides its defaults (e.g. ``reference_arithmetic``)
    accepts: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.backbone and cls.form and "form" in vars(cls):
            register(cls)

    @classmethod
    def model_defaults(cls, dataset: str | None = None) -> dict[str, Any]:
        """Constructor kwargs on ``dataset`` (``None``: the generic default)."""
        return _laid_over(cls.defaults, dataset)

    @classmethod
    def training_defaults(cls, dataset: str | None = None) -> dict[str, Any]:
        """Training protocol (lr, weight_decay, batch_size, epochs, patience) on ``dataset``."""
        return _laid_over(cls.protocol, dataset)

    @classmethod
    def model_class(cls) -> type[Backbone]:
        """The model class (imports it, and torch, when named as ``"module:Class"``)."""
        if isinstance(cls.model, str):
            module, _, name = cls.model.partition(":")
            return getattr(importlib.import_module(module), name)
        return cls.model

    @classmethod
    def build(
        cls, modalities: str, input_dims: dict[str, int], n_classes: int, n_speakers: int, dataset: str | None = None, **overrides: Any
    ) -> Backbone:
        """The backbone with this form's defaults for ``dataset`` ('iemocap', 'meld' or None), then ``overrides``."""
        kwargs = {**cls.model_defaults(dataset), **overrides}
        return cls.model_class()(
            modalities=modalities, input_dims=input_dims, n_classes=n_classes, n_speakers=n_speakers, variant=cls.form, **kwargs
        )


def _laid_over(table: Mapping[str, Mapping[str, Any]], dataset: str | None) -> dict[str, Any]:
    out = dict(table.get("default", {}))
    if dataset:
        out.update(table.get(dataset.lower(), {}))
    return out


def register(form: type[Form]) -> type[Form]:
    """Add ``form`` under (its backbone, its form); a second class under the same key is refused."""
    key = (form.backbone, form.form)
    held = _FORMS.get(key)
    if held is not None and (held.__module__, held.__qualname__) != (form.__module__, form.__qualname__):
        raise ValueError(f"backbone {key[0]!r} form {key[1]!r} is registered twice: {held.__module__} and {form.__module__}")
    _FORMS[key] = form
    return form


def _key(name: str) -> str:
    return name.lower().replace("-", "_")


def discover() -> None:
    """Import the built-in cards, the modules of ``SPCL_SEARCH_PLUGINS`` and the entry points (once)."""
    global _discovered
    if _discovered:
        return
    _discovered = True  # a module being imported may look forms up already
    try:
        _import_all()
    except BaseException:
        _discovered = False  # the next lookup fails the same way, rather than seeing half the forms
        raise


def _import_all() -> None:
    import backbones.cards as builtin

    for info in pkgutil.iter_modules(builtin.__path__):
        importlib.import_module(f"{builtin.__name__}.{info.name}")
    for name in plugin_modules():
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"{PLUGINS_ENV}: cannot import {name!r} ({exc})") from None
    for entry in importlib.metadata.entry_points(group=ENTRY_POINTS):
        entry.load()


def plugin_modules() -> list[str]:
    """The module names in ``$SPCL_SEARCH_PLUGINS`` (comma-separated, blanks ignored): plug-ins of forms and methods."""
    return [name.strip() for name in os.environ.get(PLUGINS_ENV, "").split(",") if name.strip()]


def names() -> list[str]:
    """Registered backbone names, in the order registered."""
    discover()
    return list(dict.fromkeys(name for name, _ in _FORMS))


def forms(name: str | None = None) -> list[str]:
    """The forms of backbone ``name`` (every backbone's when None), the default first."""
    discover()
    found = dict.fromkeys(f for b, f in _FORMS if name is None or b == _key(name))
    return sorted(found, key=lambda f: f != DEFAULT_FORM)


def lookup(name: str, form: str = DEFAULT_FORM) -> type[Form]:
    """The form class of backbone ``name`` in form ``form``; :class:`UnknownForm` naming the choices otherwise (and
    ValueError naming a plugin module that cannot be imported)."""
    discover()
    key = _key(name)
    if key not in names():
        raise UnknownForm("backbone", name, names())
    if (key, form) not in _FORMS:
        raise UnknownForm("variant", form, forms(key))
    return _FORMS[(key, form)]


__all__ = [
    "DEFAULT_FORM",
    "ENTRY_POINTS",
    "PLUGINS_ENV",
    "plugin_modules",
    "SPCL_PROTOCOL",
    "Form",
    "UnknownForm",
    "discover",
    "forms",
    "lookup",
    "names",
    "register",
]
