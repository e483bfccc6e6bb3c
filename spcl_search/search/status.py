"""Read a study's progress: trials by state, the budget, the best so far, live workers (nothing written)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

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
    #: the study's answer per modality set, with its uncertainty and verdict (``spcl_search.schema.best``)
    answers: list[str] = field(default_factory=list)

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
    # the baseline (no balance method) is the reference, never "best": its params are placeholders
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None and t.user_attrs.get("use_cl", True)]
    best_values = best_params = best_trial = None
    pareto = 0
    if complete:
        front = pareto_front(complete)
        pareto = len(front) if len(study.directions) > 1 else 0
        best = max(front, key=lambda t: (t.values[0], -t.number))
        best_values, best_params, best_trial = list(best.values), dict(best.params), best.number
    from spcl_search.schema.best import best_settings
    from spcl_search.search.confirm import CONFIRMS_ATTR, confirmation_of

    parent_name = study.user_attrs.get(CONFIRMS_ATTR)  # a confirmation study shows its parent's answer
    parent = study if not parent_name else optuna.load_study(study_name=parent_name, storage=storage)
    answers = [
        f"{r.modalities} {r.setting}: dev {_pm(r.dev_f1, r.dev_f1_std)}, test {_pm(r.test_f1, r.test_f1_std)} - {r.stage}; {r.verdict}"
        for r in best_settings(parent, confirmation_of(storage, parent))
    ]
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
        answers=answers,
    )


def pareto_front(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials no other trial dominates (every objective maximised)."""

    def dominates(a: FrozenTrial, b: FrozenTrial) -> bool:
        return all(x >= y for x, y in zip(a.values, b.values)) and any(x > y for x, y in zip(a.values, b.values))

    return [t for t in trials if not any(dominates(o, t) for o in trials if o is not t)]


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.2f}" + ("" if std is None else f" ± {std:.2f}")


def all_statuses(storage: optuna.storages.BaseStorage) -> list[StudyStatus]:
    """Status of every study in ``storage``."""
    return [study_status(storage, name) for name in list_studies(storage)]
