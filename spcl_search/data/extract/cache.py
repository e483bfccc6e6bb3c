"""The per-utterance feature cache that lets an interrupted extraction resume where it stopped.

Each finished task (one utterance's audio or visual features, or one batch of text embeddings) is stored
as ``<root>/<key[:2]>/<key>.npy``, written to a temporary name and renamed into place, so a kill leaves
either no entry or a whole one. The key is the sha256 of the extractor's settings and versions and of
the task's inputs (the text, or each file's path, size and modification time), so a changed file or
setting is extracted again and the same work is never done twice, whatever the output file is called.
Entries are read without pickle; a damaged one reads as missing. The default root is
``$SPCL_SEARCH_CACHE/extract`` (``~/.cache/spcl-search/extract``); delete it at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from spcl_search.data.cache import default_cache_dir

__all__ = ["FEATURE_CACHE_VERSION", "FeatureCache", "default_feature_cache", "task_key"]

#: Bump when an extractor's output changes for the same settings, so old entries are not reused.
FEATURE_CACHE_VERSION = 1


def default_feature_cache() -> Path:
    """``$SPCL_SEARCH_CACHE/extract``, else ``~/.cache/spcl-search/extract``."""
    return default_cache_dir() / "extract"


def task_key(settings: dict[str, Any], identities: list[Any]) -> str:
    """The cache key of a task: sha256 of the settings and the inputs' identities, as canonical JSON."""
    blob = json.dumps({"v": FEATURE_CACHE_VERSION, "settings": settings, "inputs": identities}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class FeatureCache:
    """Float32 arrays by key under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> np.ndarray | None:
        """The stored array, or None when absent or unreadable."""
        try:
            arr = np.load(self.path(key), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        return arr if arr.dtype == np.float32 and arr.ndim == 2 else None

    def put(self, key: str, array: np.ndarray) -> None:
        """Store ``array`` (float32 ``[n, dim]``) atomically."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{key[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
