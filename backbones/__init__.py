"""Backbones for multimodal ERC behind one interface (:class:`backbones.base.Backbone`).

``build(name, modalities, dataset, **overrides)`` makes a backbone with the per-dataset defaults of
:mod:`backbones.defaults`, overridden by keyword arguments.
"""

from __future__ import annotations

import importlib
from typing import Any

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
    """Registered backbone names whose module can be imported."""
    out = []
    for name, target in REGISTRY.items():
        try:
            _resolve(target)
        except (ImportError, AttributeError):
            continue
        out.append(name)
    return out


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
    **overrides: Any,
) -> Backbone:
    """Build backbone ``name`` with the defaults for ``dataset`` ('iemocap', 'meld' or None), then ``overrides``."""
    from backbones.defaults import model_defaults

    cls = get_class(name)
    kwargs = {**model_defaults(name, dataset), **overrides}
    return cls(modalities=modalities, input_dims=input_dims, n_classes=n_classes, n_speakers=n_speakers, **kwargs)


__all__ = ["Backbone", "REGISTRY", "build", "get_class", "names"]
