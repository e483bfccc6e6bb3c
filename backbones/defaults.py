"""Per-backbone, per-dataset defaults in one place.

Two tables: ``MODEL`` holds constructor arguments (hidden sizes, layers, windows, dropout) and
``TRAINING`` holds the training protocol (lr, weight decay, batch size, epochs). Values follow the
backbones' papers and the SPCL reference scripts unless a comment gives a measured reason.
"""

from __future__ import annotations

from typing import Any

#: backbone -> dataset ('default', 'iemocap', 'meld') -> constructor kwargs
MODEL: dict[str, dict[str, dict[str, Any]]] = {
    "late_fusion": {"default": {"hidden": 200, "dropout": 0.5}},
    "mmgcn": {"default": {"hidden": 200, "n_layers": 4, "alpha": 0.1, "lamda": 0.5, "dropout": 0.5}},
}

#: backbone -> dataset -> training protocol
TRAINING: dict[str, dict[str, dict[str, Any]]] = {
    "late_fusion": {"default": {"lr": 2e-4, "weight_decay": 1e-8, "batch_size": 16, "epochs": 50}},
    "mmgcn": {"default": {"lr": 2e-4, "weight_decay": 1e-8, "batch_size": 16, "epochs": 50}},
}


def _lookup(table: dict[str, dict[str, dict[str, Any]]], name: str, dataset: str | None) -> dict[str, Any]:
    per = table.get(name.lower().replace("-", "_"), {})
    out = dict(per.get("default", {}))
    if dataset:
        out.update(per.get(dataset.lower(), {}))
    return out


def model_defaults(name: str, dataset: str | None = None) -> dict[str, Any]:
    """Constructor kwargs for backbone ``name`` on ``dataset`` (``None``: the generic default)."""
    return _lookup(MODEL, name, dataset)


def training_defaults(name: str, dataset: str | None = None) -> dict[str, Any]:
    """Training protocol (lr, weight_decay, batch_size, epochs) for ``name`` on ``dataset``."""
    return _lookup(TRAINING, name, dataset)
