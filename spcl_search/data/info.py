"""Summaries of an :class:`ERCDataset` (counts per split and class, modalities), for ``data info`` and reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from spcl_search.data.types import MODALITY_NAMES, MODALITY_ORDER, Dialogue, ERCDataset

__all__ = ["class_counts", "describe"]

SPLITS = ("train", "dev", "test")


def class_counts(dialogues: Sequence[Dialogue], n_classes: int) -> np.ndarray:
    """Utterances per class, int64 ``[n_classes]``."""
    if not dialogues:
        return np.zeros(n_classes, dtype=np.int64)
    return np.bincount(np.concatenate([d.labels for d in dialogues]), minlength=n_classes)[:n_classes]


def describe(dataset: ERCDataset) -> dict[str, Any]:
    """A JSON-able summary: per split dialogues, utterances and class counts; per modality dim and provenance."""
    splits = {}
    for split in SPLITS:
        dialogues = dataset.split(split)
        splits[split] = {
            "dialogues": len(dialogues),
            "utterances": int(sum(len(d) for d in dialogues)),
            "classes": class_counts(dialogues, dataset.n_classes).tolist(),
        }
    all_dialogues = [d for split in SPLITS for d in dataset.split(split)]
    splits["total"] = {
        "dialogues": len(all_dialogues),
        "utterances": int(sum(len(d) for d in all_dialogues)),
        "classes": class_counts(all_dialogues, dataset.n_classes).tolist(),
    }
    surrogate = dataset.info.get("surrogate", "")
    provenance = dataset.info.get("provenance", {})
    modalities = {
        m: {
            "name": MODALITY_NAMES[m],
            "present": m in dataset.dims,
            "dim": dataset.dims.get(m),
            "surrogate": m in surrogate,
            "provenance": provenance.get(m, ""),
        }
        for m in MODALITY_ORDER
    }
    return {
        "name": dataset.name,
        "classes": list(dataset.classes),
        "n_speakers": dataset.n_speakers,
        "splits": splits,
        "modalities": modalities,
        "dev_split": {k: v for k, v in dataset.info.get("dev_split", {}).items() if k != "ids"},
        "source": dataset.info.get("source"),
        "sha256": dataset.info.get("sha256"),
        "format": dataset.info.get("format"),
        "cache": dataset.info.get("cache"),
        "load_seconds": dataset.info.get("load_seconds"),
        "extraction": _extraction(dataset.info.get("meta", {})),
    }


def _extraction(meta: Any) -> dict[str, Any] | None:
    """``meta['extraction']`` of a file written by ``spcl-search data extract`` (extractors, settings, skips), else None."""
    record = meta.get("extraction") if isinstance(meta, dict) else None
    return record if isinstance(record, dict) else None
