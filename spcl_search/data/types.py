"""In-memory dataset types shared by the loaders, the batcher and the backbones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Modality letters, in canonical order.
MODALITY_ORDER = ("a", "t", "v")
#: Long names used by the SPCL pickle format.
MODALITY_NAMES = {"a": "audio", "t": "text", "v": "visual"}
#: Every modality subset a user may pick.
MODALITY_SUBSETS = ("a", "t", "v", "at", "av", "tv", "atv")


def canonical_modalities(spec: str) -> str:
    """Return ``spec`` in canonical order (``'vta' -> 'atv'``); raise ValueError if it is not a subset."""
    letters = set(spec)
    if not spec or len(letters) != len(spec) or not letters <= set(MODALITY_ORDER):
        raise ValueError(
            f"modalities {spec!r} is not one of {', '.join(MODALITY_SUBSETS)}"
        )
    return "".join(m for m in MODALITY_ORDER if m in letters)


@dataclass(frozen=True)
class Dialogue:
    """One dialogue: per-utterance labels, speaker indices and features per modality.

    ``speakers`` are small integers ``0..n_speakers-1`` (IEMOCAP 'M'->0, 'F'->1; MELD the local index).
    ``features[m]`` is a float32 array ``[n_utterances, dim_m]`` for each modality letter present.
    """

    vid: str
    labels: np.ndarray
    speakers: np.ndarray
    features: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class ERCDataset:
    """A dataset split into train / dev / test dialogues.

    ``info`` records provenance: source path and sha256, which modalities are surrogate, and how the
    dev split was made (``dev_split``: method, fraction, seed, ids), so that any run can be repeated.
    """

    name: str
    classes: tuple[str, ...]
    n_speakers: int
    dims: dict[str, int]
    train: list[Dialogue]
    dev: list[Dialogue]
    test: list[Dialogue]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def modalities(self) -> str:
        return "".join(m for m in MODALITY_ORDER if m in self.dims)

    def split(self, name: str) -> list[Dialogue]:
        return {"train": self.train, "dev": self.dev, "test": self.test}[name]
