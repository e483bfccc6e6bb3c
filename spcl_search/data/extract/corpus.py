"""What a layout reader gives the extractors: utterances with their labels, text and media files.

A :class:`Corpus` is layout-independent: the IEMOCAP, MELD and manifest readers
(:mod:`spcl_search.data.extract.layouts`) all produce one, and everything after them (checks, feature
extraction, the output file) sees only this. Utterances a reader leaves out *by design* (IEMOCAP turns
labelled outside the six classes) are counted in ``dropped``; utterances with a defect (a label outside
the class set, an empty transcript, a missing or unreadable file) become :class:`Problem` records, which
stop the run or, with ``--on-error skip``, are left out and listed in the output's ``meta``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SPLITS", "Corpus", "Problem", "Utterance"]

#: Split names a corpus uses; ``dev`` dialogues are written to ``validVid`` (and kept in ``trainVid``).
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Utterance:
    """One utterance of a dialogue and where its inputs are.

    ``uid`` is unique in the corpus (IEMOCAP ``Ses01F_impro01_F000``, MELD ``train/dia0_utt0``, manifest
    ``<dialogue>/<utterance>``) and names the ``.npy`` that ``--visual-from`` reads. ``audio`` is the
    file whose (first) audio track is used, a wav or a video; ``video`` the file whose video track is
    used, with ``segment`` (start, end seconds) when the video holds the whole dialogue (IEMOCAP).
    ``where`` says where the utterance was declared (``file:line``) and ``text_source`` where its text
    is (the same, or IEMOCAP's transcription file), for error messages.
    """

    uid: str
    dialogue: str
    order: float
    speaker: str
    label: str
    split: str
    text: str
    audio: Path | None
    video: Path | None
    segment: tuple[float, float] | None
    where: str
    text_source: str


@dataclass(frozen=True)
class Problem:
    """A defect of one utterance: its id, the file or line at fault and why."""

    uid: str
    dialogue: str
    file: str
    reason: str

    def line(self) -> str:
        """The one-line message: the file at fault first, then why, then which utterance."""
        return f"{self.file}: {self.reason} (utterance {self.uid})"

    def to_dict(self) -> dict[str, str]:
        return {"utterance": self.uid, "dialogue": self.dialogue, "file": self.file, "reason": self.reason}


@dataclass
class Corpus:
    """A corpus read from one of the layouts, before any feature is extracted.

    ``utterances`` are in dialogue order, then in order within each dialogue. ``classes`` fixes the
    label indices. ``dev_split`` records how the dev dialogues were chosen, ``settings`` the reader's
    options; both go into the output's ``meta``.
    """

    name: str
    layout: str
    source: Path
    classes: tuple[str, ...]
    utterances: list[Utterance]
    dev_split: dict[str, Any]
    dropped: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """The folder every input must resolve into (the release folder; the manifest CSV's folder)."""
        return self.source if self.source.is_dir() else self.source.parent

    def outside(self, u: Utterance) -> tuple[str, Path] | None:
        """``(column, path)`` of the first input of ``u`` that resolves (symlinks followed) outside :attr:`root`."""
        root = self.root.resolve()
        for column, path in (("audio", u.audio), ("video", u.video)):
            if path is not None and not path.resolve().is_relative_to(root):
                return column, path
        return None

    def dialogues(self) -> dict[str, list[Utterance]]:
        """Utterances grouped by dialogue, in corpus order."""
        groups: dict[str, list[Utterance]] = {}
        for u in self.utterances:
            groups.setdefault(u.dialogue, []).append(u)
        return groups
