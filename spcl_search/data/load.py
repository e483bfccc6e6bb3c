"""``load_dataset``: a feature pickle (either layout), an in-memory object or ``"synthetic"`` -> ERCDataset.

A file is hashed, looked up in the cache (:mod:`spcl_search.data.cache`) and, on a miss, opened with the
restricted unpickler, parsed, validated and cached. The dev split is made afterwards, so that changing
it never invalidates the cache: the file's own ``validVid`` when present (those dialogues leave train),
else a seeded fraction of the train dialogues. ``ERCDataset.info`` records how.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spcl_search.data.cache import cache_paths, file_sha256, read_cache, write_cache
from spcl_search.data.formats import ParsedData, identify, parse, surrogate_modalities
from spcl_search.data.safe_pickle import safe_load
from spcl_search.data.synthetic import make_synthetic
from spcl_search.data.types import MODALITY_NAMES, ERCDataset
from spcl_search.data.validate import check_labels
from spcl_search.errors import ConfigError, DataError

__all__ = ["SYNTHETIC", "dataset_name", "load_dataset", "split_dev"]

#: The source name of the embedded synthetic dataset.
SYNTHETIC = "synthetic"

Source = str | os.PathLike[str] | Mapping[str, Any] | tuple[Any, ...] | list[Any]


def load_dataset(
    source: Source = SYNTHETIC,
    dev_fraction: float = 0.1,
    dev_seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    use_valid_vid: bool = True,
    *,
    use_cache: bool = True,
) -> ERCDataset:
    """Load an ERC dataset with train / dev / test dialogues.

    ``source``: a path to an SPCL dict pickle or a DialogueGCN/MMGCN/MM-DFN tuple pickle, ``"synthetic"``
    (made on the fly by :func:`~spcl_search.data.synthetic.make_synthetic`), or an already unpickled
    object of either layout. ``dev_fraction``/``dev_seed`` make the dev split when the file has no
    ``validVid`` (or ``use_valid_vid`` is False). ``cache_dir`` defaults to ``$SPCL_SEARCH_CACHE`` or
    ``~/.cache/spcl-search``; ``use_cache=False`` neither reads nor writes it.

    Raises :class:`~spcl_search.errors.DataError` (one line naming the file and the problem) for an
    unreadable, unsafe or inconsistent source, :class:`~spcl_search.errors.ConfigError` for a bad option.
    """
    if not 0.0 < dev_fraction < 1.0:
        raise ConfigError(f"dev_fraction must be between 0 and 1 (exclusive), got {dev_fraction}")
    start = time.perf_counter()
    cache: dict[str, Any] | None = None
    sha256: str | None = None
    if isinstance(source, (Mapping, tuple, list)):
        label, stem = "<memory>", "memory"
        parsed = _parse_guarded(source, label)
    elif str(source) == SYNTHETIC:
        label, stem = SYNTHETIC, SYNTHETIC
        parsed = parse(make_synthetic(), label)
    else:
        label, path = str(source), Path(source).expanduser()
        stem = path.stem
        if path.is_dir():
            raise DataError(f"{label}: is a directory; pass the feature pickle (.pkl) inside it")
        if not path.is_file():
            raise DataError(
                f"{label}: no such file (put feature files under data/, see data/README.md, or use 'synthetic')"
            )
        try:
            sha256 = file_sha256(path)
        except OSError as exc:
            raise DataError(f"{label}: cannot read ({exc.strerror or exc})") from None
        parsed, cache = _load_file(path, label, sha256, cache_dir, use_cache)

    name, classes = identify(parsed.meta, stem, parsed.max_label, list(parsed.dialogues), from_file=sha256 is not None)
    check_labels(label, parsed.dialogues.values(), classes)
    train_ids, dev_ids, dev_info = split_dev(parsed, dev_fraction, dev_seed, use_valid_vid, label)
    d = parsed.dialogues
    provenance = parsed.meta.get("modalities")
    info: dict[str, Any] = {
        "source": label,
        "sha256": sha256,
        "format": parsed.format,
        "surrogate": surrogate_modalities(parsed.meta),
        "provenance": (
            {m: str(provenance[n]) for m, n in MODALITY_NAMES.items() if n in provenance}
            if isinstance(provenance, Mapping)
            else {}
        ),
        "has_sentences": parsed.has_sentences,
        "file_splits": {
            "trainVid": len(parsed.train_ids),
            "testVid": len(parsed.test_ids),
            "validVid": None if parsed.valid_ids is None else len(parsed.valid_ids),
        },
        "dev_split": dev_info,
        "cache": cache,
        "meta": parsed.meta,
    }
    dataset = ERCDataset(
        name=name,
        classes=classes,
        n_speakers=parsed.n_speakers,
        dims=parsed.dims,
        train=[d[v] for v in train_ids],
        dev=[d[v] for v in dev_ids],
        test=[d[v] for v in parsed.test_ids],
        info=info,
    )
    info["load_seconds"] = round(time.perf_counter() - start, 4)
    return dataset


def dataset_name(source: str | os.PathLike[str]) -> str:
    """The name a feature file goes by (``ERCDataset.name``: its meta name, IEMOCAP or MELD recognised, else its
    stem; never "synthetic"), or "synthetic" for the embedded set. The file is checked and cached on the way."""
    return SYNTHETIC if str(source) == SYNTHETIC else load_dataset(source).name


def split_dev(
    parsed: ParsedData, dev_fraction: float, dev_seed: int, use_valid_vid: bool = True, source: str = "<memory>"
) -> tuple[list[str], list[str], dict[str, Any]]:
    """Return ``(train ids, dev ids, record)``; the record holds method, fraction, seed and the dev ids.

    With ``validVid`` (and ``use_valid_vid``) those dialogues form dev and leave train. Otherwise
    ``max(1, round(dev_fraction * n_train))`` train dialogues, drawn with ``numpy.random.default_rng(dev_seed)``,
    form dev; both lists keep the file's order.
    """
    if use_valid_vid and parsed.valid_ids:
        dev = list(parsed.valid_ids)
        held = set(dev)
        train = [v for v in parsed.train_ids if v not in held]
        if not train:
            raise DataError(
                f"{source}: no training dialogues are left once the validVid dialogues are removed from trainVid"
            )
        record = {"method": "validVid", "fraction": round(len(dev) / (len(train) + len(dev)), 4), "seed": None}
    else:
        n = len(parsed.train_ids)
        n_dev = max(1, round(dev_fraction * n))
        if n_dev >= n:
            raise DataError(
                f"{source}: only {n} training dialogue(s), too few to hold out a dev split of {dev_fraction:g}"
            )
        chosen = set(np.random.default_rng(dev_seed).choice(n, size=n_dev, replace=False).tolist())
        dev = [v for i, v in enumerate(parsed.train_ids) if i in chosen]
        train = [v for i, v in enumerate(parsed.train_ids) if i not in chosen]
        record = {"method": "random", "fraction": dev_fraction, "seed": dev_seed}
    record["n_dialogues"] = len(dev)
    record["ids"] = dev
    return train, dev, record


def _load_file(
    path: Path, label: str, sha256: str, cache_dir: str | os.PathLike[str] | None, use_cache: bool
) -> tuple[ParsedData, dict[str, Any]]:
    npz_path = cache_paths(sha256, cache_dir)[0]
    parsed = read_cache(sha256, cache_dir) if use_cache else None
    cache = {"used": use_cache, "hit": parsed is not None, "path": str(npz_path) if use_cache else None}
    if parsed is None:
        parsed = _parse_guarded(safe_load(path), label)
        if use_cache:
            try:
                write_cache(parsed, sha256, cache_dir)
            except OSError as exc:
                warnings.warn(f"could not write the feature cache at {npz_path.parent}: {exc}", stacklevel=3)
                cache["path"] = None
    return parsed, cache


def _parse_guarded(obj: Any, label: str) -> ParsedData:
    try:
        return parse(obj, label)
    except RecursionError:
        raise DataError(f"{label}: is nested too deeply to be a feature file") from None
    except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:
        # a check the parser does not make explicitly yet: still the file's fault, still one line
        text = " ".join(str(exc).split())[:200]
        raise DataError(f"{label}: is not a valid feature file ({type(exc).__name__}: {text})") from None
