"""A worker: join a study and run trials until its budget is spent (or a timeout).

Any number of workers on any number of machines may run against one database. Each loop, under the
study lock, a worker fails stale trials (their worker died; they are retried as new trials), counts
the budget (:mod:`spcl_search.search.budget`) and either reserves a slot by starting a trial
(``study.ask``: a waiting retry or enqueued setting first) or waits while other workers' running
trials hold the remaining slots, in case one of them dies and its trial must be retried. A worker
leaves when the budget is spent for good. While a trial runs, a thread records its heartbeat.

SIGTERM and Ctrl-C fail the running trial and enqueue a retry of it, so an interrupted trial neither
counts against the budget nor is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from spcl_search.errors import ConfigError, DataError, SpclSearchError
from spcl_search.search import budget as budgets
from spcl_search.search.lock import study_lock
from spcl_search.search.objectives import Trainer, cheap_trainer, make_objective, real_trainer
from spcl_search.search.records import set_user_attrs
from spcl_search.search.registry import WorkerRecord
from spcl_search.search.spec import StudySpec
from spcl_search.search.study import budget as study_budget
from spcl_search.search.study import open_study

logger = logging.getLogger(__name__)

#: errors that would fail every trial the same way: the worker stops with the one-line message
FATAL_ERRORS = (ConfigError, DataError)


@dataclass
class WorkerOptions:
    """How this worker runs (never part of the study's spec)."""

    device: str = "auto"
    threads: int | None = None
    gpu: str | None = None
    timeout: float | None = None
    poll_interval: float | None = None
    data: str | None = None


@dataclass
class WorkerReport:
    """What a worker did before it left."""

    study: str
    reason: str = "budget"  # budget | timeout | interrupted
    trials: list[int] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)


class _Heartbeat(threading.Thread):
    """Records the trial's heartbeat (and refreshes the worker record) every interval."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int, beat: Callable[[], None]) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{trial_id}")
        self._storage, self._trial_id, self._beat = storage, trial_id, beat
        self._halt = threading.Event()

    def run(self) -> None:
        interval = self._storage.get_heartbeat_interval() or 30
        while not self._halt.wait(interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
                self._beat()
            except Exception as exc:  # noqa: BLE001 - a database blip must not kill the trial
                logger.warning("heartbeat of trial id %s failed (%s); retrying", self._trial_id, type(exc).__name__)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (Slurm's time limit, ``kill``) into KeyboardInterrupt in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    """The trainer of ``spec``: the simulated one, or real training on ``dataset`` (loaded if None)."""
    if spec.objective == "cheap":
        return cheap_trainer(spec)
    if dataset is None:
        from spcl_search.data.load import load_dataset

        source = options.data or spec.data
        if not source:
            raise ConfigError(f"study {spec.name!r} needs its feature file: pass --data PATH")
        dataset = load_dataset(source)
    _check_dataset(study, spec, dataset)
    device = options.device
    if options.gpu is not None:
        # one GPU per worker: hide the others before CUDA starts, so nothing lands on GPU 0 by accident
        os.environ["CUDA_VISIBLE_DEVICES"] = str(options.gpu)
        device = "cuda"
    return real_trainer(spec, dataset, device=device, threads=options.threads)


def _reserve(study: optuna.Study, storage: optuna.storages.RDBStorage, study_id: int) -> tuple[optuna.Trial | None, bool]:
    """Under the study lock: fail stale trials, then start a trial if a slot is free.

    Returns ``(trial, done)``: ``done`` when the budget is spent for good.
    """
    with study_lock(storage, study.study_name):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        n_trials = study_budget(storage, study_id)
        counts = budgets.count(study.get_trials(deepcopy=False))
        if budgets.is_done(counts, n_trials):
            return None, True
        if not budgets.may_start(counts, n_trials):
            return None, False
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask()
        # the first heartbeat before the lock goes: a trial never runs without one
        storage.record_heartbeat(trial._trial_id)  # noqa: SLF001 - the id the storage API needs
        return trial, False


def _retry(study: optuna.Study, storage: optuna.storages.RDBStorage, trial: optuna.Trial) -> None:
    """Enqueue a retry of an interrupted (now failed) trial, as the heartbeat check would."""
    callback = storage.get_heartbeat_stale_trial_callback()
    if callback is not None:
        callback(study, storage.get_trial(trial._trial_id))  # noqa: SLF001


def _run_trial(
    study: optuna.Study,
    storage: optuna.storages.RDBStorage,
    trial: optuna.Trial,
    objective: Callable[[optuna.Trial], Any],
    record: WorkerRecord,
    study_id: int,
) -> TrialState:
    trial.set_user_attr("worker", record.label)
    record.publish(storage, study_id, state="running", trial=trial.number)
    heartbeat = _Heartbeat(storage, trial._trial_id, lambda: record.publish(storage, study_id))  # noqa: SLF001
    heartbeat.start()
    start = time.perf_counter()
    values: Any = None
    state = TrialState.COMPLETE
    fatal: BaseException | None = None
    error: str | None = None
    try:
        values = objective(trial)
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except KeyboardInterrupt:
        heartbeat.stop()
        set_user_attrs(trial, {"error": "interrupted (SIGTERM or Ctrl-C); retried", "trial_seconds": round(time.perf_counter() - start, 3)})
        study.tell(trial, state=TrialState.FAIL)
        _retry(study, storage, trial)
        raise
    except Exception as exc:  # noqa: BLE001 - a failed trial is recorded, the worker goes on
        state = TrialState.FAIL
        error = f"{type(exc).__name__}: {exc}"[:500]
        logger.warning("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
        if isinstance(exc, FATAL_ERRORS):
            fatal = exc
        elif not isinstance(exc, SpclSearchError):
            logger.debug("trial %d traceback", trial.number, exc_info=True)
    finally:
        heartbeat.stop()
    final: dict[str, Any] = {"trial_seconds": round(time.perf_counter() - start, 3)}
    if error is not None:
        final["error"] = error
    set_user_attrs(trial, final)
    if state == TrialState.COMPLETE:
        frozen = study.tell(trial, values)
    else:
        frozen = study.tell(trial, state=state)
    if fatal is not None:
        raise fatal
    return frozen.state


def _default_poll(storage: optuna.storages.RDBStorage) -> float:
    return float(min(5.0, max(0.5, (storage.get_heartbeat_interval() or 10) / 2)))


def run_worker(
    storage: optuna.storages.RDBStorage,
    study_name: str | None = None,
    options: WorkerOptions | None = None,
    *,
    requested: Mapping[str, Any] | None = None,
    dataset: Any = None,
    on_trial: Callable[[int, TrialState], None] | None = None,
) -> WorkerReport:
    """Join study ``study_name`` (or create the one ``requested`` describes) and run its trials.

    ``storage`` must have heartbeats on (:func:`spcl_search.search.storage.open_storage`). Returns
    when the study's budget is spent, after ``options.timeout`` seconds (no new trial starts after
    it), or raises KeyboardInterrupt after failing and re-enqueueing the running trial.
    """
    options = options or WorkerOptions()
    if storage.get_heartbeat_interval() is None:
        raise ConfigError("a worker needs a storage with heartbeats; open it with open_storage(heartbeat_interval=...)")
    req = dict(requested or {})
    if study_name:
        req["name"] = study_name
    opened = open_study(storage, req)
    for note in opened.notes:
        logger.info("%s", note)
    study, spec = opened.study, opened.spec
    study_id = storage.get_study_id_from_name(study.study_name)
    trainer = load_trainer(spec, study, options, dataset)
    objective = make_objective(spec, trainer)
    poll = options.poll_interval or _default_poll(storage)
    record = WorkerRecord(gpu=options.gpu, threads=options.threads)
    report = WorkerReport(study=study.study_name)
    deadline = None if options.timeout is None else time.monotonic() + options.timeout
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # workers that start together should not all wake at the same instant
    jitter = (zlib.crc32(record.key.encode()) % 1000) / 1000 * poll * 0.2
    logger.info("worker %s joined study %r (budget %d trials)", record.label, study.study_name, spec.n_trials)
    with sigterm_as_interrupt():
        try:
            while True:
                if deadline is not None and time.monotonic() >= deadline:
                    report.reason = "timeout"
                    break
                trial, done = _reserve(study, storage, study_id)
                if done:
                    report.reason = "budget"
                    break
                if trial is None:
                    if record.state != "waiting" or time.time() - record.last_seen > 5 * poll:
                        record.publish(storage, study_id, state="waiting", trial=None)
                    time.sleep(poll + jitter)
                    continue
                state = _run_trial(study, storage, trial, objective, record, study_id)
                report.trials.append(trial.number)
                report.states[state.name] = report.states.get(state.name, 0) + 1
                record.trials_done += 1
                logger.info("trial %d %s", trial.number, state.name)
                if on_trial is not None:
                    on_trial(trial.number, state)
        except KeyboardInterrupt:
            report.reason = "interrupted"
            raise
        finally:
            with contextlib.suppress(Exception):
                record.publish(storage, study_id, state="exited", trial=None)
    return report
