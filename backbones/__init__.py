"""Backbones for multimodal ERC behind one interface (:class:`backbones.base.Backbone`).

Each backbone has two forms (``variant``): ``"spcl"``, the SPCL code's (default), and ``"original"``, its own
paper's. ``build(name, modalities, ..., dataset, variant, **overrides)`` makes a backbone with the per-form,
per-dataset defaults of :mod:`backbones.defaults`, overridden by keyword arguments.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from backbones.defaults import DEFAULT_VARIANT, VARIANTS, model_defaults

if TYPE_CHECKING:  # the package itself imports no torch: specs read backbones.defaults without it
    from backbones.base import Backbone

#: registry name -> "module:Class"
REGISTRY: dict[str, str] = {
    "late_fusion": "backbones.late_fusion:LateFusion",
    "mmgcn": "backbones.mmgcn:MMGCN",
    "dialoguegcn": "backbones.dialoguegcn:DialogueGCN",
    "mm_dfn": "backbones.mm_dfn:MMDFN",
    "biddin": "backbones.biddin:BiDDIN",
}


def names() -> list[str]:
    """Registered backbone names (a module that fails to import raises: no backbone goes missing silently)."""
    for target in REGISTRY.values():
        _resolve(target)
    return list(REGISTRY)


def __getattr__(name: str) -> Any:
    if name == "Backbone":
        from backbones.base import Backbone

        return Backbone
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _resolve(target: str) -> type[Backbone]:
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def get_class(name: str) -> type[Backbone]:
    """The backbone class registered as ``name`` (ValueError naming the choices otherwise)."""
    key = name.lower().replace("-", "_")
    if key not in REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(REGISTRY)}")
    return _resolve(REGISTRY[key])


def build(
    name: str,
    modalities: str,
    input_dims: dict[str, int],
    n_classes: int,
    n_speakers: int,
    dataset: str | None = None,
    variant: str = DEFAULT_VARIANT,
    **overrides: Any,
) -> Backbone:
    """Build backbone ``name`` in form ``variant`` with the defaults for ``dataset`` ('iemocap', 'meld' or
    None), then ``overrides``."""
    cls = get_class(name)
    kwargs = {**model_defaults(name, dataset, variant), **overrides}
    return cls(modalities=modalities, input_dims=input_dims, n_classes=n_classes, n_speakers=n_speakers, variant=variant, **kwargs)


__all__ = ["DEFAULT_VARIANT", "VARIANTS", "Backbone", "REGISTRY", "build", "get_class", "names"]
