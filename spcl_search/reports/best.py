"""Best SPCL settings per backbone x modality set, laid out like the paper's hyperparameter table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass

import optuna

from spcl_search.reports import records


@dataclass(frozen=True)
class BestSetting:
    """The best SPCL trial on one modality set (chosen on dev F1) and the baseline beside it."""

    study: str
    backbone: str
    variant: str
    dataset: str
    modalities: str
    trial: int
    setting: str
    params: dict[str, object]
    dev_f1: float | None
    test_f1: float | None
    test_acc: float | None
    baseline_dev_f1: float | None
    baseline_test_f1: float | None
    n_trials: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def best_settings(study: optuna.Study) -> list[BestSetting]:
    """One :class:`BestSetting` per modality set recorded by the study's SPCL trials."""
    info = records.study_info(study)
    trials = records.complete_trials(study)
    spcl = records.spcl_trials(trials)
    baselines = records.baseline_trials(trials)
    rows = []
    for m in records.study_modalities(spcl):
        best = records.best_for(spcl, m)
        if best is None:
            continue
        base = records.best_for(baselines, m)
        rows.append(
            BestSetting(
                study=info.name,
                backbone=info.backbone,
                variant=info.variant,
                dataset=info.dataset,
                modalities=m,
                trial=best.number,
                setting=records.spcl_setting(best),
                params=dict(best.params),
                dev_f1=records.metric(best, "dev_f1", m),
                test_f1=records.metric(best, "test_f1", m),
                test_acc=records.metric(best, "test_acc", m),
                baseline_dev_f1=records.metric(base, "dev_f1", m) if base else None,
                baseline_test_f1=records.metric(base, "test_f1", m) if base else None,
                n_trials=sum(records.metric(t, "dev_f1", m) is not None for t in spcl),
            )
        )
    return rows


def paper_table(rows: Sequence[BestSetting]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the paper's layout: one row per backbone, ``growth/threshold`` cells
    under ``dataset modality`` columns."""
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    columns = [
        (d, m)
        for d in datasets
        for m in records.sort_modalities({r.modalities for r in rows if r.dataset == d})
    ]
    cells: dict[str, dict[tuple[str, str], str]] = {}
    for r in rows:
        cells.setdefault(f"{r.backbone} [{r.variant}]", {})[(r.dataset, r.modalities)] = r.setting
    header = ["Backbone"] + [f"{d} {m}" for d, m in columns]
    body = [[b] + [cs.get(c, "") for c in columns] for b, cs in cells.items()]
    return header, body
