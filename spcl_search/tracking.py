"""Experiment tracking: every trial an MLflow run nested under its study's run (``--track mlflow[:URI]``).

A study's runs live in the MLflow experiment named after the study: one run for the study itself (tag
``spcl.role = study``: the effective spec as params, the HTML report as an artifact when ``report`` runs) and one
run per trial nested under it (tag ``mlflow.parentRunId``), holding

* params: the trial's effective settings (its searched values over the study's protocol and switches);
* per-epoch metrics ``train_loss_<set>``, ``dev_f1_<set>``, ``take_rate_<set>``, ``threshold_<set>`` (step: the
  epoch, counted from 1; a trial of several seeds has them per seed: ``dev_f1_<set>_seed<S>``);
* final metrics: ``final_dev_f1_<set>``, ``final_test_f1_<set>`` (test at the best dev epoch), the accuracies,
  ``best_epoch_<set>``, the gain, the objective values (``objective_0``, ...);
* tags ``study``, ``trial``, ``worker``, ``gpu``, ``form``, ``method``, ``state``; the run ends FINISHED (complete),
  KILLED (pruned or interrupted) or FAILED.

``spcl-search train --track`` logs one run the same way (experiment ``spcl-search-train``). The default URI is
the folder ``mlruns/`` in the working directory (MLflow's file store): nothing leaves the machine unless ``URI``
points elsewhere (``http://host:5000``, ``sqlite:///mlflow.db``). Tracking never fails a trial: a backend that
cannot be reached is one warning, the trial goes on untracked, and the next trial tries again.

The worker, ``train`` and ``report`` see only :class:`StudyTracker` / :class:`RunTracker`; MLflow is imported
when a tracker is made (the ``track`` extra), so the core works without it. Another backend is one more pair of
classes and an entry in :data:`BACKENDS`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from spcl_search.errors import ConfigError
from spcl_search.schema.track import BACKENDS, Target, parse_target

__all__ = ["BACKENDS", "EXTRA", "RunTracker", "StudyTracker", "Target", "parse_target", "require", "study_tracker", "training_tracker"]

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from spcl_search.results import EpochRecord, TrainResult
    from spcl_search.schema.spec import StudySpec

logger = logging.getLogger(__name__)

#: the package extra that installs the backends
EXTRA = "track"
#: the experiment of ``spcl-search train`` runs
TRAIN_EXPERIMENT = "spcl-search-train"
#: tag of the run that stands for a study
ROLE_TAG = "spcl.role"

T = TypeVar("T")


class RunTracker(Protocol):
    """One tracked run (a trial's, or ``train``'s): per-epoch figures of a training ``run`` (a modality set, with
    ``_seed<S>`` when the trial trains several seeds; ``step``: the epoch, counted from 1), then the end."""

    def epoch(self, run: str, step: int, record: EpochRecord) -> None: ...

    def finish_trial(self, trial: FrozenTrial, settings: Mapping[str, Any]) -> None: ...

    def finish_training(self, result: TrainResult) -> None: ...


class StudyTracker(Protocol):
    """A study's runs: its own (found, or made once), one per trial, the report."""

    def open(self) -> None: ...

    def trial(self, number: int, *, worker: str, gpu: str | None) -> RunTracker: ...

    def log_report(self, page: Path) -> bool: ...

    def close(self, finished: bool) -> None: ...


def require(target: Target | None) -> None:
    """A one-line ConfigError now, before anything starts, if ``target``'s backend package is not installed."""
    if target is not None:
        _import_mlflow()


def study_tracker(target: Target, spec: StudySpec, study: str) -> StudyTracker:
    """The tracker of study ``study`` at ``target`` (ConfigError naming the extra when its package is missing)."""
    return MlflowStudy(target, spec, study)


def training_tracker(target: Target, name: str, tags: Mapping[str, str]) -> RunTracker:
    """The tracker of one ``spcl-search train`` run named ``name``."""
    guard = _Guard(target)
    client = _client(target)
    experiment = guard(lambda: _experiment(client, TRAIN_EXPERIMENT))
    run_id = guard(lambda: client.create_run(experiment, run_name=name, tags=dict(tags)).info.run_id) if experiment else None
    return MlflowRun(client, guard, run_id)


# ---------------------------------------------------------------------------------------------- settings


def effective_settings(spec: StudySpec, params: Mapping[str, Any], use_cl: bool = True) -> dict[str, Any]:
    """What one trial of ``spec`` trained with: its searched ``params`` over the study's protocol (the form's
    defaults under the spec's ``train`` table), switches and model options, flat (``spcl.cap``, ``model.hidden``)."""
    from spcl_search.defaults import RUN
    from spcl_search.methods.registry import method_options, space
    from spcl_search.schema.spec import form

    dataset = spec.dataset if spec.dataset in ("iemocap", "meld") else None
    protocol = {**form(spec.backbone, spec.variant).training_defaults(dataset), "clip_grad_norm": RUN["clip_grad_norm"], **spec.train}
    method, fixed = (spec.method, spec.method_options) if use_cl else ("none", {})
    out: dict[str, Any] = {
        "backbone": spec.backbone,
        "form": spec.variant,
        "method": method,
        "precision": spec.precision,
        "kind": spec.kind,
        "dataset": spec.dataset,
        "data": spec.data,
        "modalities": ",".join(spec.modalities),
        "seeds": ",".join(map(str, spec.seeds)),
        **{k: v for k, v in protocol.items() if k != "epochs"},
        "epochs": spec.epochs,
        **{f"{method}.{k}": v for k, v in method_options(method, fixed).items() if k not in space(method)},
        **{f"model.{k}": v for k, v in spec.model.items()},
    }
    out.update(params)
    return out


# ------------------------------------------------------------------------------------------------ MLflow


def _import_mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise ConfigError(f"`track` mlflow needs the mlflow package: pip install 'spcl-search[{EXTRA}]'") from None
    return mlflow


def resolved_uri(target: Target) -> str:
    """The tracking URI: the target's, else ``mlruns/`` in the working directory (a ``file://`` URI)."""
    return target.uri or (Path.cwd() / "mlruns").as_uri()


def _client(target: Target) -> Any:
    """An MlflowClient for ``target``: a request fails after one try and 10 s (the trial never waits long), no
    URLs printed to the worker's log, and MLflow 3's file store allowed (our default)."""
    uri = resolved_uri(target)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return _import_mlflow().MlflowClient(tracking_uri=uri)


def _experiment(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return str(found.experiment_id) if found is not None else str(client.create_experiment(name))


class _Guard:
    """Runs calls to the tracking backend so that they never fail a trial: the first failure is a warning (once for
    this tracker: a worker's whole life), and ``None`` comes back."""

    def __init__(self, target: Target) -> None:
        self.where = resolved_uri(target)
        self.warned = False

    def __call__(self, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - whatever the backend raises, the trial goes on
            if not self.warned:
                self.warned = True
                logger.warning(
                    "experiment tracking at %s failed (%s: %s); trials go on untracked while it fails (warned once)",
                    self.where,
                    type(exc).__name__,
                    " ".join(str(exc).split())[:300],
                )
            return None


def _flat(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


class MlflowRun:
    """One MLflow run: per-epoch metrics as they come, then params, final metrics, tags and its end status. After a
    failed call it logs nothing more (the trial goes on; the next trial's run tries again)."""

    def __init__(self, client: Any, guard: _Guard, run_id: str | None) -> None:
        self.client, self.guard, self.run_id = client, guard, run_id

    def _log(self, call: Callable[[], object]) -> None:
        def done() -> bool:
            call()
            return True

        if self.run_id is not None and self.guard(done) is None:
            self.run_id = None  # the backend failed: this run stops here

    def log(
        self,
        metrics: Mapping[str, float | None] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        step: int = 0,
    ) -> None:
        """One ``log_batch`` (more when there are over 100 params, MLflow's limit per call); None values left out."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        m = [Metric(k, float(v), now, step) for k, v in (metrics or {}).items() if v is not None]
        p = [Param(k, _flat(v)[:6000]) for k, v in (params or {}).items() if v is not None]
        t = [RunTag(k, _flat(v)) for k, v in (tags or {}).items() if v is not None]
        calls: list[tuple[list[Any], list[Any], list[Any]]] = [(m, p[:100], t)]
        calls += [([], p[i : i + 100], []) for i in range(100, len(p), 100)]
        for metric, param, tag in calls:
            self._log(partial(self.client.log_batch, self.run_id, metrics=metric, params=param, tags=tag))

    def epoch(self, run: str, step: int, record: EpochRecord) -> None:
        m, r = run, record
        self.log(
            metrics={
                f"train_loss_{m}": r.train_loss,
                f"dev_f1_{m}": r.dev_f1,
                f"take_rate_{m}": r.take_rate,
                f"threshold_{m}": r.threshold,
            },
            step=step,
        )

    def finish_trial(self, trial: FrozenTrial, settings: Mapping[str, Any]) -> None:
        from optuna.trial import TrialState

        from spcl_search.schema.records import TrialRecord

        record = TrialRecord.of(trial)
        final: dict[str, float | None] = {}
        for m, run in record.sets.items():
            for name in ("dev_f1", "test_f1", "dev_acc", "test_acc", "take_rate", "epoch_seconds"):
                final[f"final_{name}_{m}"] = getattr(run, name)
            final[f"best_epoch_{m}"] = record.epoch(run.best_epoch)
        final.update(gain=record.gain, gain_test=record.gain_test, trial_seconds=record.trial_seconds)
        for i, value in enumerate(trial.values or []):
            final[f"objective_{i}"] = value
        tags = {"state": trial.state.name, "method": record.method or settings.get("method"), "fail_reason": record.fail_reason}
        self.log(metrics=final, params=settings, tags=tags)
        status = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED"}.get(trial.state, "FAILED")
        self._log(lambda: self.client.set_terminated(self.run_id, status="KILLED" if record.fail_reason == "interrupted" else status))

    def finish_training(self, result: TrainResult) -> None:
        m = str(result.config.get("modalities", ""))
        config = {k: v for k, v in result.config.items() if not isinstance(v, dict)}
        nested = {f"{k}.{n}": v for k, d in result.config.items() if isinstance(d, dict) for n, v in d.items()}
        final = {
            f"final_dev_f1_{m}": result.dev_f1,
            f"final_test_f1_{m}": result.test_f1,
            f"final_dev_acc_{m}": result.dev_acc,
            f"final_test_acc_{m}": result.test_acc,
            f"best_epoch_{m}": result.best_epoch,
            "seconds_per_epoch": result.seconds_per_epoch,
        }
        self.log(metrics=final, params={**config, **nested, "dataset": result.dataset.get("name")}, tags={"device": result.device})
        self._log(lambda: self.client.set_terminated(self.run_id, status="FINISHED"))


class MlflowStudy:
    """A study's MLflow runs: experiment = the study's name, one study run, one nested run per trial."""

    def __init__(self, target: Target, spec: StudySpec, study: str) -> None:
        self.target, self.spec, self.study = target, spec, study
        self.client = _client(target)
        self.guard = _Guard(target)
        self.experiment: str | None = None
        self.parent: str | None = None

    def open(self) -> None:
        """Find the study's run, or make it. No lock is needed (none is held over the network): workers that make
        one at the same moment keep the earliest and delete their own."""
        self.experiment = self.guard(lambda: _experiment(self.client, self.study))
        if self.experiment is not None:
            self.parent = self.guard(self._study_run)

    def _study_runs(self) -> list[str]:
        """The study's runs (normally one), earliest first."""
        found = self.client.search_runs([self.experiment], filter_string=f"tags.`{ROLE_TAG}` = 'study'", max_results=100)
        return [str(r.info.run_id) for r in sorted(found, key=lambda r: (r.info.start_time or 0, r.info.run_id))]

    def _study_run(self) -> str:
        found = self._study_runs()
        if found:
            return found[0]
        tags = {ROLE_TAG: "study", "study": self.study, "form": self.spec.variant, "method": self.spec.method, "kind": self.spec.kind}
        run = MlflowRun(self.client, self.guard, self.client.create_run(self.experiment, run_name=self.study, tags=tags).info.run_id)
        run.log(params={k: v for k, v in self.spec.to_dict().items() if not isinstance(v, dict)})
        made = str(run.run_id)
        winner = (self._study_runs() or [made])[0]
        if winner != made:  # another worker made one first
            self.client.delete_run(made)
        return winner

    def trial(self, number: int, *, worker: str, gpu: str | None) -> RunTracker:
        if self.parent is None:
            self.open()  # the backend was away when the worker started: try again
        if self.parent is None:
            return MlflowRun(self.client, self.guard, None)
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        tags = {
            MLFLOW_PARENT_RUN_ID: self.parent,
            ROLE_TAG: "trial",
            "study": self.study,
            "trial": str(number),
            "worker": worker,
            "gpu": gpu if gpu is not None else "none",
            "form": self.spec.variant,
            "method": self.spec.method,
        }
        created = self.guard(lambda: self.client.create_run(self.experiment, run_name=f"trial {number}", tags=tags))
        return MlflowRun(self.client, self.guard, None if created is None else created.info.run_id)

    def log_report(self, page: Path) -> bool:
        """Log ``page`` as the artifact ``report/<name>`` of the study's run; whether it worked."""
        if self.parent is None:
            self.open()
        parent = self.parent
        return parent is not None and self.guard(lambda: self.client.log_artifact(parent, str(page), "report") or True) is not None

    def close(self, finished: bool) -> None:
        """Mark the study's run FINISHED once its budget is spent (a worker that leaves early leaves it running)."""
        if finished and self.parent is not None:
            self.guard(lambda: self.client.set_terminated(self.parent, status="FINISHED"))
