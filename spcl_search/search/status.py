"""Read a study's progress and its best settings (no heartbeats, nothing written)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from spcl_search.search import budget as budgets
from spcl_search.search.registry import WorkerRecord, workers
from spcl_search.search.storage import DEFAULT_GRACE_PERIOD, list_studies
from spcl_search.search.study import SPEC_ATTR

_ORDER = {"atv": 0, "at": 1, "av": 2, "tv": 3}


@dataclass
class BestSetting:
    """The best SPCL setting a study found for one modality set."""

    study: str
    backbone: str
    variant: str
    dataset: str
    kind: str
    modalities: str
    trial: int
    params: dict[str, Any]
    dev_f1: float
    test_f1: float | None
    baseline_dev_f1: float | None = None
    baseline_test_f1: float | None = None

    @property
    def spcl_gain_dev(self) -> float | None:
        """Dev F1 of SPCL minus the no-SPCL baseline (None without a baseline)."""
        return None if self.baseline_dev_f1 is None else self.dev_f1 - self.baseline_dev_f1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "spcl_gain_dev": self.spcl_gain_dev}


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

    @property
    def done(self) -> bool:
        return budgets.is_done(self.counts, self.n_trials)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["counts"] = {**asdict(self.counts), "finished": self.counts.finished}
        out["done"] = self.done
        out["workers"] = [asdict(w) for w in self.workers]
        return out


def _spec_attr(study: optuna.Study) -> dict[str, Any]:
    raw = study.user_attrs.get(SPEC_ATTR)
    return raw if isinstance(raw, dict) else {}


def study_variant(study: optuna.Study) -> str:
    """The backbone form a study trains (studies stored before forms existed trained the original ones)."""
    return str(study.user_attrs.get("variant", _spec_attr(study).get("variant", "original")))


def study_status(storage: optuna.storages.BaseStorage, name: str, *, stale_after: float | None = None) -> StudyStatus:
    """Status of study ``name`` (KeyError if there is none)."""
    study = optuna.load_study(study_name=name, storage=storage)
    spec = _spec_attr(study)
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
        kind=str(study.user_attrs.get("kind", spec.get("kind", "?"))),
        backbone=str(study.user_attrs.get("backbone", spec.get("backbone", "?"))),
        variant=study_variant(study),
        dataset=str(study.user_attrs.get("dataset", spec.get("dataset", "?"))),
        n_trials=int(spec.get("n_trials", 0)),
        counts=counts,
        best_values=best_values,
        best_params=best_params,
        best_trial=best_trial,
        metric_names=list(study.metric_names or spec.get("objectives", [])),
        workers=workers(storage, study_id, stale_after=grace),
        pareto_size=pareto,
    )


def all_statuses(storage: optuna.storages.BaseStorage) -> list[StudyStatus]:
    """Status of every study in ``storage``."""
    return [study_status(storage, name) for name in list_studies(storage)]


def _trained(t: FrozenTrial) -> list[str]:
    return [k[len("dev_f1_") :] for k in t.user_attrs if k.startswith("dev_f1_") and not k.startswith("dev_f1_curve_")]


def best_settings(storage: optuna.storages.BaseStorage, name: str) -> list[BestSetting]:
    """The best complete SPCL trial per modality set of study ``name``, with the no-SPCL baseline."""
    study = optuna.load_study(study_name=name, storage=storage)
    spec = _spec_attr(study)
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    sets: set[str] = set()
    for t in complete:
        sets.update(_trained(t))
    rows = []
    for m in sorted(sets, key=lambda s: (_ORDER.get(s, 9), s)):
        key = f"dev_f1_{m}"
        spcl = [t for t in complete if t.user_attrs.get("use_cl", True) and key in t.user_attrs]
        base = [t for t in complete if not t.user_attrs.get("use_cl", True) and key in t.user_attrs]
        if not spcl:
            continue
        best = max(spcl, key=lambda t: t.user_attrs[key])
        ref = max(base, key=lambda t: t.user_attrs[key]) if base else None
        rows.append(
            BestSetting(
                study=name,
                backbone=str(study.user_attrs.get("backbone", spec.get("backbone", "?"))),
                variant=study_variant(study),
                dataset=str(study.user_attrs.get("dataset", spec.get("dataset", "?"))),
                kind=str(study.user_attrs.get("kind", spec.get("kind", "?"))),
                modalities=m,
                trial=best.number,
                params={k: v for k, v in best.params.items() if k != "modalities"},
                dev_f1=float(best.user_attrs[key]),
                test_f1=best.user_attrs.get(f"test_f1_{m}"),
                baseline_dev_f1=None if ref is None else float(ref.user_attrs[key]),
                baseline_test_f1=None if ref is None else ref.user_attrs.get(f"test_f1_{m}"),
            )
        )
    return rows
