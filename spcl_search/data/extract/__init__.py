"""Make SPCL feature files from raw dialogues: ``spcl-search data extract``.

Read a corpus (:mod:`~spcl_search.data.extract.layouts`: the IEMOCAP or MELD release, or a manifest CSV),
extract text (:mod:`.text`), audio (:mod:`.audio`) and visual (:mod:`.visual`) features offline, with a
resumable per-utterance cache (:mod:`.cache`) and worker processes (:mod:`.runner`), and write an SPCL
dict pickle that ``load_dataset``, ``train`` and ``run`` read (:mod:`.output`). Start with :func:`extract`.
"""

from __future__ import annotations

from spcl_search.data.extract.audio import AUDIO_SETS
from spcl_search.data.extract.corpus import Corpus, Problem, Utterance
from spcl_search.data.extract.layouts import LAYOUTS, MANIFEST_COLUMNS, read_corpus
from spcl_search.data.extract.media import MediaError
from spcl_search.data.extract.output import ExtractSummary
from spcl_search.data.extract.runner import (
    ExtractOptions,
    ExtractProgress,
    extract,
    extract_corpus,
)
from spcl_search.data.extract.text import DEFAULT_TEXT_MODEL

__all__ = [
    "AUDIO_SETS",
    "DEFAULT_TEXT_MODEL",
    "LAYOUTS",
    "MANIFEST_COLUMNS",
    "Corpus",
    "ExtractOptions",
    "ExtractProgress",
    "ExtractSummary",
    "MediaError",
    "Problem",
    "Utterance",
    "extract",
    "extract_corpus",
    "read_corpus",
]
