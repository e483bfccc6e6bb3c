"""Reading the study records that ``spcl_search.search`` writes (see docs/architecture.md).

This module is the only place in :mod:`spcl_search.reports` that knows the names of the study user
attrs, params and trial user attrs; figures and tables ask it for trials and metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import re
import warnings

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState


#: modality sets in the order of the paper's tables (tri-modal first)
MODALITY_ORDER = ("atv", "at", "tv", "av")
TRI_MODAL = "atv"
THRESHOLD_PARAM = "cl_threshold"
GROWTH_PARAM = "cl_growth"
MODALITIES_PARAM = "modalities"

_METRIC_ATTR = re.compile(r"^dev_f1_([a-z]+)$")
_LETTER = {"t": "T", "a": "A", "v": "V"}


@dataclass(frozen=True)
class StudyInfo:
    """What a study says about itself (study user attrs and directions)."""

    name: str
    kind: str
    backbone: str
    dataset: str
    metric_names: tuple[str, ...]
    n_trials: int
    n_complete: int
    surrogate: str = ""
    variant: str = "original"

    @property
    def is_multi_objective(self) -> bool:
        return len(self.metric_names) > 1


def study_info(study: optuna.Study) -> StudyInfo:
    """Summarise a study's user attrs, metric names and trial counts."""
    attrs = study.user_attrs
    n_objectives = len(study.directions)
    names = study.metric_names or [f"objective {i}" for i in range(n_objectives)]
    trials = study.get_trials(deepcopy=False)
    kind = str(attrs.get("kind") or ("balance" if n_objectives > 1 else "search"))
    return StudyInfo(
        name=study.study_name,
        kind=kind,
        backbone=str(attrs.get("backbone", "?")),
        dataset=str(attrs.get("dataset", "?")),
        metric_names=tuple(names),
        n_trials=len(trials),
        n_complete=sum(t.state == TrialState.COMPLETE for t in trials),
        surrogate=next((str(t.user_attrs["data_surrogate"]) for t in trials if t.user_attrs.get("data_surrogate")), ""),
        variant=str(attrs.get("variant", (attrs.get("spec") or {}).get("variant", "original"))),
    )


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's complete trials, in trial-number order."""
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def is_baseline(trial: FrozenTrial) -> bool:
    """Whether ``trial`` is a no-SPCL baseline (user attr ``use_cl`` is False)."""
    return trial.user_attrs.get("use_cl") is False


def baseline_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The no-SPCL baseline trials among ``trials``."""
    return [t for t in trials if is_baseline(t)]


def spcl_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials trained with SPCL (every trial that is not a baseline)."""
    return [t for t in trials if not is_baseline(t)]


def metric(trial: FrozenTrial, name: str, modalities: str) -> float | None:
    """A per-modality metric such as ``metric(t, "test_f1", "atv")``, or None if not recorded."""
    value = trial.user_attrs.get(f"{name}_{modalities}")
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def trained_modalities(trial: FrozenTrial) -> list[str]:
    """The modality sets a trial recorded results for, tri-modal first."""
    found = {m.group(1) for key in trial.user_attrs if (m := _METRIC_ATTR.match(key))}
    return sort_modalities(found)


def sort_modalities(modalities: set[str] | Sequence[str]) -> list[str]:
    """Order modality sets as the paper does (atv, at, tv, av), others after them."""
    known = [m for m in MODALITY_ORDER if m in modalities]
    return known + sorted(set(modalities) - set(MODALITY_ORDER))


def study_modalities(trials: Sequence[FrozenTrial]) -> list[str]:
    """Every modality set recorded by any of ``trials``."""
    found: set[str] = set()
    for trial in trials:
        found.update(trained_modalities(trial))
    return sort_modalities(found)


def modality_label(modalities: str) -> str:
    """``"at"`` -> ``"T+A"``, as the paper names modality sets (text, audio, visual order)."""
    letters = [_LETTER[c] for c in "tav" if c in modalities]
    return "+".join(letters) if letters else modalities


def best_for(trials: Sequence[FrozenTrial], modalities: str) -> FrozenTrial | None:
    """The trial with the highest dev F1 on ``modalities`` (selection on dev, never on test)."""
    scored = [(metric(t, "dev_f1", modalities), t) for t in trials]
    scored = [(v, t) for v, t in scored if v is not None]
    if not scored:
        return None
    return max(scored, key=lambda vt: (vt[0], -vt[1].number))[1]


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
    growth = trial.params.get(GROWTH_PARAM)
    threshold = trial.params.get(THRESHOLD_PARAM)
    if growth is None or threshold is None:
        return "-"
    return f"{growth:.3g}/{threshold:.3g}"


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
