"""Pad dialogues into batches: ``[seq, batch, dim]`` per modality, with mask, lengths and speakers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from spcl_search.data.types import Dialogue, canonical_modalities

#: Label value at padded positions (ignored by every loss and metric).
PAD_LABEL = -1


@dataclass
class Batch:
    """A padded batch of dialogues, time-major like the original ERC code.

    features:  modality letter -> float32 ``[seq, batch, dim]``, zeros at padded positions
    mask:      float32 ``[seq, batch]``, 1.0 for a real utterance, 0.0 for padding
    lengths:   int64 ``[batch]`` (on the CPU), number of real utterances per dialogue
    speakers:  int64 ``[seq, batch]``, speaker index, 0 at padded positions
    labels:    int64 ``[seq, batch]``, class index, ``PAD_LABEL`` at padded positions
    vids:      dialogue ids in batch order
    n_speakers: number of speaker indices the dataset uses
    feature_scale: optional modality letter -> float32 ``[seq, batch]``: every backbone multiplies that
               modality's encoder output of each utterance by it (balance methods that drop a
               modality's features in the forward pass, e.g. OPM); ``None``: untouched
    """

    features: dict[str, torch.Tensor]
    mask: torch.Tensor
    lengths: torch.Tensor
    speakers: torch.Tensor
    labels: torch.Tensor
    vids: list[str]
    n_speakers: int
    feature_scale: dict[str, torch.Tensor] | None = None

    @property
    def modalities(self) -> str:
        return "".join(self.features)

    @property
    def seq_len(self) -> int:
        return int(self.mask.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.mask.shape[1])

    @property
    def n_utterances(self) -> int:
        return int(self.lengths.sum())

    def to(self, device: torch.device | str) -> Batch:
        """Move every tensor but ``lengths`` (kept on the CPU for packing) to ``device``."""
        return Batch(
            features={m: x.to(device, non_blocking=True) for m, x in self.features.items()},
            mask=self.mask.to(device, non_blocking=True),
            lengths=self.lengths,
            speakers=self.speakers.to(device, non_blocking=True),
            labels=self.labels.to(device, non_blocking=True),
            vids=self.vids,
            n_speakers=self.n_speakers,
            feature_scale=None if self.feature_scale is None else {m: x.to(device, non_blocking=True) for m, x in self.feature_scale.items()},
        )


def collate(dialogues: Sequence[Dialogue], modalities: str, n_speakers: int, pad_to: int | None = None) -> Batch:
    """Pad ``dialogues`` into one :class:`Batch` holding only ``modalities``.

    ``pad_to`` pads to at least that many steps (used by tests of padding invariance).
    """
    modalities = canonical_modalities(modalities)
    if not dialogues:
        raise ValueError("cannot collate an empty list of dialogues")
    lengths = np.array([len(d) for d in dialogues], dtype=np.int64)
    seq = int(lengths.max()) if pad_to is None else max(int(lengths.max()), pad_to)
    b = len(dialogues)
    mask = np.zeros((seq, b), dtype=np.float32)
    speakers = np.zeros((seq, b), dtype=np.int64)
    labels = np.full((seq, b), PAD_LABEL, dtype=np.int64)
    feats = {}
    for m in modalities:
        dim = dialogues[0].features[m].shape[1]
        feats[m] = np.zeros((seq, b, dim), dtype=np.float32)
    for j, d in enumerate(dialogues):
        n = len(d)
        mask[:n, j] = 1.0
        speakers[:n, j] = d.speakers
        labels[:n, j] = d.labels
        for m in modalities:
            feats[m][:n, j] = d.features[m]
    return Batch(
        features={m: torch.from_numpy(x) for m, x in feats.items()},
        mask=torch.from_numpy(mask),
        lengths=torch.from_numpy(lengths),
        speakers=torch.from_numpy(speakers),
        labels=torch.from_numpy(labels),
        vids=[d.vid for d in dialogues],
        n_speakers=n_speakers,
    )


def iter_batches(
    dialogues: Sequence[Dialogue],
    modalities: str,
    n_speakers: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
) -> Iterator[Batch]:
    """Yield padded batches of ``batch_size`` dialogues; shuffled with a seeded generator if asked."""
    order = np.arange(len(dialogues))
    if shuffle:
        np.random.default_rng(seed).shuffle(order)
    for start in range(0, len(order), batch_size):
        yield collate([dialogues[i] for i in order[start : start + batch_size]], modalities, n_speakers)
