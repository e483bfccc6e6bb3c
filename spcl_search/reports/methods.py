"""The method view: balance methods side by side on one backbone, form and dataset.

One study per method (``spcl-search run --method M``, each with the same budget and seeds). Per method: its
best setting chosen on tri-modal dev weighted-F1, that trial's dev and test weighted-F1 as mean and spread over
its seeds, its tri- minus best-bi-modal gain (balance studies), and how many trials it finished. A method that
finished fewer trials than the others of its group is flagged (``none`` has nothing to tune and is never
flagged), so an unequal tuning budget is visible. Selection never reads test figures.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState

from spcl_search.methods import registry
from spcl_search.schema.best import best_trial, method_setting
from spcl_search.schema.records import TrialRecord
from spcl_search.schema.spec import METHOD_PARAMS, TRI_MODAL
from spcl_search.schema.study_info import study_info


def method_order() -> tuple[str, ...]:
    """Methods in the order tables and figures show them: no method (the baseline) first, then the registry's."""
    return ("none", *(name for name in registry.names() if name != "none"))


@dataclass(frozen=True)
class MethodRow:
    """One method's best tri-modal result on one backbone x form x dataset."""

    backbone: str
    variant: str
    dataset: str
    method: str
    study: str
    n_trials: int
    trial: int | None
    setting: str
    dev_f1: float | None
    dev_f1_std: float | None
    test_f1: float | None
    test_f1_std: float | None
    n_seeds: int
    gain: float | None
    gain_test: float | None
    flagged: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _spread(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def method_row(study: optuna.Study) -> MethodRow:
    """The best tri-modal trial of ``study`` (a study of one method), as a :class:`MethodRow`."""
    info = study_info(study)
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if not TrialRecord.of(t).is_baseline]
    best = best_trial(complete, TRI_MODAL)
    record = TrialRecord.of(best) if best is not None else None
    result = record.sets.get(TRI_MODAL) if record is not None else None
    seeds = (result.per_seed or []) if result is not None else []
    if result is not None and not seeds:
        seeds = [{"dev_f1": result.dev_f1, "test_f1": result.test_f1}]
    dev, dev_std = _spread([float(s["dev_f1"]) for s in seeds if s.get("dev_f1") is not None])
    test, test_std = _spread([float(s["test_f1"]) for s in seeds if s.get("test_f1") is not None])
    return MethodRow(
        backbone=info.backbone,
        variant=info.variant,
        dataset=info.dataset,
        method=info.method,
        study=info.name,
        n_trials=len(complete),
        trial=None if best is None else best.number,
        setting="-" if best is None or record is None else method_setting(info.method, dict(best.params), record.method_options),
        dev_f1=dev,
        dev_f1_std=dev_std,
        test_f1=test,
        test_f1_std=test_std,
        n_seeds=len(seeds),
        gain=None if record is None else record.gain,
        gain_test=None if record is None else record.gain_test,
    )


def method_rows(studies: Sequence[optuna.Study]) -> list[MethodRow]:
    """One row per study, grouped by backbone x form x dataset, methods in :func:`method_order`; within a group,
    a tunable method with fewer finished trials than the most any method finished is flagged."""
    rows = [method_row(s) for s in studies]
    out: list[MethodRow] = []
    groups: dict[tuple[str, str, str], list[MethodRow]] = {}
    for r in rows:
        groups.setdefault((r.backbone, r.variant, r.dataset), []).append(r)
    for group in groups.values():
        most = max(r.n_trials for r in group)
        order = method_order()
        for r in sorted(group, key=lambda r: (order.index(r.method) if r.method in order else len(order), r.study)):
            tunable = bool(METHOD_PARAMS.get(r.method))
            out.append(replace(r, flagged=tunable and r.n_trials < most))
    return out


def sibling_studies(storage: optuna.storages.BaseStorage, study: optuna.Study) -> list[optuna.Study]:
    """Every study in ``storage`` on the same backbone, form, dataset and kind as ``study`` (itself included),
    one per method: the method view of a report."""
    info = study_info(study)
    out = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        other = optuna.load_study(study_name=summary.study_name, storage=storage)
        o = study_info(other)
        if o.confirms:  # a confirmation study belongs to its parent, not beside it
            continue
        if (o.backbone, o.variant, o.dataset, o.kind) == (info.backbone, info.variant, info.dataset, info.kind):
            out.append(other)
    return out


def method_box(studies: Sequence[optuna.Study]) -> go.Figure:
    """One box per method: the tri-modal dev weighted-F1 of every finished trial and seed of its study."""
    fig = go.Figure()
    rows = method_rows(studies)
    for row in rows:
        study = next(s for s in studies if s.study_name == row.study)
        values: list[float] = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            result = TrialRecord.of(t).sets.get(TRI_MODAL)
            if result is None or TrialRecord.of(t).is_baseline:
                continue
            seeds = result.per_seed or [{"dev_f1": result.dev_f1}]
            values += [float(s["dev_f1"]) for s in seeds if s.get("dev_f1") is not None]
        label = row.method + (" (fewer trials)" if row.flagged else "")
        fig.add_trace(go.Box(y=values, name=label, boxpoints="all", jitter=0.3, pointpos=0))
    backbones = ", ".join(dict.fromkeys(f"{r.backbone} [{r.variant}] on {r.dataset}" for r in rows))
    fig.update_layout(
        title_text=f"Tri-modal dev weighted-F1 of every trial and seed, per balance method ({backbones})",
        yaxis_title="dev weighted-F1 (%)",
        showlegend=False,
    )
    return fig


__all__ = ["MethodRow", "method_box", "method_row", "method_rows", "sibling_studies"]
