"""Run an extraction: check every utterance, extract what the cache lacks (in worker processes), write the file.

:func:`extract` is the whole job (read a layout, extract, write ``out`` atomically); :func:`extract_corpus`
does the middle part on a :class:`~spcl_search.data.extract.corpus.Corpus` and returns the SPCL dict.

The work is cut into tasks: one per utterance for audio and visual, one per batch of sentences for text.
Each finished task is stored in the :class:`~spcl_search.data.extract.cache.FeatureCache` by the process
that ran it, so a run that is killed or stopped by an error resumes from where it was; tasks already in
the cache are not run again. With ``jobs > 1`` tasks run in that many worker processes (started with
``spawn``: each loads its own models, and torch's threads are split between them).

Utterance defects (a label outside the class set, an empty transcript, a missing or undecodable file) stop
the run with one line naming the file (``on_error="raise"``, the default, checked before any work where
possible) or, with ``on_error="skip"``, leave the utterance out and list it in ``meta['extraction']['skipped']``.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import spcl_search
from spcl_search.data.extract.audio import audio_spec
from spcl_search.data.extract.base import FeatureSpec
from spcl_search.data.extract.cache import FeatureCache, default_feature_cache, task_key
from spcl_search.data.extract.corpus import Corpus, Problem, Utterance
from spcl_search.data.extract.layouts import read_corpus
from spcl_search.data.extract.media import MediaError
from spcl_search.data.extract.output import (
    ExtractSummary,
    build_features,
    check_loadable,
    summarise,
)
from spcl_search.data.extract.text import DEFAULT_TEXT_MODEL, text_spec
from spcl_search.data.extract.visual import visual_spec
from spcl_search.data.types import MODALITY_NAMES, canonical_modalities
from spcl_search.errors import ConfigError, DataError
from spcl_search.outputs import atomic_write, check_writable

__all__ = ["ExtractOptions", "ExtractProgress", "Task", "extract", "extract_corpus", "make_specs"]

#: Tasks run in this modality order: text first (one model load, fast), then audio and visual per utterance.
_TASK_ORDER = ("t", "a", "v")


@dataclass(frozen=True)
class ExtractOptions:
    """How to extract: which modalities, which models and settings, how many workers, what to do with defects."""

    modalities: str = "atv"
    text_model: str = DEFAULT_TEXT_MODEL
    text_batch: int = 64
    device: str = "cpu"
    audio_set: str = "eGeMAPSv02"
    visual_frames: int = 8
    visual_from: str | None = None
    jobs: int = 1
    cache_dir: str | None = None
    on_error: str = "raise"
    #: read media files that resolve outside the corpus folder (``--allow-outside``)
    allow_outside: bool = False


class ExtractProgress(Protocol):
    """Receives progress in utterances per modality (the CLI draws a progress bar from it)."""

    def start(self, totals: dict[str, int], done: dict[str, int]) -> None:
        """``totals``: utterances to extract per modality; ``done``: how many of them the cache already holds."""
        ...

    def advance(self, modality: str, n: int) -> None:
        """``n`` more utterances of ``modality`` are finished (extracted, or failed and skipped)."""
        ...


@dataclass(frozen=True)
class Task:
    """Some utterances of one modality, extracted together and cached under ``key``."""

    modality: str
    uids: tuple[str, ...]
    inputs: tuple[Any, ...]
    key: str


def make_specs(options: ExtractOptions) -> dict[str, FeatureSpec]:
    """The extractor spec of each requested modality, in task order; a :class:`ConfigError` for a bad option."""
    try:
        modalities = canonical_modalities(options.modalities)
    except ValueError as exc:
        raise ConfigError(f"`modalities`: {exc}") from None
    if options.on_error not in ("raise", "skip"):
        raise ConfigError(f"`on_error` {options.on_error!r} is not one of raise, skip")
    if options.jobs < 1:
        raise ConfigError(f"`jobs` must be at least 1, got {options.jobs}")
    if options.visual_from is not None and "v" not in modalities:
        raise ConfigError("`visual_from` gives visual features, but `modalities` has no 'v'")
    specs: dict[str, FeatureSpec] = {}
    for m in _TASK_ORDER:
        if m not in modalities:
            continue
        if m == "t":
            specs[m] = text_spec(options.text_model, options.text_batch, _device(options.device))
        elif m == "a":
            specs[m] = audio_spec(options.audio_set)
        else:
            specs[m] = visual_spec(options.visual_frames, options.visual_from)
    return specs


def extract(
    layout: str,
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: ExtractOptions = ExtractOptions(),
    *,
    classes: Sequence[str] | None = None,
    merge_exc: bool = False,
    dev_fraction: float = 0.1,
    dev_seed: int = 0,
    force: bool = False,
    progress: ExtractProgress | None = None,
) -> ExtractSummary:
    """Read ``source`` in ``layout``, extract its features and write the SPCL pickle ``out`` atomically.

    Refuses an existing ``out`` unless ``force``. Nothing is written when the run fails. See
    :func:`~spcl_search.data.extract.layouts.read_corpus` for the layout options.
    """
    target = Path(out).expanduser()
    if target.is_dir():
        raise ConfigError(f"`out` {out}: is a folder; give the path of the .pkl to write")
    if target.exists() and not force:
        raise ConfigError(f"{out}: already exists; pass `force` to overwrite it")
    check_writable(target)  # before the work, not after it
    specs = make_specs(options)
    corpus = read_corpus(layout, os.fspath(source), classes=classes, merge_exc=merge_exc, dev_fraction=dev_fraction, dev_seed=dev_seed)
    data, summary = extract_corpus(corpus, options, progress=progress, specs=specs)
    atomic_write(target, lambda f: pickle.dump(data, f, protocol=4))
    summary.out = str(target)
    return summary


def extract_corpus(
    corpus: Corpus,
    options: ExtractOptions = ExtractOptions(),
    *,
    progress: ExtractProgress | None = None,
    specs: dict[str, FeatureSpec] | None = None,
) -> tuple[dict[str, Any], ExtractSummary]:
    """Extract the features of ``corpus``; return the SPCL dict (checked as the loader would) and a summary."""
    start = time.perf_counter()
    specs = make_specs(options) if specs is None else specs
    skipped: list[Problem] = []

    def defect(problem: Problem) -> None:
        if options.on_error == "raise":
            raise DataError(f"{problem.line()}; fix it or pass `on_error` skip to leave such utterances out")
        skipped.append(problem)

    if not options.allow_outside:
        _confined(corpus)
    utterances = _checked(corpus, specs, defect)
    cache = FeatureCache(options.cache_dir if options.cache_dir is not None else default_feature_cache())
    tasks = _plan(utterances, specs)
    arrays = _cached(tasks, specs, cache)
    totals, cached = _count(tasks, specs), _count((t for t in tasks if t.key in arrays), specs)
    if progress is not None:
        progress.start(totals, cached)

    failed: set[str] = set()
    by_uid = {u.uid: u for u in utterances}

    def finished(task: Task, array: np.ndarray | None, failure: tuple[str, str] | None) -> None:
        if failure is not None:
            u = by_uid[task.uids[0]]
            defect(Problem(u.uid, u.dialogue, failure[0], failure[1]))
            failed.update(task.uids)
        else:
            assert array is not None
            arrays[task.key] = array
        if progress is not None:
            progress.advance(task.modality, len(task.uids))

    _run([t for t in tasks if t.key not in arrays], specs, cache, options.jobs, finished)

    kept = [u for u in utterances if u.uid not in failed]
    if not kept:
        raise DataError(f"{corpus.source}: no utterance is left to write (read {len(corpus.utterances)}, skipped {len(skipped)})")
    features: dict[str, dict[str, np.ndarray]] = {u.uid: {} for u in utterances}
    for task in tasks:
        for uid, row in zip(task.uids, arrays.get(task.key, ())):
            features[uid][task.modality] = row
    extraction = {
        "tool": f"spcl-search {spcl_search.__version__}",
        "layout": corpus.layout,
        "source": str(corpus.source),
        "modalities": "".join(m for m in "atv" if m in specs),
        "extractors": {MODALITY_NAMES[m]: spec.describe() for m, spec in specs.items()},
        "dims": {MODALITY_NAMES[m]: d for m, d in _check_dims(kept, features, specs).items()},
        "reader": corpus.settings,
        "dev_split": corpus.dev_split,
        "on_error": options.on_error,
        "dropped": dict(sorted(corpus.dropped.items())),
        "skipped": [p.to_dict() for p in skipped],
    }
    data = build_features(corpus, kept, features, extraction, {m: spec.provenance() for m, spec in specs.items()})
    check_loadable(data, str(corpus.source))
    summary = summarise(corpus, data, extraction)
    summary.computed = {m: totals[m] - cached[m] for m in totals}
    summary.cached = cached
    summary.seconds = round(time.perf_counter() - start, 3)
    summary.jobs = options.jobs
    return data, summary


def _confined(corpus: Corpus) -> None:
    """Refuse an input that resolves outside the corpus folder (``../``, an absolute path, a symlink out): a corpus
    file must not make the extractor read elsewhere on the machine. The error names the row."""
    for u in corpus.utterances:
        found = corpus.outside(u)
        if found is not None:
            column, path = found
            raise DataError(
                f"{u.where}: {column} path {str(path)!r} resolves outside the corpus folder {corpus.root}; "
                "move the file inside it, or pass `allow_outside` if you trust this corpus file"
            )


def _checked(corpus: Corpus, specs: dict[str, FeatureSpec], defect: Callable[[Problem], None]) -> list[Utterance]:
    """The utterances every extractor can take; ``defect`` gets the reader's problems and each one that fails a check."""
    for problem in corpus.problems:
        defect(problem)
    usable: list[Utterance] = []
    for u in corpus.utterances:
        found = next((p for spec in specs.values() if (p := spec.check(u)) is not None), None)
        if found is None:
            usable.append(u)
        else:
            defect(found)
    return usable


def _cached(tasks: list[Task], specs: dict[str, FeatureSpec], cache: FeatureCache) -> dict[str, np.ndarray]:
    """The results the cache already holds, by task key (a damaged or mismatched entry counts as missing)."""
    found = {}
    for task in tasks:
        if specs[task.modality].cacheable:
            hit = cache.get(task.key)
            if hit is not None and hit.shape[0] == len(task.uids):
                found[task.key] = hit
    return found


def _plan(utterances: list[Utterance], specs: dict[str, FeatureSpec]) -> list[Task]:
    """Tasks in run order: text batches of consecutive utterances first, then each utterance's audio and visual."""
    settings = {m: spec.describe() for m, spec in specs.items()}

    def task(spec: FeatureSpec, group: list[Utterance]) -> Task:
        return Task(
            modality=spec.modality,
            uids=tuple(u.uid for u in group),
            inputs=tuple(spec.inputs(u) for u in group),
            key=task_key(settings[spec.modality], [spec.identity(u) for u in group]),
        )

    tasks: list[Task] = []
    if "t" in specs:
        size = specs["t"].batch
        tasks.extend(task(specs["t"], utterances[i : i + size]) for i in range(0, len(utterances), size))
    media = [specs[m] for m in ("a", "v") if m in specs]
    for u in utterances:
        tasks.extend(task(spec, [u]) for spec in media)
    return tasks


def _count(tasks: Iterable[Task], specs: dict[str, FeatureSpec]) -> dict[str, int]:
    """Utterances per modality in ``tasks``."""
    counts = {m: 0 for m in specs}
    for t in tasks:
        counts[t.modality] += len(t.uids)
    return counts


def _check_dims(
    utterances: list[Utterance], features: dict[str, dict[str, np.ndarray]], specs: dict[str, FeatureSpec]
) -> dict[str, int]:
    """Each modality's dim; refuse one whose vectors differ in length (only imported arrays can)."""
    dims: dict[str, int] = {}
    first: dict[str, str] = {}
    for u in utterances:
        for m in specs:
            size = int(features[u.uid][m].shape[0])
            dims.setdefault(m, size)
            first.setdefault(m, u.uid)
            if size != dims[m]:
                raise DataError(
                    f"{specs[m].inputs(u)}: {MODALITY_NAMES[m]} features of {size} values, but {dims[m]} for utterance {first[m]}"
                )
    return dims


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ---------------------------------------------------------------------------------- running the tasks

_WORKER: dict[str, Any] = {}


def _init_worker(specs: dict[str, FeatureSpec], cache_root: str, threads: int | None, pool_worker: bool = False) -> None:
    """Set up a process to run tasks: the specs, the cache, torch's thread count (models load on first use)."""
    if pool_worker:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle: it stops the pool
    _WORKER.clear()
    _WORKER.update(specs=specs, cache=FeatureCache(cache_root), extractors={})
    if threads is not None and "t" in specs:
        import torch

        torch.set_num_threads(threads)


def _run_task(task: Task) -> tuple[Task, np.ndarray | None, tuple[str, str] | None]:
    """Extract one task and cache it; a defect of its input is returned as ``(file, reason)``."""
    spec = _WORKER["specs"][task.modality]
    extractor = _WORKER["extractors"].get(task.modality)
    if extractor is None:
        extractor = _WORKER["extractors"][task.modality] = spec.build()
    try:
        array = np.ascontiguousarray(extractor.extract(task.inputs), dtype=np.float32)
    except MediaError as exc:
        return task, None, (exc.file, exc.reason)
    if array.ndim != 2 or array.shape[0] != len(task.inputs):
        raise RuntimeError(f"{type(extractor).__name__} returned shape {array.shape} for {len(task.inputs)} inputs")
    if spec.cacheable:
        _WORKER["cache"].put(task.key, array)
    return task, array, None


def _run(
    tasks: list[Task],
    specs: dict[str, FeatureSpec],
    cache: FeatureCache,
    jobs: int,
    finished: Callable[[Task, np.ndarray | None, tuple[str, str] | None], None],
) -> None:
    """Run ``tasks`` here (``jobs == 1``) or in ``jobs`` spawned worker processes; report each to ``finished``."""
    if not tasks:
        return
    if jobs == 1:
        _init_worker(specs, str(cache.root), None)
        try:
            for task in tasks:
                finished(*_run_task(task))
        finally:
            _WORKER.clear()
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(specs, str(cache.root), threads, True))
    try:
        # Keep a bounded window in flight, so that stopping early cancels quickly and memory stays flat.
        pending: set[Future[Any]] = set()
        queue = iter(tasks)
        for task in queue:
            pending.add(pool.submit(_run_task, task))
            if len(pending) >= 4 * jobs:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                finished(*future.result())
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(pool.submit(_run_task, nxt))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
