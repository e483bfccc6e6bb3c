"""What every feature extractor offers the runner: a picklable spec and the extractor it builds.

A *spec* (a frozen dataclass) holds an extractor's settings. It is sent to worker processes, goes into the
cache key and, through :meth:`FeatureSpec.describe`, into the output's ``meta``. In the worker,
:meth:`FeatureSpec.build` loads the model once; the built :class:`Extractor` turns a list of inputs (one
per utterance) into a float32 array ``[n, dim]`` and raises
:class:`~spcl_search.data.extract.media.MediaError` for an input it cannot read.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from spcl_search.data.extract.corpus import Problem, Utterance

__all__ = ["Extractor", "FeatureSpec", "file_identity", "missing_file", "package_version"]


class Extractor(Protocol):
    def extract(self, inputs: Sequence[Any]) -> np.ndarray:
        """Features of each input, float32 ``[len(inputs), dim]``."""
        ...


class FeatureSpec(Protocol):
    @property
    def modality(self) -> str:
        """The modality letter: ``t``, ``a`` or ``v``."""

    @property
    def cacheable(self) -> bool:
        """Whether results go to the on-disk cache (importing ready-made arrays is not worth caching)."""

    @property
    def batch(self) -> int:
        """Utterances per task: 1 for media (resume per utterance), a batch for text."""

    def describe(self) -> dict[str, Any]:
        """Name, versions and settings (JSON-able): the ``meta`` record and part of the cache key."""
        ...

    def provenance(self) -> str:
        """One line for ``meta['modalities']`` (what ``data info`` shows as the features' origin)."""
        ...

    def check(self, u: Utterance) -> Problem | None:
        """What keeps ``u`` from being extracted (an empty transcript, a missing file), checked before any work."""
        ...

    def inputs(self, u: Utterance) -> Any:
        """The picklable input of ``u`` that :meth:`Extractor.extract` takes."""
        ...

    def identity(self, u: Utterance) -> Any:
        """What the result depends on besides the settings (the text, or the file's path, size and mtime)."""
        ...

    def build(self) -> Extractor:
        """Load the model (in the worker process that runs the tasks)."""
        ...


def file_identity(path: Path | None) -> list[Any]:
    """Resolved path, size and modification time of a file: a cache entry is stale once the file changes."""
    if path is None:
        return []
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def missing_file(u: Utterance, path: Path | None, what: str) -> Problem | None:
    """A :class:`Problem` when ``path`` is not given or is not a file."""
    if path is None:
        return Problem(u.uid, u.dialogue, u.where, f"gives no {what} file")
    if not path.is_file():
        return Problem(u.uid, u.dialogue, str(path), "no such file" if not path.exists() else "is not a file")
    return None


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
