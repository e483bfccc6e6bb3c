"""Read a study's progress: trials by state, the budget, the best so far, live workers (nothing written)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from spcl_search.schema.records import study_info
from spcl_search.search import budget as budgets
from spcl_search.search.registry import WorkerRecord, workers
from spcl_search.search.settings import DEFAULT_GRACE_PERIOD
from spcl_search.search.storage import list_studies


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

    @property
    def done(self) -> bool:
        return budgets.is_done(self.counts, self.n_trials)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["counts"] = {**asdict(self.counts), "finished": self.counts.finished}
        out["done"] = self.done
        out["workers"] = [asdict(w) for w in self.workers]
        return out


def study_status(storage: optuna.storages.BaseStorage, name: str, *, stale_after: float | None = None) -> StudyStatus:
    """Status of study ``name`` (KeyError if there is none)."""
    study = optuna.load_study(study_name=name, storage=storage)
    info = study_info(study)
    trials = study.get_trials(deepcopy=False)
    counts = budgets.count(trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best_values = best_params = best_trial = None
    pareto = 0
    if complete:
        if len(study.directions) == 1:
            best = study.best_trial
            best_values, best_params, best_trial = list(best.values), dict(best.params), best.number
        else:
            front = study.best_trials
            pareto = len(front)
            best = max(front, key=lambda t: t.values[0])
            best_values, best_params, best_trial = list(best.values), dict(best.params), best.number
    grace = stale_after
    if grace is None:
        grace = float(getattr(storage, "grace_period", None) or DEFAULT_GRACE_PERIOD)
    study_id = storage.get_study_id_from_name(name)
    return StudyStatus(
        name=name,
        kind=info.kind,
        backbone=info.backbone,
        variant=info.variant,
        method=info.method,
        precision=str(info.spec.get("precision") or "fp32"),
        dataset=info.dataset,
        n_trials=int(info.spec.get("n_trials", 0)),
        counts=counts,
        best_values=best_values,
        best_params=best_params,
        best_trial=best_trial,
        metric_names=list(info.metric_names),
        workers=workers(storage, study_id, stale_after=grace),
        pareto_size=pareto,
    )


def all_statuses(storage: optuna.storages.BaseStorage) -> list[StudyStatus]:
    """Status of every study in ``storage``."""
    return [study_status(storage, name) for name in list_studies(storage)]
