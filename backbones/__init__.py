"""Backbones for multimodal ERC behind one interface (:class:`backbones.base.Backbone`).

Each backbone comes in forms (``variant``), registered as classes keyed by (backbone, form)
(:mod:`backbones.registry`; the built-in ones in :mod:`backbones.cards`): ``"spcl"``, the SPCL code's (default),
and ``"original"``, its own paper's. ``lookup(name, form)`` gives the form class, which carries its defaults;
``build(name, modalities, ..., dataset, variant, **overrides)`` makes a backbone with them, overridden by
keyword arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backbones.registry import DEFAULT_FORM, Form, UnknownForm, forms, lookup, names

if TYPE_CHECKING:  # the package itself imports no torch: specs read the forms' protocols without it
    from backbones.base import Backbone

#: the default form (older name)
DEFAULT_VARIANT = DEFAULT_FORM


def __getattr__(name: str) -> Any:
    if name == "Backbone":
        from backbones.base import Backbone

        return Backbone
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build(
    name: str,
    modalities: str,
    input_dims: dict[str, int],
    n_classes: int,
    n_speakers: int,
    dataset: str | None = None,
    variant: str = DEFAULT_FORM,
    **overrides: Any,
) -> Backbone:
    """Build backbone ``name`` in form ``variant`` with the defaults for ``dataset`` ('iemocap', 'meld' or
    None), then ``overrides``."""
    return lookup(name, variant).build(modalities, input_dims, n_classes, n_speakers, dataset, **overrides)


__all__ = ["DEFAULT_FORM", "DEFAULT_VARIANT", "Backbone", "Form", "UnknownForm", "build", "forms", "lookup", "names"]
