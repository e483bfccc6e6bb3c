"""Gain tables: tri-modal minus bi-modal weighted-F1 and accuracy, without and with SPCL.

This is the paper's motivation figure in numbers: a negative gain means that adding the third
modality hurt. "Without SPCL" is the no-SPCL baseline trial (user attr ``use_cl`` False); "with
SPCL" is the best SPCL setting found, chosen on dev. Gains are reported on ``split`` (test by
default, as in the paper; selection never looks at test).

In a ``balance`` study every trial trains all four modality sets with one setting, so each side
of the comparison is one trial. In a ``search`` study each trial trains one modality set, so each
modality set takes its own best trial.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import optuna
from optuna.trial import FrozenTrial

from spcl_search.reports import records
from spcl_search.schema.best import method_setting


@dataclass(frozen=True)
class GainRow:
    """Tri-modal minus one bi-modal set, for one study, without and with SPCL (percentage points)."""

    study: str
    backbone: str
    variant: str
    dataset: str
    versus: str
    split: str
    f1_without: float | None
    f1_with: float | None
    acc_without: float | None
    acc_with: float | None
    baseline_trial: int | None
    spcl_trial: int | None
    #: the best setting of the study's method ("with"): SPCL's ``cl_growth/cl_threshold``, another's ``alpha=0.3``
    spcl_setting: str
    #: the study's balance method, what "with" means (SPCL, or OGM-GE, OPM, MMPareto)
    method: str = "spcl"

    @property
    def label(self) -> str:
        """``"vs T+A"``."""
        return f"vs {records.modality_label(self.versus)}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _pick(trials: Sequence[FrozenTrial], modalities: str, balance: bool) -> FrozenTrial | None:
    if balance:
        return records.best_tri_modal(trials)
    return records.best_for(trials, modalities)


def _difference(tri: FrozenTrial | None, bi: FrozenTrial | None, name: str, versus: str) -> float | None:
    if tri is None or bi is None:
        return None
    a = records.metric(tri, name, records.TRI_MODAL)
    b = records.metric(bi, name, versus)
    return None if a is None or b is None else a - b


def gain_rows(study: optuna.Study, split: str = "test") -> list[GainRow]:
    """One :class:`GainRow` per bi-modal set the study trained next to the tri-modal one."""
    info = records.study_info(study)
    trials = records.complete_trials(study)
    balance = info.kind == "balance"
    sides = {"without": records.baseline_trials(trials), "with": records.spcl_trials(trials)}
    present = records.study_modalities(trials)
    if records.TRI_MODAL not in present:
        return []
    rows = []
    for versus in present:
        if versus == records.TRI_MODAL or len(versus) != 2:
            continue
        picked = {side: (_pick(ts, records.TRI_MODAL, balance), _pick(ts, versus, balance)) for side, ts in sides.items()}
        spcl_tri = picked["with"][0]
        base_tri = picked["without"][0]
        rows.append(
            GainRow(
                study=info.name,
                backbone=info.backbone,
                variant=info.variant,
                dataset=info.dataset,
                versus=versus,
                split=split,
                f1_without=_difference(*picked["without"], f"{split}_f1", versus),
                f1_with=_difference(*picked["with"], f"{split}_f1", versus),
                acc_without=_difference(*picked["without"], f"{split}_acc", versus),
                acc_with=_difference(*picked["with"], f"{split}_acc", versus),
                baseline_trial=base_tri.number if base_tri is not None else None,
                spcl_trial=spcl_tri.number if spcl_tri is not None else None,
                spcl_setting=method_setting(info.method, spcl_tri.params) if spcl_tri is not None else "-",
                method=info.method,
            )
        )
    return rows


CSV_COLUMNS = (
    "study",
    "backbone",
    "variant",
    "dataset",
    "versus",
    "split",
    "f1_without",
    "f1_with",
    "acc_without",
    "acc_with",
    "baseline_trial",
    "spcl_trial",
    "spcl_setting",
    "method",
)


def gain_csv(rows: Sequence[GainRow]) -> str:
    """``rows`` as CSV text (gains in percentage points, empty where not available)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        values = row.to_dict()
        writer.writerow({k: ("" if values[k] is None else round(v, 4) if isinstance(v := values[k], float) else v) for k in CSV_COLUMNS})
    return buffer.getvalue()
