"""Per-dimension feature standardisation fitted on the train split (the ``--standardise`` data option).

The benchmark text embeddings are unit-norm (per-dimension std about 0.05) while the surrogate audio and
visual features have unit variance; a backbone that reads raw features (the original DialogueGCN's LSTM,
BiDDIN's recurrent cells) learns slowly from the small ones. Standardising every dimension with the mean
and standard deviation of the *train* utterances (never dev or test) puts the modalities on one scale.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from spcl_search.data.types import Dialogue, ERCDataset

#: dimensions whose train standard deviation is below this are only centred (constant features)
MIN_STD = 1e-6


def fit_moments(dialogues: list[Dialogue], modality: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per dimension of ``modality`` over every utterance of ``dialogues``."""
    stacked = np.concatenate([d.features[modality] for d in dialogues]).astype(np.float64)
    mean, std = stacked.mean(0), stacked.std(0)
    return mean.astype(np.float32), np.where(std < MIN_STD, 1.0, std).astype(np.float32)


def standardise(dataset: ERCDataset) -> ERCDataset:
    """A copy of ``dataset`` whose features are ``(x - mean) / std`` with moments of its train split.

    ``info["standardised"]`` records it, so a run says which features it saw.
    """
    moments = {m: fit_moments(dataset.train, m) for m in dataset.dims}

    def scaled(d: Dialogue) -> Dialogue:
        feats = {m: ((x - moments[m][0]) / moments[m][1]).astype(np.float32) for m, x in d.features.items()}
        return replace(d, features=feats)

    return replace(
        dataset,
        train=[scaled(d) for d in dataset.train],
        dev=[scaled(d) for d in dataset.dev],
        test=[scaled(d) for d in dataset.test],
        info={**dataset.info, "standardised": True},
    )


__all__ = ["MIN_STD", "fit_moments", "standardise"]
