"""The per-utterance feature cache that lets an interrupted extraction resume where it stopped.

Each finished task (one utterance's audio or visual features, or one batch of text embeddings) is stored
as ``<root>/<key[:2]>/<key>.npy``, written to a temporary name and renamed into place, so a kill leaves
either no entry or a whole one. The key is the sha256 of the extractor's settings and versions and of
the task's inputs (the text, or each file's path, size and modification time), so a changed file or
setting is extracted again and the same work is never done twice, whatever the output file is called.
Entries are read without pickle; a damaged one reads as missing. Like the feature cache, the folders are
0700, the files 0600 and each entry starts with an HMAC-SHA256 under this user's key
(:mod:`spcl_search.data.private`): an entry someone else planted reads as missing. The default root is
``$SPCL_SEARCH_CACHE/extract`` (``~/.cache/spcl-search/extract``); delete it at any time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from spcl_search.data.cache import default_cache_dir
from spcl_search.data.private import MAC_BYTES, private_dir, sign, verify
from spcl_search.outputs import atomic_write

__all__ = ["FEATURE_CACHE_VERSION", "FeatureCache", "default_feature_cache", "task_key"]

#: Bump when an extractor's output changes for the same settings, so old entries are not reused.
FEATURE_CACHE_VERSION = 2


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
            blob = self.path(key).read_bytes()
            if not verify(blob[:MAC_BYTES], key.encode(), blob[MAC_BYTES:]):
                return None
            arr = np.load(io.BytesIO(blob[MAC_BYTES:]), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        return arr if arr.dtype == np.float32 and arr.ndim == 2 else None

    def put(self, key: str, array: np.ndarray) -> None:
        """Store ``array`` (float32 ``[n, dim]``) atomically."""
        target = self.path(key)
        private_dir(self.root)
        private_dir(target.parent)
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
        body = buffer.getvalue()
        mac = sign(key.encode(), body)
        atomic_write(target, mac + body, mode=0o600)
