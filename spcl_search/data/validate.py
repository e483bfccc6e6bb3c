"""Checks on a feature file's content; each failure is a one-line DataError naming the file and the problem.

The converters here (:func:`labels_array`, :func:`speakers_array`, :func:`features_array`) turn one
dialogue's raw lists into typed arrays and refuse what a model could not use: ragged or non-finite
features, non-integer labels, unreadable speakers. The split checks refuse empty or duplicated splits,
a dialogue in both train and test, and ids that have no data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from spcl_search.data.types import Dialogue
from spcl_search.errors import DataError

__all__ = [
    "check_counts",
    "check_dims",
    "check_disjoint",
    "check_labels",
    "check_listed_have_data",
    "features_array",
    "labels_array",
    "speakers_array",
    "split_ids",
    "utterance_count",
]


def split_ids(source: str, key: str, value: Any) -> list[Any]:
    """Return the dialogue ids of split ``key`` as a list; refuse a non-list, an empty split or duplicates."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (set, frozenset)):
        value = sorted(value, key=str)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise DataError(f"{source}: split '{key}' must be a list of dialogue ids (found {type(value).__name__})")
    ids = [v.item() if isinstance(v, np.generic) else v for v in value]
    if not ids:
        raise DataError(f"{source}: split '{key}' is empty")
    bad = [v for v in ids if not isinstance(v, (str, int)) or isinstance(v, bool)]
    if bad:  # (a list, since the offending id may itself be None)
        raise DataError(f"{source}: split '{key}' holds {bad[0]!r}, which is not a dialogue id (str or int)")
    if len(set(ids)) != len(ids):
        seen: set[Any] = set()
        for dup in ids:
            if dup in seen:
                raise DataError(f"{source}: dialogue '{dup}' is listed twice in '{key}'")
            seen.add(dup)
    return ids


def check_disjoint(source: str, key_a: str, ids_a: Sequence[Any], key_b: str, ids_b: Sequence[Any]) -> None:
    """Refuse a dialogue listed in both splits (a train/test leak)."""
    both = set(ids_a) & set(ids_b)
    if both:
        first = next(v for v in ids_a if v in both)
        raise DataError(f"{source}: dialogue '{first}' is in both '{key_a}' and '{key_b}' ({len(both)} ids overlap)")


def check_listed_have_data(source: str, split: str, ids: Sequence[Any], fields: Mapping[str, Mapping[Any, Any]]) -> None:
    """Refuse an id of ``split`` that has no entry in one of the per-dialogue ``fields`` (key -> mapping)."""
    for key, table in fields.items():
        for vid in ids:
            if vid not in table:
                raise DataError(f"{source}: dialogue '{vid}' is listed in '{split}' but has no entry in '{key}'")


def check_counts(source: str, vid: Any, counts: Mapping[str, int]) -> None:
    """Refuse a dialogue whose fields disagree on the number of utterances, or that has none."""
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{key} {n}" for key, n in counts.items())
        raise DataError(f"{source}: dialogue '{vid}' has different utterance counts: {detail}")
    if not next(iter(counts.values()), 0):
        raise DataError(f"{source}: dialogue '{vid}' has no utterances")


def utterance_count(source: str, vid: Any, key: str, value: Any) -> int:
    """Number of utterances in one dialogue's entry of ``key`` (a list or an array with one row each)."""
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim > 0):
        return len(value)
    raise DataError(f"{source}: dialogue '{vid}' has an entry in '{key}' that is not a list per utterance")


def labels_array(source: str, vid: Any, key: str, value: Any) -> np.ndarray:
    """One dialogue's labels as int64 ``[n]``; refuse non-integer values."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise DataError(f"{source}: dialogue '{vid}' has unreadable labels in '{key}'") from None
    if arr.ndim != 1 or arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not np.all(np.mod(arr, 1) == 0)):
        raise DataError(f"{source}: dialogue '{vid}' has labels in '{key}' that are not a list of integers")
    return arr.astype(np.int64)


def speakers_array(source: str, vid: Any, key: str, value: Any) -> np.ndarray:
    """One dialogue's speakers as int64 indices ``[n]``.

    'M'/'F' map to 0/1 (IEMOCAP); other names are numbered in order of first appearance; one-hot rows
    (the MELD tuple pickle) map to their argmax; integers are kept.
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise DataError(f"{source}: dialogue '{vid}' has unreadable speakers in '{key}'") from None
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "latin1")
    if arr.ndim == 1 and arr.dtype.kind == "U":
        names = arr.tolist()
        if set(names) <= {"M", "F"}:
            return np.array([0 if s == "M" else 1 for s in names], dtype=np.int64)
        order = {s: i for i, s in enumerate(dict.fromkeys(names))}
        return np.array([order[s] for s in names], dtype=np.int64)
    if arr.ndim == 2 and arr.dtype.kind in "iufb" and arr.shape[1] > 0:
        return arr.argmax(axis=1).astype(np.int64)
    if arr.ndim == 1 and arr.dtype.kind in "iub" and (arr.size == 0 or arr.min() >= 0):
        return arr.astype(np.int64)
    raise DataError(
        f"{source}: dialogue '{vid}' has speakers in '{key}' that are neither names, non-negative integers nor one-hot rows"
    )


def features_array(source: str, vid: Any, key: str, value: Any) -> np.ndarray:
    """One dialogue's features as C-contiguous float32 ``[n, dim]``; refuse ragged, non-numeric or non-finite ones."""
    try:
        arr = np.ascontiguousarray(value, dtype=np.float32)
    except (ValueError, TypeError, OverflowError):
        dims = _utterance_dims(value)
        if len(dims) > 1:
            raise DataError(
                f"{source}: inconsistent '{key}' feature dims within dialogue '{vid}' (utterances of {', '.join(map(str, dims))})"
            ) from None
        raise DataError(f"{source}: dialogue '{vid}' has non-numeric '{key}' features") from None
    if arr.ndim != 2:
        raise DataError(
            f"{source}: dialogue '{vid}' has '{key}' features of shape {arr.shape}; expected one vector per utterance"
        )
    if not np.isfinite(arr).all():
        what = "NaN" if np.isnan(arr).any() else "inf"
        raise DataError(f"{source}: dialogue '{vid}' has {what} values in '{key}' features")
    return arr


def _utterance_dims(value: Any) -> list[int]:
    """Sizes of the utterance vectors of a ragged feature list (empty if they cannot be measured)."""
    try:
        return sorted({int(np.size(np.asarray(u, dtype=np.float32))) for u in value})
    except (TypeError, ValueError, OverflowError):
        return []


def check_dims(source: str, key: str, dims: Mapping[Any, int]) -> int:
    """Return the common feature dim of modality ``key`` (``dims``: dialogue id -> dim in file order)."""
    it = iter(dims.items())
    first_vid, first = next(it)
    for vid, dim in it:
        if dim != first:
            raise DataError(
                f"{source}: inconsistent '{key}' feature dims: {first} in dialogue '{first_vid}' but {dim} in dialogue '{vid}'"
            )
    return first


def check_labels(source: str, dialogues: Iterable[Dialogue], classes: Sequence[str]) -> None:
    """Refuse a label outside ``0..len(classes)-1``; the error names the dialogue and the class set."""
    k = len(classes)
    for d in dialogues:
        bad = d.labels[(d.labels < 0) | (d.labels >= k)]
        if bad.size:
            names = ", ".join(classes)
            raise DataError(
                f"{source}: dialogue '{d.vid}' has label {int(bad[0])} outside the class set 0..{k - 1} ({names})"
            )
