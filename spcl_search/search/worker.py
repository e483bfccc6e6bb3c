"""A worker: join a study and run trials until its budget is spent (or a timeout).

Any number of workers on any number of machines may run against one database. Each loop, under the
study lock, a worker fails stale trials (their worker died; they are retried as new trials), counts
the budget (:mod:`spcl_search.search.budget`) and either reserves a slot by starting a trial
(``study.ask``: a waiting retry or enqueued setting first) or waits while other workers' running
trials hold the remaining slots, in case one of them dies and its trial must be retried. A worker
leaves when the budget is spent for good. While a trial runs, a thread records its heartbeat.

SIGTERM and Ctrl-C fail the running trial (``fail_reason`` "interrupted") and enqueue a retry of it,
so an interrupted trial neither counts against the budget nor is lost; the worker then exits non-zero.
A second Ctrl-C ends the process at once (the heartbeat check retries whatever it left running); the
SIGTERM with which ``spcl-search run`` passes a terminal's Ctrl-C on to its workers is not a second one.

A trial that raises (NaN loss, out of GPU or host memory, a bug) is FAIL with ``error`` and
``fail_reason`` and uses its slot; the worker frees memory and goes on. The exception: a trial out of GPU
memory on a GPU packed with others (``--trials-per-gpu`` K > 1) is retried once while its worker leaves, so the
retry runs at K-1 or on another GPU (:mod:`spcl_search.search.packing`). A study database that goes
away is waited for (:mod:`spcl_search.search.retry`); trials whose worker died or was cut off are
failed and retried by the next worker that reserves a slot (:func:`recover_trials`).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import importlib
import logging
import os
import signal
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from spcl_search.errors import ConfigError, DataError, NonFiniteLossError, SpclSearchError, StorageError, StudyFailing
from spcl_search.schema.records import TrialRecord
from spcl_search.schema.spec import StudySpec
from spcl_search.search import budget as budgets
from spcl_search.search import optuna_internals as internals
from spcl_search.search import packing
from spcl_search.search.lock import study_lock
from spcl_search.search.objectives import Trainer, TrainerFactory, TrialProgress, make_objective, real_trainer
from spcl_search.search.registry import WorkerRecord
from spcl_search.search.retry import paused
from spcl_search.search.settings import TRAINER_ENV_VAR
from spcl_search.search.storage_api import StudyStorage
from spcl_search.search.study import budget as study_budget
from spcl_search.search.study import open_study
from spcl_search.tracking import RunTracker, StudyTracker, effective_settings, parse_target, study_tracker

logger = logging.getLogger(__name__)

#: errors that would fail every trial the same way: the worker stops with the one-line message
FATAL_ERRORS = (ConfigError, DataError)
#: ``fail_reason`` of a trial stopped by SIGINT/SIGTERM (retried, unlike the other reasons)
INTERRUPTED = "interrupted"
#: ``fail_reason`` of a trial failed because its worker stopped beating (killed, or cut off past the grace period); retried
HEARTBEAT = "heartbeat"
#: a study whose first this many trials (since a worker joined) all failed with one error stops its workers
REPEATED_FAILURES = 3
#: ``fail_reason``s that never count toward it: the run was stopped, its worker died, or the setting caused it
NOT_REPEATED = (INTERRUPTED, HEARTBEAT, "non_finite_loss", "out_of_memory")


@dataclass
class WorkerOptions:
    """How this worker runs (never part of the study's spec)."""

    device: str = "auto"
    threads: int | None = None
    gpu: str | None = None
    timeout: float | None = None
    poll_interval: float | None = None
    data: str | None = None
    #: workers sharing this worker's GPU (``--trials-per-gpu``): sets the memory cap and the out-of-memory retry
    trials_per_gpu: int = 1
    #: cap of the CUDA allocator as a share of the GPU (default: ``packing.memory_fraction(trials_per_gpu)``)
    memory_fraction: float | None = None


@dataclass
class WorkerReport:
    """What a worker did before it left."""

    study: str
    reason: str = "budget"  # budget | timeout | interrupted | packing (left after a CUDA out-of-memory)
    trials: list[int] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)


class _Heartbeat(threading.Thread):
    """Records the trial's heartbeat (and refreshes the worker record) every interval."""

    def __init__(self, storage: StudyStorage, trial_id: int, beat: Callable[[], None]) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{trial_id}")
        self._storage, self._id, self._beat = storage, trial_id, beat
        self._halt = threading.Event()

    def run(self) -> None:
        interval = self._storage.get_heartbeat_interval() or 30
        with paused():  # no in-place retries: the next beat is the retry
            while not self._halt.wait(interval):
                try:
                    self._storage.record_heartbeat(self._id)
                    self._beat()
                except Exception as exc:  # noqa: BLE001 - a database blip must not kill the trial
                    logger.warning("heartbeat of trial id %s failed (%s); retrying", self._id, type(exc).__name__)

    def stop(self) -> None:
        self._halt.set()
        if self.ident is not None:  # started
            self.join(timeout=10)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached a worker (``signum`` says which)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


class StopSignals:
    """What :func:`sigterm_as_interrupt` has seen: the first signal, and whether it is held back.

    Within :meth:`deferred` the first signal is held until the block ends, so a short database step
    (reserving a trial) is never cut in half and leaves no trial RUNNING that nobody owns.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferring = False
        self._pending = False

    def stop(self, signum: int) -> None:
        """The first signal: raise :class:`Interrupted` now, or when the deferred block ends."""
        self.signum = signum
        if self._deferring:
            self._pending = True
            return
        raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        if self._deferring:
            yield
            return
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            if self._pending:
                self._pending = False
                raise Interrupted(self.signum or signal.SIGINT)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[StopSignals]:
    """Turn the first SIGINT or SIGTERM (Ctrl-C, Slurm's time limit, ``kill``) into :class:`Interrupted`
    in the main thread, and let a second one end the process at once (the default action, which also
    stops a call blocked in the database driver).

    One exception: a SIGTERM that follows a SIGINT is not a second signal. A terminal's Ctrl-C reaches
    ``spcl-search run`` and its workers together, and ``run`` then passes the stop on to its workers with
    SIGTERM; a worker already stopping takes that SIGTERM as the same stop and goes on failing and
    re-enqueueing its trial. A second Ctrl-C (SIGINT) still ends it at once, as does SIGKILL."""
    stop = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    signals = (signal.SIGINT, signal.SIGTERM)

    def passed_on(signum: int, frame: Any) -> None:
        os.write(2, b"SIGTERM after SIGINT: the same stop, passed on; still stopping cleanly (Ctrl-C again quits at once)\n")

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, passed_on if signum == signal.SIGINT else signal.SIG_DFL)
        os.write(2, f"{signal.Signals(signum).name}: stopping cleanly; Ctrl-C again quits at once\n".encode())
        stop.stop(signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _dataset_fingerprint(dataset: Any) -> str | None:
    info = getattr(dataset, "info", None) or {}
    value = info.get("sha256")
    return str(value) if value else None


def _check_dataset(study: optuna.Study, spec: StudySpec, dataset: Any) -> None:
    missing = sorted({c for m in spec.modalities for c in m} - set(dataset.modalities))
    if missing:
        raise ConfigError(f"study {spec.name!r} trains {', '.join(spec.modalities)} but the features have no {''.join(missing)} modality")
    known = ("iemocap", "meld", "synthetic")
    if spec.dataset in known and dataset.name in known and dataset.name != spec.dataset:
        raise ConfigError(f"study {spec.name!r} is on {spec.dataset} but the features are {dataset.name}; pass the right --data file")
    fingerprint = _dataset_fingerprint(dataset)
    stored = study.user_attrs.get("data_sha256")
    if fingerprint and stored and fingerprint != stored:
        raise ConfigError(
            f"study {spec.name!r} was created on another feature file (sha256 {stored[:12]}..., this one {fingerprint[:12]}...); "
            "pass the same --data file or pick a new --study name"
        )
    if fingerprint and not stored:
        study.set_user_attr("data_sha256", fingerprint)


def load_trainer(spec: StudySpec, study: optuna.Study, options: WorkerOptions, dataset: Any = None) -> Trainer:
    """Real training on ``dataset`` (the study's feature file, loaded if None), checked against the study."""
    if dataset is None:
        from spcl_search.data.load import load_dataset

        source = options.data or spec.data
        if not source:
            raise ConfigError(f"study {spec.name!r} needs its feature file: pass --data PATH")
        dataset = load_dataset(source)
    _check_dataset(study, spec, dataset)
    device = options.device
    if options.gpu is not None:
        os.environ.update(packing.gpu_environment(options.gpu))  # one GPU per worker: the others hidden
        device = "cuda"
    return real_trainer(spec, dataset, device=device, threads=options.threads)


def trainer_from_env() -> TrainerFactory | None:
    """The trainer factory ``$SPCL_SEARCH_TRAINER`` names as ``module:attribute`` (tests and benchmarks use it to
    give worker processes a simulated trainer), or None when it is not set."""
    target = os.environ.get(TRAINER_ENV_VAR)
    if not target:
        return None
    module, _, attr = target.partition(":")
    try:
        factory: TrainerFactory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"${TRAINER_ENV_VAR}={target!r}: cannot load it ({exc}); give module:factory or unset it") from None
    return factory


def recover_trials(study: optuna.Study, storage: StudyStorage) -> None:
    """Under the study lock: fail the trials whose worker is gone and give each a retry.

    * a stale heartbeat: failed as Optuna's heartbeat check fails it, with ``fail_reason`` "heartbeat", and
      the storage's callback enqueues the retry;
    * no heartbeat at all, started over a grace period ago: a worker killed or cut off between starting
      the trial and its first heartbeat (Optuna's check never fails those); also "heartbeat";
    * FAIL as interrupted, or by the heartbeat check, without a retry yet: a worker died or lost the
      database between the two steps. Trials that failed by themselves (``error``) are not retried.
    """
    grace = float(storage.grace_period or 2 * (storage.get_heartbeat_interval() or 30))
    sid = internals.study_id(study)
    stale, orphans = storage.stale_trial_ids(sid), storage.orphan_trial_ids(sid, grace)
    callback = storage.get_heartbeat_stale_trial_callback()
    for trial_id in stale:
        if _fail_for_silence(storage, trial_id, f"no heartbeat for over {grace:.0f} s (its worker died or lost the database)"):
            if callback is not None:
                callback(study, copy.deepcopy(storage.get_trial(trial_id)))
    for orphan in orphans:
        _fail_for_silence(storage, orphan, f"no heartbeat since it started over {grace:.0f} s ago (its worker died before the first)")
    if callback is None:
        return
    trials = study.get_trials(deepcopy=False)
    retried = budgets.retried_numbers(trials)
    for t in trials:
        if t.state == TrialState.FAIL and t.number not in retried:
            if t.user_attrs.get("fail_reason") in (INTERRUPTED, HEARTBEAT) or "error" not in t.user_attrs:
                callback(study, copy.deepcopy(t))  # it applies the retry limit
            elif packing.oom_retry_due(t):
                again = copy.deepcopy(t)
                again.user_attrs = {**again.user_attrs, packing.RETRIED_AFTER: packing.OUT_OF_MEMORY}  # once only
                callback(study, again)


def _fail_for_silence(storage: StudyStorage, trial_id: int, error: str) -> bool:
    """Fail a running trial whose worker went silent, saying so (``fail_reason`` "heartbeat"); False if another worker
    finished it first. The attrs go first: a finished trial takes none."""
    try:
        storage.set_trial_user_attrs(trial_id, {"fail_reason": HEARTBEAT, "error": error})
        return bool(storage.set_trial_state_values(trial_id, TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


@dataclass
class _Pending:
    """A trial this worker started in an attempt that then lost the database or the study lock."""

    trial: optuna.Trial | None = None


def _still_ours(storage: StudyStorage, trial: optuna.Trial, counts: budgets.BudgetCounts, n_trials: int) -> bool:
    """Whether the pending ``trial`` keeps its slot. Started while the lock was (maybe) lost, it goes
    back to WAITING if that let the study over its budget; gone if another worker failed it meanwhile."""
    if storage.get_trial(internals.trial_id(trial)).state != TrialState.RUNNING:
        return False
    if counts.used <= n_trials:
        return True
    storage.set_trial_state_values(internals.trial_id(trial), TrialState.WAITING)
    logger.warning("trial %d was started while the study lock was lost and the budget is full: put back", trial.number)
    return False


def repeated_failure(trials: list[FrozenTrial], before: frozenset[int], n: int = REPEATED_FAILURES) -> str | None:
    """The error with which the first ``n`` trials to finish after ``before`` (the trials finished when the
    worker joined) all failed, or None. Interrupted trials, those whose worker died (failed by the heartbeat
    check, and retried) and those a setting can cause (a diverging loss, running out of memory: their messages are
    alike whatever the setting) are no such error."""
    fresh = [
        t
        for t in trials
        if t.state.is_finished() and t.number not in before and t.datetime_complete is not None
        if t.state != TrialState.FAIL or ("error" in t.user_attrs and t.user_attrs.get("fail_reason") not in NOT_REPEATED)
    ]
    first = sorted(fresh, key=lambda t: (t.datetime_complete, t.number))[:n]
    errors = {str(t.user_attrs.get("error")) for t in first if t.state == TrialState.FAIL}
    if len(first) == n and all(t.state == TrialState.FAIL for t in first) and len(errors) == 1:
        return errors.pop()
    return None


def _reserve(
    study: optuna.Study, storage: StudyStorage, study_id: int, pending: _Pending | None = None, before: frozenset[int] | None = None
) -> tuple[optuna.Trial | None, bool]:
    """Under the study lock: recover dead workers' trials, then start a trial if a slot is free.

    Returns ``(trial, done)``: ``done`` when the budget is spent for good. Redo it from the start after
    a transient storage error (``storage.retrying``): a trial an earlier attempt started is in ``pending``.
    With ``before`` (the trials finished when the worker joined), raises :class:`StudyFailing` once the
    first trials finished since all failed with the same error (:func:`repeated_failure`).
    """
    pending = pending if pending is not None else _Pending()
    with study_lock(storage, study.study_name):
        recover_trials(study, storage)
        n_trials = study_budget(storage, study_id)
        trials = study.get_trials(deepcopy=False)
        error = None if before is None or pending.trial is not None else repeated_failure(trials, before)
        if error is not None:
            raise StudyFailing(
                f"the first {REPEATED_FAILURES} trials of study {study.study_name!r} failed with the same error, so its workers stop: "
                f"{error}"
            )
        counts = budgets.count(trials)
        trial = pending.trial
        if trial is not None and not _still_ours(storage, trial, counts, n_trials):
            pending.trial = trial = None
            counts = budgets.count(study.get_trials(deepcopy=False))
        if trial is None:
            if budgets.is_done(counts, n_trials):
                return None, True
            if not budgets.may_start(counts, n_trials):
                return None, False
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = study.ask()
            pending.trial = trial
        # the first heartbeat before the lock goes: a trial never runs without one
        storage.record_heartbeat(internals.trial_id(trial))
    pending.trial = None  # the lock was held throughout: the slot is ours
    return trial, False


def _recover_locked(study: optuna.Study, storage: StudyStorage) -> None:
    with study_lock(storage, study.study_name):
        recover_trials(study, storage)


def fail_reason(exc: BaseException) -> str:
    """``fail_reason`` user attr of a trial that raised ``exc``."""
    torch = sys.modules.get("torch")
    if isinstance(exc, MemoryError) or (torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)):
        return "out_of_memory"
    if isinstance(exc, NonFiniteLossError):
        return "non_finite_loss"
    if isinstance(exc, ConfigError):
        return "config_error"
    if isinstance(exc, DataError):
        return "data_error"
    return "error"


def release_memory() -> None:
    """Give back what a trial that ran out of memory left: Python garbage and PyTorch's CUDA cache."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _run_trial(
    study: optuna.Study,
    storage: StudyStorage,
    trial: optuna.Trial,
    objective: Callable[[optuna.Trial], Any],
    record: WorkerRecord,
    study_id: int,
    hooks: _TrialHooks | None = None,
) -> tuple[TrialState, bool]:
    """Run ``trial``; returns its state and whether this worker should leave (a CUDA out-of-memory retried
    at lower packing)."""
    heartbeat = _Heartbeat(storage, internals.trial_id(trial), lambda: record.publish(storage, study_id))
    start = time.perf_counter()
    values: Any = None
    state = TrialState.COMPLETE
    fatal: BaseException | None = None
    final: dict[str, Any] = {}
    taken = False
    try:  # an interrupt anywhere in here reaches run_worker, which fails and re-enqueues the trial
        internals.set_trial_user_attrs(trial, {"worker": record.label, **({"gpu": record.gpu} if record.gpu is not None else {})})
        progress = {"epoch": None, "epochs": None, "part": None, "dev_f1": None}
        record.publish(storage, study_id, state="running", trial=trial.number, trial_started=time.time(), **progress)
        heartbeat.start()
        if hooks is not None:
            hooks.started(trial)
        values = objective(trial)
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except optuna.exceptions.UpdateFinishedTrialError:
        taken = True
    except StorageError:
        raise  # the database stayed away past the deadline: the heartbeat check retries the trial
    except Exception as exc:  # a failed trial is recorded, the worker goes on
        state = TrialState.FAIL
        final["fail_reason"] = fail_reason(exc)
        final["error"] = f"{type(exc).__name__}: {exc}"[:500]
        if packing.is_cuda_oom(exc):
            final.update(packing.oom_attrs(record.packing))
        logger.warning("trial %d failed (%s): %s: %s", trial.number, final["fail_reason"], type(exc).__name__, exc)
        if isinstance(exc, FATAL_ERRORS):
            fatal = exc
        elif not isinstance(exc, SpclSearchError):
            logger.debug("trial %d traceback", trial.number, exc_info=True)
    finally:
        heartbeat.stop()
    if final.get("fail_reason") == "out_of_memory":
        release_memory()
    final["trial_seconds"] = round(time.perf_counter() - start, 3)
    if not taken:
        try:
            internals.set_trial_user_attrs(trial, final)
            frozen = study.tell(trial, values) if state == TrialState.COMPLETE else study.tell(trial, state=state)
            state = frozen.state
            logger.info("%s", finished_line(frozen, study.metric_names))
            if hooks is not None:
                hooks.finished(frozen)
        except optuna.exceptions.UpdateFinishedTrialError:
            taken = True
    if taken:
        if hooks is not None:
            hooks.finished(storage.get_trial(internals.trial_id(trial)))
        logger.warning(
            "trial %d was failed by the heartbeat check while this worker could not reach the database; its retry runs it again",
            trial.number,
        )
        return TrialState.FAIL, False
    if fatal is not None:
        raise fatal
    if final.get("oom") and record.packing > 1 and trial.user_attrs.get(packing.RETRIED_AFTER) != packing.OUT_OF_MEMORY:
        storage.retrying(lambda: _recover_locked(study, storage), "enqueue the retry of a trial out of GPU memory")
        logger.warning(
            "trial %d ran out of GPU memory with %d workers on GPU %s: it is retried once, and this worker leaves so the GPU runs %d",
            trial.number,
            record.packing,
            record.gpu if record.gpu is not None else "?",
            record.packing - 1,
        )
        return state, True
    return state, False


def finished_line(trial: FrozenTrial, metric_names: list[str] | None = None) -> str:
    """One log line on a finished trial: number, state, seconds, value(s) and params, e.g.
    ``trial 5 COMPLETE in 41.2 s: dev_f1 61.23; cl_threshold=0.7, cl_growth=1.3``; a pruned trial gives its
    best dev F1 and the epoch it stopped at, a failed one its error."""
    record = TrialRecord.of(trial)
    seconds = record.trial_seconds
    head = f"trial {trial.number} {trial.state.name}" + ("" if seconds is None else f" in {seconds:.1f} s")
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        names = metric_names or (["value"] if len(trial.values) == 1 else [f"value {i}" for i in range(len(trial.values))])
        what = ", ".join(f"{n} {v:.2f}" for n, v in zip(names, trial.values))
    elif trial.state == TrialState.PRUNED:
        run = next(iter(record.sets.values()), None)
        what = "pruned" if run is None or run.dev_f1 is None else f"dev F1 {run.dev_f1:.2f} by epoch {run.epochs}"
    else:
        what = f"{record.fail_reason or 'error'}: {record.error or '-'}"
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    return f"{head}: {what}" + (f"; {params}" if params else "") + ("" if record.use_cl else " (no-SPCL baseline)")


def _interrupted(study: optuna.Study, storage: StudyStorage, trial: optuna.Trial, seconds: float) -> None:
    """Fail an interrupted trial and enqueue its retry (a second signal ends the process meanwhile)."""
    if storage.get_trial(internals.trial_id(trial)).state != TrialState.RUNNING:
        return  # told already, or failed by the heartbeat check (which enqueued the retry)
    logger.warning("trial %d interrupted: failing it and enqueueing its retry", trial.number)
    attrs = {"error": "interrupted (SIGTERM or Ctrl-C); retried", "fail_reason": INTERRUPTED, "trial_seconds": round(seconds, 3)}
    try:
        internals.set_trial_user_attrs(trial, attrs)
        study.tell(trial, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # already failed by the heartbeat check, which enqueued the retry
    storage.retrying(lambda: _recover_locked(study, storage), "enqueue the retry of an interrupted trial")


#: seconds between the worker record's writes of a running trial's progress (the heartbeat writes it too)
PROGRESS_EVERY = 5.0


class _TrialHooks:
    """What happens around each trial besides training: the worker record's progress (written at most every
    :data:`PROGRESS_EVERY` seconds; a lost write is harmless, the next one or the heartbeat brings it) and, with
    tracking on, the trial's tracked run (:mod:`spcl_search.tracking`, which never fails a trial)."""

    def __init__(self, storage: StudyStorage, study_id: int, record: WorkerRecord, spec: StudySpec, tracker: StudyTracker | None) -> None:
        self.storage, self.study_id, self.record, self.spec, self.tracker = storage, study_id, record, spec, tracker
        self.run: RunTracker | None = None

    def started(self, trial: optuna.Trial) -> None:
        if self.tracker is not None:
            self.run = self.tracker.trial(trial.number, worker=self.record.label, gpu=self.record.gpu)

    def epoch(self, p: TrialProgress) -> None:
        self.record.epoch, self.record.epochs, self.record.part, self.record.dev_f1 = p.epoch, p.epochs, p.part, round(p.dev_f1, 4)
        if time.time() - self.record.last_seen >= PROGRESS_EVERY:
            with contextlib.suppress(Exception), paused():  # never hold a trial up for its progress
                self.record.publish(self.storage, self.study_id)
        if self.run is not None:
            self.run.epoch(p.modalities if p.n_seeds == 1 else f"{p.modalities}_seed{p.seed}", p.epoch, p.record)

    def finished(self, trial: FrozenTrial) -> None:
        """``trial`` as stored once it ended (complete, pruned, failed or interrupted)."""
        if self.run is not None:
            self.run.finish_trial(trial, effective_settings(self.spec, trial.params, TrialRecord.of(trial).use_cl))
            self.run = None


def _default_poll(storage: StudyStorage) -> float:
    return float(min(5.0, max(0.5, (storage.get_heartbeat_interval() or 10) / 2)))


def run_worker(
    storage: StudyStorage,
    study_name: str | None = None,
    options: WorkerOptions | None = None,
    *,
    requested: Mapping[str, Any] | None = None,
    dataset: Any = None,
    trainer: TrainerFactory | None = None,
    on_trial: Callable[[int, TrialState], None] | None = None,
) -> WorkerReport:
    """Join study ``study_name`` (or create the one ``requested`` describes) and run its trials.

    ``storage`` must have heartbeats on (:func:`spcl_search.search.storage.open_storage`). Returns
    when the study's budget is spent, after ``options.timeout`` seconds (no new trial starts after
    it), or raises KeyboardInterrupt after failing and re-enqueueing the running trial. ``trainer`` builds the
    trainer from the study's spec (default: ``$SPCL_SEARCH_TRAINER``, else real training on ``dataset``).
    """
    options = options or WorkerOptions()
    if storage.get_heartbeat_interval() is None:
        raise ConfigError("a worker needs a storage with heartbeats; open it with open_storage(heartbeat_interval=...)")
    req = dict(requested or {})
    if study_name:
        req["name"] = study_name
    opened = storage.retrying(lambda: open_study(storage, req), "open the study")
    for note in opened.notes:
        logger.info("%s", note)
    study, spec = opened.study, opened.spec
    study_id = storage.get_study_id_from_name(study.study_name)
    if options.gpu is not None:
        os.environ.update(packing.gpu_environment(options.gpu))  # before anything starts CUDA
    factory = trainer or trainer_from_env()
    record = WorkerRecord(gpu=options.gpu, threads=options.threads, packing=options.trials_per_gpu, grace_period=storage.grace_period)
    target = parse_target(spec.track, "track")
    tracker = study_tracker(target, spec, study.study_name) if target is not None else None
    if tracker is not None:
        tracker.open()  # outside the study lock: nothing waits on the network while holding it
        logger.info("trials tracked with %s", target)
    hooks = _TrialHooks(storage, study_id, record, spec, tracker)
    objective = make_objective(spec, factory(spec) if factory else load_trainer(spec, study, options, dataset), progress=hooks.epoch)
    cap = options.memory_fraction if options.memory_fraction is not None else packing.memory_fraction(options.trials_per_gpu)
    if packing.cap_memory(cap):
        logger.info("CUDA allocator capped at %.0f%% of the GPU (%d workers share it)", 100 * (cap or 1), options.trials_per_gpu)
    poll = options.poll_interval or _default_poll(storage)
    report = WorkerReport(study=study.study_name)
    stop_at = None if options.timeout is None else time.monotonic() + options.timeout
    pending = _Pending()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # workers that start together should not all wake at the same instant
    jitter = (zlib.crc32(record.key.encode()) % 1000) / 1000 * poll * 0.2
    logger.info("worker %s joined study %r (budget %d trials)", record.label, study.study_name, spec.n_trials)
    active: optuna.Trial | None = None  # the trial this worker runs, until it is told
    before = frozenset(t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished())
    started = time.perf_counter()
    with sigterm_as_interrupt() as signals:

        def reserve() -> tuple[optuna.Trial | None, bool]:
            nonlocal active, started
            with signals.deferred():  # a signal waits for the trial to be reserved (or not), never half way
                trial, done = _reserve(study, storage, study_id, pending, before)
                if trial is not None:  # ours before a held-back signal is raised at the block's end
                    active, started = trial, time.perf_counter()
                return trial, done

        try:
            while True:
                if stop_at is not None and time.monotonic() >= stop_at:
                    report.reason = "timeout"
                    break
                trial, done = storage.retrying(reserve, "reserve a trial")
                if done:
                    report.reason = "budget"
                    break
                if trial is None:
                    if record.state != "waiting" or time.time() - record.last_seen > min(5 * poll, (record.grace_period or 120) / 2):
                        record.publish(storage, study_id, state="waiting", trial=None)
                    time.sleep(poll + jitter)
                    continue
                state, leave = _run_trial(study, storage, trial, objective, record, study_id, hooks)
                active = None
                report.trials.append(trial.number)
                report.states[state.name] = report.states.get(state.name, 0) + 1
                record.trials_done += 1
                if on_trial is not None:
                    on_trial(trial.number, state)
                if leave:
                    report.reason = "packing"
                    break
        except KeyboardInterrupt:
            report.reason = "interrupted"
            for left in {id(t): t for t in (active, pending.trial) if t is not None}.values():  # the trial it ran (or had
                # just reserved when the signal came); one a lost attempt started
                _interrupted(study, storage, left, time.perf_counter() - started)
            if active is not None:
                with contextlib.suppress(Exception), paused():  # tracking is best effort; the interrupt goes on
                    hooks.finished(storage.get_trial(internals.trial_id(active)))
            raise
        finally:
            with contextlib.suppress(Exception), paused():  # best effort: never wait for the database here
                record.publish(storage, study_id, state="exited", trial=None)
    if tracker is not None:
        tracker.close(finished=report.reason == "budget")
    return report
