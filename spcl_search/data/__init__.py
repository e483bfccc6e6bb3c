"""The data layer: safe loading of ERC feature pickles, validation, caching, dev split and batching.

Start with :func:`load_dataset` (a path to either pickle layout, or ``"synthetic"``) and
:func:`~spcl_search.data.batching.iter_batches`.
"""

from __future__ import annotations

from typing import Any

from spcl_search.data.cache import default_cache_dir
from spcl_search.data.formats import IEMOCAP_CLASSES, MELD_CLASSES
from spcl_search.data.info import class_counts, describe
from spcl_search.data.load import SYNTHETIC, load_dataset, split_dev
from spcl_search.data.safe_pickle import safe_load, safe_loads
from spcl_search.data.synthetic import make_synthetic
from spcl_search.data.types import (
    MODALITY_ORDER,
    MODALITY_SUBSETS,
    Dialogue,
    ERCDataset,
    canonical_modalities,
)

__all__ = [
    "IEMOCAP_CLASSES",
    "MELD_CLASSES",
    "MODALITY_ORDER",
    "MODALITY_SUBSETS",
    "SYNTHETIC",
    "Batch",
    "Dialogue",
    "ERCDataset",
    "canonical_modalities",
    "class_counts",
    "collate",
    "default_cache_dir",
    "describe",
    "iter_batches",
    "load_dataset",
    "make_synthetic",
    "safe_load",
    "safe_loads",
    "split_dev",
]


def __getattr__(name: str) -> Any:
    """Import the batching helpers (and torch) only when asked for, to keep ``import spcl_search.data`` light."""
    if name in ("Batch", "collate", "iter_batches"):
        from spcl_search.data import batching

        return getattr(batching, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
