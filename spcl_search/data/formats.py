"""Parse the two feature-pickle layouts ERC users have into validated dialogues.

1. **SPCL dict**: keys ``trainVid``, ``testVid``, optional ``validVid``, ``label``, ``text``, ``audio``,
   ``visual``, optional ``sentence``, ``speaker`` ('M'/'F') or ``speakers`` (ints), optional ``meta``.
2. **DialogueGCN / MMGCN / MM-DFN tuple**: ``videoIDs, videoSpeakers, videoLabels, videoText, videoAudio,
   videoVisual, videoSentence, trainVid, testVid`` (IEMOCAP, 9 items); MELD adds a 10th unused item and
   stores speakers as one-hot rows. DialogueGCN's own MELD file has no ``videoVisual`` (9 items, the last
   unused); it is recognised because item 7 is then a list of ids rather than a dict.

:func:`parse` gives a :class:`ParsedData` (what the cache stores); :func:`identify` names the dataset and
its classes from the meta data, the file name or the label count.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spcl_search.data import validate
from spcl_search.data.types import MODALITY_NAMES, MODALITY_ORDER, Dialogue
from spcl_search.errors import DataError

__all__ = [
    "IEMOCAP_CLASSES",
    "KNOWN_CLASSES",
    "MELD_CLASSES",
    "ParsedData",
    "identify",
    "jsonable",
    "parse",
    "surrogate_modalities",
]

IEMOCAP_CLASSES = ("hap", "sad", "neu", "ang", "exc", "fru")
MELD_CLASSES = ("neu", "sur", "fea", "sad", "joy", "dis", "ang")
#: Class names of the benchmarks the loader recognises by name.
KNOWN_CLASSES = {"iemocap": IEMOCAP_CLASSES, "meld": MELD_CLASSES}
_KNOWN_NAMES = ("iemocap", "meld", "synthetic")

_TUPLE_KEYS_9 = ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "videoAudio", "videoVisual",
                 "videoSentence", "trainVid", "testVid")
_TUPLE_KEYS_NO_VISUAL = ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "videoAudio",
                         "videoSentence", "trainVid", "testVid", "unused")


@dataclass
class ParsedData:
    """A feature file's validated content before the dev split (the part the cache stores).

    ``dialogues`` maps the dialogue id (as ``str``) to its :class:`Dialogue`, in file order; the id
    lists hold the same ``str`` ids. ``valid_ids`` is ``None`` when the file has no ``validVid``.
    """

    format: str
    dialogues: dict[str, Dialogue]
    train_ids: list[str]
    test_ids: list[str]
    valid_ids: list[str] | None
    meta: dict[str, Any]
    has_sentences: bool

    @property
    def dims(self) -> dict[str, int]:
        first = next(iter(self.dialogues.values()))
        return {m: int(first.features[m].shape[1]) for m in MODALITY_ORDER if m in first.features}

    @property
    def n_speakers(self) -> int:
        return max(1, max(int(d.speakers.max(initial=-1)) + 1 for d in self.dialogues.values()))

    @property
    def max_label(self) -> int:
        return max(int(d.labels.max(initial=-1)) for d in self.dialogues.values())


def parse(obj: Any, source: str) -> ParsedData:
    """Validate and convert an unpickled feature file (either layout); ``source`` names it in errors."""
    if isinstance(obj, Mapping):
        return _parse_spcl(obj, source)
    if isinstance(obj, (tuple, list)) and len(obj) in (9, 10):
        return _parse_tuple(obj, source)
    found = f"a {type(obj).__name__}" + (f" of {len(obj)} items" if isinstance(obj, (tuple, list)) else "")
    raise DataError(
        f"{source}: is neither an SPCL dict pickle nor a DialogueGCN/MMGCN tuple pickle of 9 or 10 items (found {found})"
    )


def _parse_spcl(obj: Mapping[str, Any], source: str) -> ParsedData:
    for key in ("trainVid", "testVid", "label"):
        if key not in obj:
            raise DataError(
                f"{source}: missing key '{key}' "
                "(an SPCL pickle needs trainVid, testVid, label, speaker or speakers, and features)"
            )
    speaker_key = next((k for k in ("speaker", "speakers") if k in obj), None)
    if speaker_key is None:
        raise DataError(f"{source}: missing key 'speaker' (or 'speakers'): the speaker of every utterance")
    modality_keys = {m: MODALITY_NAMES[m] for m in MODALITY_ORDER if MODALITY_NAMES[m] in obj}
    if not modality_keys:
        raise DataError(
            f"{source}: missing key 'text' (an SPCL pickle needs at least one of 'text', 'audio', 'visual')"
        )
    valid = validate.split_ids(source, "validVid", obj["validVid"]) if obj.get("validVid") is not None else None
    meta = obj.get("meta")
    return _build(
        source,
        fmt="spcl",
        train=validate.split_ids(source, "trainVid", obj["trainVid"]),
        test=validate.split_ids(source, "testVid", obj["testVid"]),
        valid=valid,
        label=("label", obj["label"]),
        speaker=(speaker_key, obj[speaker_key]),
        features={m: (key, obj[key]) for m, key in modality_keys.items()},
        meta=jsonable(meta, source) if isinstance(meta, Mapping) else {},
        has_sentences="sentence" in obj,
    )


def _parse_tuple(obj: tuple[Any, ...] | list[Any], source: str) -> ParsedData:
    no_visual = len(obj) == 9 and not isinstance(obj[6], Mapping)
    keys = _TUPLE_KEYS_NO_VISUAL if no_visual else _TUPLE_KEYS_9
    item = dict(zip(keys, obj))
    features = {"t": ("videoText", item["videoText"]), "a": ("videoAudio", item["videoAudio"])}
    if not no_visual:
        features["v"] = ("videoVisual", item["videoVisual"])
    return _build(
        source,
        fmt="dialoguegcn",
        train=validate.split_ids(source, "trainVid", item["trainVid"]),
        test=validate.split_ids(source, "testVid", item["testVid"]),
        valid=None,
        label=("videoLabels", item["videoLabels"]),
        speaker=("videoSpeakers", item["videoSpeakers"]),
        features=dict(sorted(features.items(), key=lambda kv: MODALITY_ORDER.index(kv[0]))),
        meta={},
        has_sentences=isinstance(item.get("videoSentence"), Mapping),
    )


def _build(
    source: str,
    *,
    fmt: str,
    train: list[Any],
    test: list[Any],
    valid: list[Any] | None,
    label: tuple[str, Any],
    speaker: tuple[str, Any],
    features: dict[str, tuple[str, Any]],
    meta: dict[str, Any],
    has_sentences: bool,
) -> ParsedData:
    fields = {key: table for key, table in (label, speaker, *features.values())}
    for key, table in fields.items():
        if not isinstance(table, Mapping):
            raise DataError(
                f"{source}: '{key}' must map dialogue ids to per-utterance lists (found {type(table).__name__})"
            )
    validate.check_disjoint(source, "trainVid", train, "testVid", test)
    if valid is not None:
        validate.check_disjoint(source, "validVid", valid, "testVid", test)
    splits = {"trainVid": train, "testVid": test, **({"validVid": valid} if valid is not None else {})}
    for split, ids in splits.items():
        validate.check_listed_have_data(source, split, ids, fields)

    dialogues: dict[str, Dialogue] = {}
    dims: dict[str, dict[str, int]] = {m: {} for m in features}
    for vid in dict.fromkeys([*train, *(valid or []), *test]):
        key = str(vid)
        if key in dialogues:
            raise DataError(f"{source}: dialogue ids {vid!r} and '{key}' collide (ids must be unique as text)")
        counts = {k: validate.utterance_count(source, vid, k, table[vid]) for k, table in fields.items()}
        validate.check_counts(source, vid, counts)
        labels = validate.labels_array(source, vid, label[0], label[1][vid])
        speakers = validate.speakers_array(source, vid, speaker[0], speaker[1][vid])
        feats = {m: validate.features_array(source, vid, name, table[vid]) for m, (name, table) in features.items()}
        for m, x in feats.items():
            dims[m][key] = x.shape[1]
        dialogues[key] = Dialogue(vid=key, labels=labels, speakers=speakers, features=feats)
    for m, per_dialogue in dims.items():
        validate.check_dims(source, features[m][0], per_dialogue)
    return ParsedData(
        format=fmt,
        dialogues=dialogues,
        train_ids=[str(v) for v in train],
        test_ids=[str(v) for v in test],
        valid_ids=None if valid is None else [str(v) for v in valid],
        meta=meta,
        has_sentences=has_sentences,
    )


#: how each benchmark's dialogue ids look: IEMOCAP's session names; MELD's numbers (the DialogueGCN release) or
#: ``train/dia0`` (``spcl-search data extract``)
BENCHMARK_IDS = {"iemocap": re.compile(r"Ses0[1-5][MF]_\w+"), "meld": re.compile(r"((train|dev|test)/)?dia\d+|\d+")}
#: the name of the embedded synthetic set, which a file never takes (its stem instead; ``synthetic.pkl``: this)
FILE_NOT_SYNTHETIC = "synthetic_file"


def identify(
    meta: Mapping[str, Any], stem: str, max_label: int, ids: Sequence[Any] = (), *, from_file: bool = False
) -> tuple[str, tuple[str, ...]]:
    """Name a dataset and its classes.

    Name: ``meta['name']``/``meta['dataset']`` (lower case, spaces as ``_``); else iemocap or meld when the
    classes (``meta['classes']``, else the label count) and every dialogue id are the benchmark's (or, as the
    DialogueGCN releases name theirs, the file name says so); else the file stem. A file (``from_file``) is never
    "synthetic", the embedded set's name: a ``data synth`` file is named by its stem. Classes: ``meta['classes']``,
    else the known benchmark's, else by label count (6 -> IEMOCAP's, 7 -> MELD's), else ``c0..cK``.
    """
    declared = next((str(meta[k]).strip().lower() for k in ("name", "dataset") if str(meta.get(k) or "").strip()), None)
    given = meta.get("classes")
    classes = tuple(given) if isinstance(given, list) and given and all(isinstance(c, str) for c in given) else None
    n_classes = max(max_label + 1, 1)
    name = re.sub(r"[^\w.-]+", "_", declared).strip("_") if declared else None
    if not name or (from_file and name == "synthetic"):
        name = _benchmark(classes, n_classes, ids)
        name = name or next((n for n in KNOWN_CLASSES if re.search(n, stem, re.IGNORECASE)), stem)
    if from_file and name == "synthetic":
        name = FILE_NOT_SYNTHETIC
    if classes is not None:
        return name, classes
    if name in KNOWN_CLASSES:
        return name, KNOWN_CLASSES[name]
    by_count = {len(c): c for c in KNOWN_CLASSES.values()}
    return name, by_count.get(n_classes, tuple(f"c{i}" for i in range(n_classes)))


def _benchmark(classes: tuple[str, ...] | None, n_classes: int, ids: Sequence[Any]) -> str | None:
    """iemocap or meld when the classes and every dialogue id are that benchmark's, else None."""
    for name, pattern in BENCHMARK_IDS.items():
        known = KNOWN_CLASSES[name]
        same_classes = classes == known if classes is not None else n_classes == len(known)
        if same_classes and ids and all(pattern.fullmatch(str(v)) for v in ids):
            return name
    return None


def surrogate_modalities(meta: Mapping[str, Any]) -> str:
    """Modality letters whose provenance in ``meta['modalities']`` says surrogate or synthetic."""
    provenance = meta.get("modalities")
    if not isinstance(provenance, Mapping):
        return ""
    flagged = {
        m for m, name in MODALITY_NAMES.items() if re.search(r"surrogate|synthetic", str(provenance.get(name, "")), re.I)
    }
    return "".join(m for m in MODALITY_ORDER if m in flagged)


def jsonable(value: Any, source: str = "<meta>") -> Any:
    """A JSON-safe copy of ``value`` (numpy -> lists/numbers, tuples -> lists, other objects -> str)."""
    try:
        return _jsonable(value)
    except RecursionError:
        raise DataError(f"{source}: 'meta' is nested too deeply") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return f"<an integer of {value.bit_length()} bits>"  # JSON readers (and str()) refuse such numbers
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, bytes):
        return value.decode("latin1")
    return str(value)
