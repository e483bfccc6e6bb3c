"""Assemble the extracted features into an SPCL dict pickle, check it as the loader would, write it atomically.

The file has the keys the loader and the SPCL code read (``trainVid``, ``validVid`` when there are dev
dialogues, ``testVid``, ``label``, ``sentence``, ``text``/``audio``/``visual`` for the modalities
extracted, ``speaker`` 'M'/'F' when every speaker is M or F, else ``speakers`` as each dialogue's speaker
index in order of first appearance) plus ``utterance_id`` and ``speaker_name`` (which the loaders ignore)
and ``meta``. As in the shared benchmark files, ``trainVid`` includes the dev dialogues. Only lists,
dicts, str, int and float32 arrays are pickled, so the restricted unpickler opens it; the same inputs
write the same bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from spcl_search.data.extract.corpus import SPLITS, Corpus, Utterance
from spcl_search.data.formats import parse
from spcl_search.data.types import MODALITY_NAMES, MODALITY_ORDER
from spcl_search.data.validate import check_labels
from spcl_search.errors import DataError

__all__ = ["ExtractSummary", "build_features"]


@dataclass
class ExtractSummary:
    """What an extraction produced: counts per split and class, dims, and what was left out and why."""

    name: str
    layout: str
    source: str
    classes: list[str]
    splits: dict[str, dict[str, Any]]
    dims: dict[str, int]
    dropped: dict[str, int]
    skipped: list[dict[str, str]]
    empty_dialogues: list[str]
    computed: dict[str, int] = field(default_factory=dict)
    cached: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    jobs: int = 1
    out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_features(
    corpus: Corpus,
    utterances: list[Utterance],
    features: dict[str, dict[str, np.ndarray]],
    extraction: dict[str, Any],
    provenance: dict[str, str],
) -> dict[str, Any]:
    """The SPCL dict of ``utterances`` (in corpus order) with ``features[uid][modality]`` rows.

    ``extraction`` becomes ``meta['extraction']`` (extractors, settings, skipped utterances);
    ``provenance`` (modality letter -> one line) becomes ``meta['modalities']``.
    """
    modalities = [m for m in MODALITY_ORDER if m in provenance]
    groups: dict[str, list[Utterance]] = {}
    for u in utterances:
        groups.setdefault(u.dialogue, []).append(u)
    index = {c: i for i, c in enumerate(corpus.classes)}
    mf = all(u.speaker in ("M", "F") for u in utterances)
    data: dict[str, Any] = {
        "trainVid": [d for d, us in groups.items() if us[0].split in ("train", "dev")],
        "testVid": [d for d, us in groups.items() if us[0].split == "test"],
    }
    dev = [d for d, us in groups.items() if us[0].split == "dev"]
    if dev:
        data["validVid"] = dev
    data["label"] = {d: [index[u.label] for u in us] for d, us in groups.items()}
    for m in modalities:
        data[MODALITY_NAMES[m]] = {d: [np.array(features[u.uid][m], dtype=np.float32) for u in us] for d, us in groups.items()}
    data["sentence"] = {d: [u.text for u in us] for d, us in groups.items()}
    if mf:
        data["speaker"] = {d: [u.speaker for u in us] for d, us in groups.items()}
    else:
        data["speakers"] = {d: _local_speakers(us) for d, us in groups.items()}
    data["speaker_name"] = {d: [u.speaker for u in us] for d, us in groups.items()}
    data["utterance_id"] = {d: [u.uid for u in us] for d, us in groups.items()}
    data["meta"] = {
        "name": corpus.name,
        "description": f"Features extracted by spcl-search data extract (--layout {corpus.layout}) from {corpus.source}",
        "classes": list(corpus.classes),
        "modalities": {MODALITY_NAMES[m]: provenance[m] for m in modalities},
        "extraction": extraction,
    }
    return data


def summarise(corpus: Corpus, data: dict[str, Any], extraction: dict[str, Any]) -> ExtractSummary:
    """Counts per split and class of an assembled SPCL dict, with the extraction's drops and skips."""
    n = len(corpus.classes)
    dev = set(data.get("validVid", []))
    ids = {
        "train": [d for d in data["trainVid"] if d not in dev],
        "dev": [d for d in data["trainVid"] if d in dev],
        "test": list(data["testVid"]),
    }
    splits: dict[str, dict[str, Any]] = {}
    for split in (*SPLITS, "total"):
        vids = [v for s in SPLITS for v in ids[s]] if split == "total" else ids[split]
        labels = [lab for v in vids for lab in data["label"][v]]
        splits[split] = {
            "dialogues": len(vids),
            "utterances": len(labels),
            "classes": np.bincount(np.asarray(labels, dtype=np.int64), minlength=n)[:n].tolist(),
        }
    kept = set(data["label"])
    return ExtractSummary(
        name=corpus.name,
        layout=corpus.layout,
        source=str(corpus.source),
        classes=list(corpus.classes),
        splits=splits,
        dims=dict(extraction["dims"]),
        dropped=dict(extraction["dropped"]),
        skipped=list(extraction["skipped"]),
        empty_dialogues=[d for d in corpus.dialogues() if d not in kept],
    )


def check_loadable(data: dict[str, Any], name: str) -> None:
    """Parse ``data`` as the loader does; a :class:`~spcl_search.errors.DataError` means it would refuse the file."""
    for split in ("trainVid", "testVid"):
        if not data[split]:
            raise DataError(f"{name}: no {split[:-3]} dialogue is left to write (every one was skipped or dropped)")
    parsed = parse(data, name)
    check_labels(name, parsed.dialogues.values(), data["meta"]["classes"])


def _local_speakers(us: list[Utterance]) -> list[int]:
    order: dict[str, int] = {}
    return [order.setdefault(u.speaker, len(order)) for u in us]
