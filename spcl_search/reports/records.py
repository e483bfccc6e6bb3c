"""The trials a report shows, read through the study records of :mod:`spcl_search.schema.records`.

Figures and tables ask this module for trials and metrics; the names of the stored attrs live in
:class:`~spcl_search.schema.records.TrialRecord` alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from spcl_search.schema.best import best_trial as best_for
from spcl_search.schema.best import spcl_setting as _setting
from spcl_search.schema.records import TrialRecord, sort_modalities
from spcl_search.schema.spec import MODALITY_SETS as MODALITY_ORDER
from spcl_search.schema.spec import TRI_MODAL
from spcl_search.schema.study_info import StudyInfo, study_info

__all__ = ["MODALITY_ORDER", "TRI_MODAL", "StudyInfo", "best_for", "sort_modalities", "study_info"]

THRESHOLD_PARAM = "cl_threshold"
GROWTH_PARAM = "cl_growth"
MODALITIES_PARAM = "modalities"
_LETTER = {"t": "T", "a": "A", "v": "V"}


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's complete trials, in trial-number order."""
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def is_baseline(trial: FrozenTrial) -> bool:
    """Whether ``trial`` is a no-SPCL baseline (user attr ``use_cl`` is False)."""
    return TrialRecord.of(trial).is_baseline


def baseline_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The no-SPCL baseline trials among ``trials``."""
    return [t for t in trials if is_baseline(t)]


def spcl_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials trained with SPCL (every trial that is not a baseline)."""
    return [t for t in trials if not is_baseline(t)]


def metric(trial: FrozenTrial, name: str, modalities: str) -> float | None:
    """A per-modality metric such as ``metric(t, "test_f1", "atv")``, or None if not recorded."""
    return TrialRecord.of(trial).metric(name, modalities)


def best_epoch(trial: FrozenTrial, modalities: str) -> int | None:
    """The best dev epoch of one modality set, counted from 1 (also for trials stored counting from 0)."""
    record = TrialRecord.of(trial)
    return record.epoch(record.sets[modalities].best_epoch) if modalities in record.sets else None


def study_modalities(trials: Sequence[FrozenTrial]) -> list[str]:
    """Every modality set recorded by any of ``trials``, in the paper's order."""
    return sort_modalities(m for t in trials for m in TrialRecord.of(t).trained)


def modality_label(modalities: str) -> str:
    """``"at"`` -> ``"T+A"``, as the paper names modality sets (text, audio, visual order)."""
    letters = [_LETTER[c] for c in "tav" if c in modalities]
    return "+".join(letters) if letters else modalities


def best_tri_modal(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The trial with the highest tri-modal dev F1; ties go to the higher dev gain."""
    scored = [t for t in trials if metric(t, "dev_f1", TRI_MODAL) is not None]
    if not scored:
        return None

    def key(t: FrozenTrial) -> tuple[float, float, int]:
        gain = t.values[1] if t.values is not None and len(t.values) > 1 else 0.0
        return (metric(t, "dev_f1", TRI_MODAL) or 0.0, gain, -t.number)

    return max(scored, key=key)


def spcl_setting(trial: FrozenTrial) -> str:
    """``"cl_growth/cl_threshold"`` as in the paper's table, e.g. ``"1.25/0.7"``."""
    return _setting(trial.params)


def sub_study(study: optuna.Study, trials: Sequence[FrozenTrial]) -> optuna.Study:
    """An in-memory copy of ``study`` holding only ``trials`` (for Optuna's plots and evaluators)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        copy = optuna.create_study(directions=study.directions)
    finally:
        optuna.logging.set_verbosity(verbosity)
    if study.metric_names is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            copy.set_metric_names(list(study.metric_names))
    copy.add_trials(list(trials))
    return copy
