"""Read a raw corpus into a :class:`~spcl_search.data.extract.corpus.Corpus`: IEMOCAP, MELD or a manifest CSV.

- ``iemocap``: the official release folder (``Session1`` .. ``Session5``). Labels and times come from
  ``SessionN/dialog/EmoEvaluation/<dialogue>.txt``, text from ``dialog/transcriptions/<dialogue>.txt``,
  audio from ``sentences/wav/<dialogue>/<utterance>.wav`` and video from the dialogue's
  ``dialog/avi/DivX/<dialogue>.avi`` (the utterance's time span). Six classes (hap, sad, neu, ang, exc,
  fru; ``merge_exc`` counts exc as hap); turns with any other label are dropped and counted. Session 5
  is test; a seeded fraction of the other sessions' dialogues is dev.
- ``meld``: the official ``train_sent_emo.csv``, ``dev_sent_emo.csv``, ``test_sent_emo.csv`` and the
  ``dia{D}_utt{U}.mp4`` clips (audio and video from the clip); the official splits are kept.
- ``manifest``: a CSV a user writes, header ``dialogue,utterance,speaker,label,split,text,audio,video``;
  ``audio``/``video`` are optional paths relative to the CSV (without ``audio`` the video's sound is used).

Readers raise :class:`~spcl_search.errors.DataError` (one line naming the file and line) for what makes
the corpus unreadable as a whole (a missing CSV, a bad header, a duplicate utterance id) and record a
:class:`~spcl_search.data.extract.corpus.Problem` for a defect of one utterance (a label outside the class
set), which ``--on-error skip`` may leave out.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from spcl_search.data.extract.corpus import SPLITS, Corpus, Problem, Utterance
from spcl_search.data.formats import IEMOCAP_CLASSES, MELD_CLASSES
from spcl_search.errors import ConfigError, DataError

__all__ = ["LAYOUTS", "MANIFEST_COLUMNS", "MELD_EMOTIONS", "read_corpus", "read_iemocap", "read_manifest", "read_meld"]

#: The layouts ``spcl-search data extract --layout`` accepts.
LAYOUTS = ("iemocap", "meld", "manifest")
#: The columns a manifest CSV must have (in any order; other columns are ignored).
MANIFEST_COLUMNS = ("dialogue", "utterance", "speaker", "label", "split", "text", "audio", "video")
#: MELD's emotion names -> the class names of the SPCL files.
MELD_EMOTIONS = {
    "neutral": "neu", "surprise": "sur", "fear": "fea", "sadness": "sad", "joy": "joy", "disgust": "dis", "anger": "ang",
}

_MELD_CSV = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
#: Where the MELD.Raw archives put each split's clips (the first folder that exists is used).
_MELD_CLIP_DIRS = {
    "train": ("train_splits", "train/train_splits", "train"),
    "dev": ("dev_splits_complete", "dev/dev_splits_complete", "dev_splits", "dev"),
    "test": ("output_repeated_splits_test", "test/output_repeated_splits_test", "test_splits", "test"),
}
_MELD_COLUMNS = ("Dialogue_ID", "Utterance_ID", "Speaker", "Emotion", "Utterance")

# "[6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]"
_EVALUATION_LINE = re.compile(r"^\[\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*\]\s+(\S+)\s+(\S+)")
# "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me."
_TRANSCRIPT_LINE = re.compile(r"^(\S+)\s+\[[^\]]*\]:\s?(.*)$")
_SESSION = re.compile(r"Session[1-5]")
_C1_CONTROLS = re.compile(r"[\x80-\x9f]")


def read_corpus(
    layout: str,
    source: str | Path,
    *,
    classes: Sequence[str] | None = None,
    merge_exc: bool = False,
    dev_fraction: float = 0.1,
    dev_seed: int = 0,
) -> Corpus:
    """Read ``source`` with the reader of ``layout`` (one of :data:`LAYOUTS`).

    ``classes`` (manifest only) fixes the class set; ``merge_exc``, ``dev_fraction`` and ``dev_seed``
    apply to IEMOCAP. An option given to a layout it does not apply to is a :class:`ConfigError`.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"`layout` {layout!r} is not one of {', '.join(LAYOUTS)}")
    if classes is not None and layout != "manifest":
        raise ConfigError(f"`classes` applies to `layout` manifest only (the {layout} classes are fixed)")
    if merge_exc and layout != "iemocap":
        raise ConfigError("`merge_exc` applies to `layout` iemocap only")
    path = Path(source).expanduser().absolute()
    if not path.exists():
        raise DataError(f"{source}: no such file or folder")
    if layout == "iemocap":
        return read_iemocap(path, merge_exc=merge_exc, dev_fraction=dev_fraction, dev_seed=dev_seed)
    if layout == "meld":
        return read_meld(path)
    return read_manifest(path, classes=classes)


# --------------------------------------------------------------------------------------------- IEMOCAP


def read_iemocap(source: Path, *, merge_exc: bool = False, dev_fraction: float = 0.1, dev_seed: int = 0) -> Corpus:
    """Read the IEMOCAP release folder (see the module docstring)."""
    if not source.is_dir():
        raise DataError(f"{source}: is not a folder; `layout` iemocap needs the release folder holding Session1..Session5")
    sessions = sorted(p for p in source.iterdir() if p.is_dir() and _SESSION.fullmatch(p.name))
    if not sessions:
        raise DataError(
            f"{source}: no Session1..Session5 folders; pass the IEMOCAP release folder (IEMOCAP_full_release) to `layout` iemocap"
        )
    if sessions[-1].name != "Session5":
        raise DataError(f"{source}: no Session5 folder; Session 5 is the test split of `layout` iemocap")
    if len(sessions) == 1:
        raise DataError(f"{source}: only Session5 (the test split); sessions 1-4 give the training dialogues")
    classes = tuple(c for c in IEMOCAP_CLASSES if not (merge_exc and c == "exc"))
    rename = {"exc": "hap"} if merge_exc else {}
    dropped: Counter[str] = Counter()
    seen: dict[str, str] = {}
    utterances: list[Utterance] = []
    for session in sessions:
        evaluation_dir = session / "dialog" / "EmoEvaluation"
        if not evaluation_dir.is_dir():
            raise DataError(f"{evaluation_dir}: no such folder; every IEMOCAP session needs dialog/EmoEvaluation/*.txt (the labels)")
        split = "test" if session.name == "Session5" else "train"
        for evaluation in sorted(p for p in evaluation_dir.glob("*.txt") if not p.name.startswith("._")):
            utterances += _iemocap_dialogue(session, evaluation, split, classes, rename, seen, dropped)
    train_dialogues = sorted({u.dialogue for u in utterances if u.split == "train"})
    dev = set(_seeded_dev(train_dialogues, dev_fraction, dev_seed, source))
    utterances = [replace(u, split="dev") if u.dialogue in dev else u for u in utterances]
    return Corpus(
        name="iemocap",
        layout="iemocap",
        source=source,
        classes=classes,
        utterances=utterances,
        dev_split={"method": "random", "from": "sessions 1-4", "fraction": dev_fraction, "seed": dev_seed, "n_dialogues": len(dev)},
        dropped=dropped,
        settings={"merge_exc": merge_exc, "sessions": [s.name for s in sessions], "test": "Session5"},
    )


def _iemocap_dialogue(
    session: Path,
    evaluation: Path,
    split: str,
    classes: tuple[str, ...],
    rename: dict[str, str],
    seen: dict[str, str],
    dropped: Counter[str],
) -> list[Utterance]:
    """The kept turns of one dialogue in time order; ``seen`` (id -> where) and ``dropped`` are updated."""
    dialogue = evaluation.stem
    transcript = session / "dialog" / "transcriptions" / f"{dialogue}.txt"
    texts = _read_transcript(transcript)
    avi = session / "dialog" / "avi"
    video = _first_file(avi / "DivX" / f"{dialogue}.avi", avi / f"{dialogue}.avi")
    turns = []
    for lineno, start, end, uid, emotion in _read_evaluation(evaluation):
        where = f"{evaluation}:{lineno}"
        if uid in seen:
            raise DataError(f"{where}: utterance {uid} appears twice (first at {seen[uid]}); utterance ids must be unique")
        seen[uid] = where
        label = rename.get(emotion, emotion)
        if label not in classes:
            dropped[f"label '{emotion}' (not one of the {len(classes)} classes)"] += 1
            continue
        turns.append((start, uid, end, label, where))
    return [
        Utterance(
            uid=uid,
            dialogue=dialogue,
            order=start,
            speaker=uid.rsplit("_", 1)[-1][:1],  # ..._F000: the female actor
            label=label,
            split=split,
            text=texts.get(uid, ""),
            audio=session / "sentences" / "wav" / dialogue / f"{uid}.wav",
            video=video,
            segment=(start, end),
            where=where,
            text_source=str(transcript),
        )
        for start, uid, end, label, where in sorted(turns)
    ]


def _read_evaluation(path: Path) -> Iterator[tuple[int, float, float, str, str]]:
    """``(line number, start, end, utterance id, emotion)`` of every turn line of an EmoEvaluation file."""
    for lineno, line in enumerate(_read_lines(path), start=1):
        match = _EVALUATION_LINE.match(line)
        if match:
            start, end, uid, emotion = match.groups()
            yield lineno, float(start), float(end), uid, emotion


def _read_transcript(path: Path) -> dict[str, str]:
    """Utterance id -> text of a transcription file (empty if the file is absent: each turn then lacks text)."""
    if not path.is_file():
        return {}
    texts: dict[str, str] = {}
    for line in _read_lines(path):
        match = _TRANSCRIPT_LINE.match(line)
        if match and match.group(1) not in texts:
            texts[match.group(1)] = _clean_text(match.group(2))
    return texts


def _seeded_dev(train: list[str], fraction: float, seed: int, source: Path) -> list[str]:
    """``max(1, round(fraction * n))`` of the sorted ``train`` dialogues, drawn with ``default_rng(seed)``."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"`dev_fraction` must be between 0 and 1 (exclusive), got {fraction}")
    n_dev = max(1, round(fraction * len(train)))
    if n_dev >= len(train):
        raise DataError(f"{source}: only {len(train)} training dialogue(s), too few to hold out a dev split of {fraction:g}")
    chosen = np.random.default_rng(seed).choice(len(train), size=n_dev, replace=False)
    return [train[i] for i in sorted(chosen.tolist())]


# ------------------------------------------------------------------------------------------------ MELD


def read_meld(source: Path) -> Corpus:
    """Read the MELD release folder (see the module docstring)."""
    if not source.is_dir():
        raise DataError(f"{source}: is not a folder; `layout` meld needs the folder holding train_sent_emo.csv and the clips")
    classes = MELD_CLASSES
    problems: list[Problem] = []
    utterances: list[Utterance] = []
    for split in SPLITS:
        path = source / _MELD_CSV[split]
        if not path.is_file():
            raise DataError(f"{path}: no such file; `layout` meld needs {', '.join(_MELD_CSV.values())}")
        clips = _first_dir(*(source / d for d in _MELD_CLIP_DIRS[split]))
        seen: dict[tuple[int, int], int] = {}
        rows = []
        for lineno, row in _read_csv(path, _MELD_COLUMNS):
            where = f"{path}:{lineno}"
            dia, utt = _int_field(row, "Dialogue_ID", where), _int_field(row, "Utterance_ID", where)
            if (dia, utt) in seen:
                raise DataError(
                    f"{where}: utterance dia{dia}_utt{utt} appears twice (first on line {seen[dia, utt]}); utterance ids must be unique"
                )
            seen[dia, utt] = lineno
            rows.append((dia, utt, row, where))
        for dia, utt, row, where in sorted(rows, key=lambda r: r[:2]):
            dialogue, uid = f"{split}/dia{dia}", f"{split}/dia{dia}_utt{utt}"
            emotion = row["Emotion"].strip()
            label = MELD_EMOTIONS.get(emotion.lower())
            if label is None:
                problems.append(Problem(uid, dialogue, where, f"label '{emotion}' is not a MELD emotion ({', '.join(MELD_EMOTIONS)})"))
                continue
            clip = clips / f"dia{dia}_utt{utt}.mp4"
            utterances.append(
                Utterance(
                    uid=uid, dialogue=dialogue, order=utt, speaker=row["Speaker"].strip(), label=label, split=split,
                    text=_clean_text(row["Utterance"]), audio=clip, video=clip, segment=None, where=where, text_source=where,
                )
            )
    return Corpus(
        name="meld",
        layout="meld",
        source=source,
        classes=classes,
        utterances=utterances,
        dev_split={"method": "official", "from": _MELD_CSV["dev"]},
        problems=problems,
        settings={"csv": dict(_MELD_CSV)},
    )


# -------------------------------------------------------------------------------------------- manifest


def read_manifest(path: Path, *, classes: Sequence[str] | None = None) -> Corpus:
    """Read a manifest CSV (see the module docstring); ``classes`` fixes the class set, else the sorted labels found."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder; `layout` manifest needs the CSV file ({','.join(MANIFEST_COLUMNS)})")
    if classes is not None:
        classes = tuple(c.strip() for c in classes if c.strip())
        if not classes or len(set(classes)) != len(classes):
            raise ConfigError(f"`classes` {','.join(classes)!r}: give distinct class names separated by commas")
    base = path.parent
    rows, split_of = _manifest_rows(path)
    labels = {row["label"].strip() for _, _, row, _ in rows}
    class_set = tuple(classes) if classes is not None else tuple(sorted(labels - {""}))
    order = {d: i for i, d in enumerate(split_of)}
    problems: list[Problem] = []
    utterances: list[Utterance] = []
    for dialogue, utt, row, where in sorted(rows, key=lambda r: (order[r[0]], r[1])):
        uid = f"{dialogue}/{utt}"
        label = row["label"].strip()
        if label not in class_set:
            allowed = ",".join(class_set)
            problems.append(Problem(uid, dialogue, where, f"label '{label}' is not one of the classes {allowed}"))
            continue
        audio, video = _relative(base, row["audio"]), _relative(base, row["video"])
        utterances.append(
            Utterance(
                uid=uid, dialogue=dialogue, order=utt, speaker=row["speaker"].strip(), label=label,
                split=split_of[dialogue][0], text=_clean_text(row["text"]), audio=audio or video, video=video,
                segment=None, where=where, text_source=where,
            )
        )
    has_dev = any(s == "dev" for s, _ in split_of.values())
    return Corpus(
        name=path.stem,
        layout="manifest",
        source=path,
        classes=class_set,
        utterances=utterances,
        dev_split={"method": "manifest"} if has_dev else {"method": "none: the loader draws a seeded dev split"},
        problems=problems,
        settings={"classes": "given (--classes)" if classes is not None else "sorted labels of the file"},
    )


def _manifest_rows(path: Path) -> tuple[list[tuple[str, int, dict[str, str], str]], dict[str, tuple[str, str]]]:
    """The rows ``(dialogue, utterance, row, where)`` and each dialogue's ``(split, where first seen)``.

    Refuses what no skip can mend: a duplicate utterance, a bad split, a dialogue in two splits, a file
    without train or test rows.
    """
    seen: dict[tuple[str, int], int] = {}
    split_of: dict[str, tuple[str, str]] = {}
    rows: list[tuple[str, int, dict[str, str], str]] = []
    for lineno, row in _read_csv(path, MANIFEST_COLUMNS):
        where = f"{path}:{lineno}"
        dialogue = row["dialogue"].strip()
        if not dialogue:
            raise DataError(f"{where}: empty 'dialogue'; every row names its dialogue")
        utt = _int_field(row, "utterance", where)
        if (dialogue, utt) in seen:
            raise DataError(
                f"{where}: utterance {utt} of dialogue '{dialogue}' appears twice (first on line {seen[dialogue, utt]}); "
                "utterance ids must be unique"
            )
        seen[dialogue, utt] = lineno
        split = row["split"].strip().lower()
        if split not in SPLITS:
            raise DataError(f"{where}: split '{row['split']}' is not one of {', '.join(SPLITS)}")
        first = split_of.setdefault(dialogue, (split, where))
        if first[0] != split:
            raise DataError(f"{where}: dialogue '{dialogue}' is in split '{split}' here but '{first[0]}' at {first[1]}")
        rows.append((dialogue, utt, row, where))
    if not rows:
        raise DataError(f"{path}: has a header but no rows")
    for split in ("train", "test"):
        if split not in {s for s, _ in split_of.values()}:
            raise DataError(f"{path}: no rows with split '{split}'; a feature file needs train and test dialogues")
    return rows, split_of


# -------------------------------------------------------------------------------------------- helpers


def _read_csv(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a CSV whose header has every ``required`` column (UTF-8, else Windows-1252)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))  # not splitlines(): MELD's text holds U+0085
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)} in the header (needs {','.join(required)})"
        )
    try:
        for row in reader:
            yield reader.line_num, {k: (v or "") for k, v in row.items() if k is not None}
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_bytes().decode("utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _int_field(row: dict[str, str], column: str, where: str) -> int:
    value = row[column].strip()
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{where}: '{column}' is {value!r}, not an integer") from None


def _clean_text(text: str) -> str:
    """Strip, and turn Windows-1252 bytes left as C1 control characters (MELD's CSVs) into the characters meant."""
    return _C1_CONTROLS.sub(lambda m: bytes([ord(m.group())]).decode("cp1252", errors="replace"), text).strip()


def _relative(base: Path, value: str) -> Path | None:
    value = value.strip()
    return (base / value) if value else None


def _first_file(*candidates: Path) -> Path:
    return next((p for p in candidates if p.is_file()), candidates[0])


def _first_dir(*candidates: Path) -> Path:
    return next((p for p in candidates if p.is_dir()), candidates[0])
