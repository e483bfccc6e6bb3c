"""Read a study's progress: trials by state, the budget, the best so far, live workers, an ETA and, on request,
every trial (nothing written)."""

from __future__ import annotations

import datetime
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from spcl_search.schema.baseline import marks_baseline
from spcl_search.schema.records import TrialRecord
from spcl_search.schema.study_info import study_info
from spcl_search.search import budget as budgets
from spcl_search.search.registry import WorkerRecord, workers
from spcl_search.search.settings import DEFAULT_GRACE_PERIOD
from spcl_search.search.storage import list_studies
from spcl_search.stats import pm


@dataclass
class TrialRow:
    """One trial as ``status --trials`` lists it: ``seconds`` it ran (so far, when running), the ``worker`` that ran
    it, and a ``note`` (why it failed, where it was pruned, a baseline, a retry)."""

    number: int
    state: str
    params: dict[str, Any]
    values: list[float] | None
    seconds: float | None
    worker: str | None
    note: str = ""


@dataclass
class StudyStatus:
    """Trials by state, the budget, best so far and live workers of one study."""

    name: str
    kind: str
    backbone: str
    variant: str
    dataset: str
    n_trials: int
    counts: budgets.BudgetCounts
    best_values: list[float] | None
    best_params: dict[str, Any] | None
    best_trial: int | None
    metric_names: list[str]
    workers: list[WorkerRecord] = field(default_factory=list)
    pareto_size: int = 0
    method: str = "spcl"
    precision: str = "fp32"
    #: the study's answer per modality set, with its uncertainty and verdict (``spcl_search.schema.best``)
    answers: list[str] = field(default_factory=list)
    #: mean seconds of the finished trials, and the seconds the rest of the budget should take at that pace with
    #: the live workers (None until a trial has finished)
    mean_trial_seconds: float | None = None
    eta_seconds: float | None = None
    #: every trial, with ``study_status(..., trials=True)``
    trials: list[TrialRow] | None = None

    @property
    def done(self) -> bool:
        return budgets.is_done(self.counts, self.n_trials)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["counts"] = {**asdict(self.counts), "finished": self.counts.finished}
        out["done"] = self.done
        out["workers"] = [asdict(w) for w in self.workers]
        if self.trials is None:
            del out["trials"]
        return out


def _seconds(trial: optuna.trial.FrozenTrial, now: datetime.datetime) -> float | None:
    """How long ``trial`` ran (``trial_seconds`` as its worker measured it, else its timestamps; so far if running)."""
    recorded = trial.user_attrs.get("trial_seconds")
    if isinstance(recorded, (int, float)) and trial.state.is_finished():
        return float(recorded)
    if trial.datetime_start is None:
        return None
    end = trial.datetime_complete or (now if trial.state == TrialState.RUNNING else None)
    return None if end is None else max(0.0, (end - trial.datetime_start).total_seconds())


def eta(
    trials: Sequence[optuna.trial.FrozenTrial], n_trials: int, n_workers: int, now: datetime.datetime | None = None
) -> tuple[float | None, float | None]:
    """``(mean seconds of the finished trials, seconds until the budget is spent)`` at that pace with ``n_workers``
    (trials cut short and retried do not count)
    working in parallel (the running trials count with what they still need); ``(None, None)`` before any finished."""
    now = now or datetime.datetime.now()  # Optuna stamps trials in local time
    retried = budgets.retried_numbers(trials)  # cut short (interrupted, worker died): not a trial's duration
    done = (t for t in trials if t.state.is_finished() and t.number not in retried)
    finished = [x for x in (_seconds(t, now) for t in done) if x is not None]
    if not finished:
        return None, None
    mean = statistics.fmean(finished)
    counts = budgets.count(trials)
    if budgets.is_done(counts, n_trials):
        return mean, 0.0
    running = [x for x in (_seconds(t, now) for t in trials if t.state == TrialState.RUNNING) if x is not None]
    to_start = max(0, n_trials - counts.finished - counts.running)
    work = to_start * mean + sum(max(0.0, mean - x) for x in running)
    return mean, work / max(1, n_workers, min(len(running), n_trials))


def trial_rows(trials: Sequence[optuna.trial.FrozenTrial], now: datetime.datetime | None = None) -> list[TrialRow]:
    """The rows of ``status --trials``, in trial-number order."""
    now = now or datetime.datetime.now()
    retried = budgets.retried_numbers(trials)
    rows = []
    for t in trials:
        attrs = t.user_attrs
        notes = []
        if t.state == TrialState.FAIL:
            notes.append(str(attrs.get("fail_reason") or "worker died") + (", retried" if t.number in retried else ""))
            if attrs.get("error") and attrs.get("fail_reason") != "interrupted":
                notes.append(str(attrs["error"]))
        run = next(iter(TrialRecord.of(t).sets.values()), None)
        if t.state == TrialState.PRUNED and run is not None and run.epochs:
            notes.append(f"pruned after epoch {run.epochs}")
        if marks_baseline(attrs):
            notes.append("no-SPCL baseline")
        if t.system_attrs.get("failed_trial") is not None:
            notes.append(f"retry of trial {t.system_attrs['failed_trial']}")
        rows.append(
            TrialRow(
                number=t.number,
                state=t.state.name,
                params=dict(t.params),
                values=list(t.values) if t.values is not None else None,
                seconds=None if (x := _seconds(t, now)) is None else round(x, 1),
                worker=attrs.get("worker"),
                note="; ".join(notes),
            )
        )
    return rows


def study_status(
    storage: optuna.storages.BaseStorage, name: str, *, stale_after: float | None = None, trials: bool = False, answers: bool = True
) -> StudyStatus:
    """Status of study ``name`` (KeyError if there is none); with ``trials``, every trial too; without ``answers``, not
    the study's answer (the live view, redrawn every second, leaves it to the final table)."""
    study = optuna.load_study(study_name=name, storage=storage)
    info = study_info(study)
    every = study.get_trials(deepcopy=False)
    counts = budgets.count(every)
    # the baseline (no balance method) is the reference, never "best": its params are placeholders
    complete = [t for t in every if t.state == TrialState.COMPLETE and t.values is not None and not marks_baseline(t.user_attrs)]
    best_values = best_params = best_trial = None
    pareto = 0
    if complete:
        front = pareto_front(complete)
        pareto = len(front) if len(study.directions) > 1 else 0
        best = max(front, key=lambda t: (t.values[0], -t.number))
        best_values, best_params, best_trial = list(best.values), dict(best.params), best.number
    answer_lines = study_answers(storage, study) if answers else []
    grace = stale_after
    if grace is None:
        grace = float(getattr(storage, "grace_period", None) or DEFAULT_GRACE_PERIOD)
    study_id = storage.get_study_id_from_name(name)
    live = workers(storage, study_id, stale_after=grace)
    n_trials = info.budget
    mean, left = eta(every, n_trials, len(live))
    return StudyStatus(
        name=name,
        kind=info.kind,
        backbone=info.backbone,
        variant=info.variant,
        method=info.method,
        precision=info.precision,
        dataset=info.dataset,
        n_trials=n_trials,
        counts=counts,
        best_values=best_values,
        best_params=best_params,
        best_trial=best_trial,
        metric_names=list(info.metric_names),
        workers=live,
        pareto_size=pareto,
        answers=answer_lines,
        mean_trial_seconds=mean,
        eta_seconds=left,
        trials=trial_rows(every) if trials else None,
    )


def study_answers(storage: optuna.storages.BaseStorage, study: optuna.Study) -> list[str]:
    """One line per modality set: the study's answer with its spread, stage and verdict (a confirmation study gives
    its parent's)."""
    from spcl_search.schema.best import best_settings
    from spcl_search.search.confirm import confirmation_of

    parent_name = study_info(study).confirms
    parent = study if not parent_name else optuna.load_study(study_name=parent_name, storage=storage)
    return [
        f"{r.modalities} {r.setting}: dev {pm(r.dev_f1, r.dev_f1_std)}, test {pm(r.test_f1, r.test_f1_std)} - {r.stage}; {r.verdict}"
        for r in best_settings(parent, confirmation_of(storage, parent))
    ]


def pareto_front(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials no other trial dominates (every objective maximised)."""

    def dominates(a: FrozenTrial, b: FrozenTrial) -> bool:
        return all(x >= y for x, y in zip(a.values, b.values)) and any(x > y for x, y in zip(a.values, b.values))

    return [t for t in trials if not any(dominates(o, t) for o in trials if o is not t)]


def all_statuses(storage: optuna.storages.BaseStorage, *, trials: bool = False) -> list[StudyStatus]:
    """Status of every study in ``storage`` (with ``trials``, every trial of each)."""
    return [study_status(storage, name, trials=trials) for name in list_studies(storage)]
