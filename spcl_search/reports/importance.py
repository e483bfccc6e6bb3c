"""Parameter importance per objective with Optuna's evaluators (PED-ANOVA default, fANOVA).

Importances are computed on the SPCL trials only: the no-SPCL baseline has no SPCL parameters
that mattered. PED-ANOVA measures the importance of reaching *low* target values, so maximised
objectives are negated for it (fANOVA decomposes variance and is sign-free).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import plotly.graph_objects as go
from optuna.importance import BaseImportanceEvaluator, FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from spcl_search.errors import ConfigError
from spcl_search.reports import records

EVALUATORS: dict[str, tuple[str, Callable[[], BaseImportanceEvaluator]]] = {
    "ped-anova": ("PED-ANOVA", PedAnovaImportanceEvaluator),
    "fanova": ("fANOVA", lambda: FanovaImportanceEvaluator(seed=0)),
}
#: fewer complete SPCL trials than this and importance is not computed
MIN_TRIALS = 3
#: below this many trials a ranking is flagged as rough (PED-ANOVA looks at the top 10% only)
ROUGH_TRIALS = 20


@dataclass(frozen=True)
class ImportanceResult:
    """Importances of the params for one objective, with what they rest on."""

    objective: str
    evaluator: str
    n_trials: int
    importances: dict[str, float]
    figure: go.Figure | None
    notice: str | None = None


def make_evaluator(name: str) -> tuple[str, BaseImportanceEvaluator]:
    """``"ped-anova"`` or ``"fanova"`` -> (display name, evaluator)."""
    key = name.strip().lower().replace("_", "-").replace("pedanova", "ped-anova")
    if key not in EVALUATORS:
        choices = ", ".join(EVALUATORS)
        raise ConfigError(f"`importance` {name!r}: unknown evaluator; choose one of {choices}")
    label, factory = EVALUATORS[key]
    return label, factory()


def _target(index: int, sign: float) -> Callable[[FrozenTrial], float]:
    return lambda t: sign * t.values[index]


def param_importances(study: optuna.Study, evaluator: str = "ped-anova") -> list[ImportanceResult]:
    """One :class:`ImportanceResult` per objective of ``study``."""
    label, _ = make_evaluator(evaluator)
    info = records.study_info(study)
    trials = [t for t in records.spcl_trials(records.complete_trials(study)) if t.params]
    results = []
    notice: str | None
    for index, (name, direction) in enumerate(zip(info.metric_names, study.directions)):
        title = f"Parameter importance: {name} ({label}, {len(trials)} trials)"
        if len(trials) < MIN_TRIALS:
            notice = f"{name}: {len(trials)} complete SPCL trial(s) with params; importance needs at least {MIN_TRIALS}."
            results.append(ImportanceResult(name, label, len(trials), {}, None, notice))
            continue
        maximise = direction == StudyDirection.MAXIMIZE
        is_ped = label == "PED-ANOVA"
        target = _target(index, -1.0 if (is_ped and maximise) else 1.0)
        copy = records.sub_study(study, trials)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, fresh = make_evaluator(evaluator)
                importances = optuna.importance.get_param_importances(copy, evaluator=fresh, target=target)
                _, fresh = make_evaluator(evaluator)
                figure = optuna.visualization.plot_param_importances(copy, evaluator=fresh, target=target, target_name=name)
        except (ValueError, RuntimeError) as exc:
            notice = f"{name}: {label} could not rank the params ({exc})."
            results.append(ImportanceResult(name, label, len(trials), {}, None, notice))
            continue
        figure.update_layout(title_text=title)
        notice = None
        if len(trials) < ROUGH_TRIALS:
            notice = (
                f"{name}: the ranking rests on only {len(trials)} trials; read it as a rough hint "
                f"(about {ROUGH_TRIALS} or more make it dependable)."
            )
        results.append(ImportanceResult(name, label, len(trials), importances, figure, notice))
    return results
