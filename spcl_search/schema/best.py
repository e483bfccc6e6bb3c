"""The best SPCL setting per modality set of a study, and the paper's table of them.

One selection rule for every reader (``spcl-search run``, ``best``, ``report``, ``compare`` and the dashboard
note): per modality set, the complete SPCL trial with the highest dev F1 (ties: the earlier trial), with
the best no-SPCL baseline trial of the same set beside it. Test figures are shown, never used to choose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from backbones.defaults import METHOD_OPTIONS
from spcl_search.schema.records import TrialRecord, sort_modalities, study_info
from spcl_search.schema.spec import METHOD_PARAMS


@dataclass(frozen=True)
class BestSetting:
    """The best SPCL trial on one modality set (chosen on dev F1) and the baseline beside it."""

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
    test_acc: float | None = None
    baseline_dev_f1: float | None = None
    baseline_test_f1: float | None = None
    #: complete SPCL trials with a result on this modality set
    n_trials: int = 0
    #: the study's balance method
    method: str = "spcl"

    @property
    def setting(self) -> str:
        """``"cl_growth/cl_threshold"`` as in the paper's table, e.g. ``"1.25/0.7"``; another method's options
        as ``"alpha=0.3"``."""
        return method_setting(self.method, self.params)

    @property
    def spcl_gain_dev(self) -> float | None:
        """Dev F1 of SPCL minus the no-SPCL baseline (None without a baseline)."""
        return None if self.baseline_dev_f1 is None else self.dev_f1 - self.baseline_dev_f1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "setting": self.setting, "spcl_gain_dev": self.spcl_gain_dev}


def spcl_setting(params: dict[str, Any]) -> str:
    """``"cl_growth/cl_threshold"`` of a trial's params, ``"-"`` if either is missing."""
    growth, threshold = params.get("cl_growth"), params.get("cl_threshold")
    return "-" if growth is None or threshold is None else f"{growth:.3g}/{threshold:.3g}"


def method_setting(method: str, params: dict[str, Any], options: dict[str, Any] | None = None) -> str:
    """The searched setting of a trial of ``method``: SPCL's paper layout, else ``"name=value ..."`` (``"-"``
    for a method without options), then the fixed ``options`` it trained with that are not the defaults
    (``smooth=true``)."""
    if method == "spcl":
        return spcl_setting(params)
    own = [f"{name}={params[name]:.3g}" for name in METHOD_PARAMS.get(method, ()) if name in params]
    defaults = METHOD_OPTIONS.get(method, {})
    for name, value in (options or {}).items():
        if name not in params and name in defaults and value != defaults[name]:
            own.append(f"{name}={str(value).lower() if isinstance(value, bool) else value}")
    return " ".join(own) or "-"


def best_trial(trials: Sequence[FrozenTrial], modalities: str) -> FrozenTrial | None:
    """The trial with the highest dev F1 on ``modalities`` (the earlier one on ties), or None."""
    scored = [(v, t) for t in trials if (v := TrialRecord.of(t).metric("dev_f1", modalities)) is not None]
    return max(scored, key=lambda vt: (vt[0], -vt[1].number))[1] if scored else None


def best_settings(study: optuna.Study) -> list[BestSetting]:
    """One :class:`BestSetting` per modality set the study's complete SPCL trials trained, in the paper's order."""
    info = study_info(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    spcl = [t for t in complete if not TrialRecord.of(t).is_baseline]
    baselines = [t for t in complete if TrialRecord.of(t).is_baseline]
    rows = []
    for m in sort_modalities(m for t in spcl for m in TrialRecord.of(t).trained):
        best, base = best_trial(spcl, m), best_trial(baselines, m)
        if best is None:
            continue
        record, base_record = TrialRecord.of(best), TrialRecord.of(base) if base is not None else None
        rows.append(
            BestSetting(
                study=info.name,
                backbone=info.backbone,
                variant=info.variant,
                dataset=info.dataset,
                kind=info.kind,
                modalities=m,
                trial=best.number,
                params={k: v for k, v in best.params.items() if k != "modalities"},
                dev_f1=float(record.metric("dev_f1", m) or 0.0),
                test_f1=record.metric("test_f1", m),
                test_acc=record.metric("test_acc", m),
                baseline_dev_f1=base_record.metric("dev_f1", m) if base_record else None,
                baseline_test_f1=base_record.metric("test_f1", m) if base_record else None,
                n_trials=sum(TrialRecord.of(t).metric("dev_f1", m) is not None for t in spcl),
                method=info.method,
            )
        )
    return rows


def paper_table(rows: Sequence[BestSetting]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the paper's layout: one row per backbone (and form; and kind when several are
    shown), ``cl_growth/cl_threshold`` cells under ``<dataset> <modality set>`` columns (empty where none)."""
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    columns = [(d, m) for d in datasets for m in sort_modalities({r.modalities for r in rows if r.dataset == d})]
    several_kinds = len({r.kind for r in rows}) > 1
    cells: dict[str, dict[tuple[str, str], str]] = {}
    for r in rows:
        label = f"{r.backbone} [{r.variant}]" + ("" if r.method == "spcl" else f" {r.method}") + (f" ({r.kind})" if several_kinds else "")
        cells.setdefault(label, {})[(r.dataset, r.modalities)] = r.setting
    header = ["Backbone"] + [f"{d} {m}" for d, m in columns]
    return header, [[label] + [row.get(c, "") for c in columns] for label, row in cells.items()]
