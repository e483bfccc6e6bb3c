"""Racing over seeds: a setting gets the next seed only while it is not significantly worse than the incumbent.

SMAC-style intensification with seeds as the instances. A racing trial (spec ``race``) trains its setting on
the study's first seed, reports that seed's dev F1 as the step named by the seed, and asks the pruner before
each further seed. The incumbent is the best complete trial that is not a baseline: it was trained on every
seed, so each challenger is compared with it on the seeds both have (common random numbers).

:class:`RacingPruner` (``test = "t"``, the default) stops a challenger when the one-sided paired test puts its
mean difference to the incumbent below zero at level ``alpha``. The per-seed spread of a difference comes from
the study itself, pooled over every trial that shares two or more seeds with the incumbent (the challenger
included), so a challenger can be stopped after its first seed once the study has seen a few; until the study
has any such trial it is never stopped. ``test = "wilcoxon"`` takes the one-sided Wilcoxon signed-rank test of
the shared differences instead (the test of Optuna's WilcoxonPruner, against the same incumbent, never a baseline),
which needs about six seeds before it can stop anything at the usual levels.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping

import optuna
from optuna.trial import FrozenTrial, TrialState

from spcl_search.schema.baseline import marks_baseline


def incumbent(trials: Iterable[FrozenTrial]) -> FrozenTrial | None:
    """The best complete trial that is not a no-curriculum baseline (the earlier one on ties)."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and not marks_baseline(t.user_attrs)]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def pooled_spread(trials: Iterable[FrozenTrial], best: FrozenTrial) -> tuple[float, int] | None:
    """The pooled standard deviation of per-seed differences to ``best`` and its degrees of freedom, over the
    trials that share at least two seeds with it; None when none does."""
    reference = best.intermediate_values
    total, df = 0.0, 0
    for t in trials:
        if t.number == best.number or marks_baseline(t.user_attrs):
            continue
        diffs = _diffs(t.intermediate_values, reference)
        if len(diffs) >= 2:
            total += statistics.variance(diffs) * (len(diffs) - 1)
            df += len(diffs) - 1
    return None if df == 0 else (math.sqrt(total / df), df)


def _diffs(values: Mapping[int, float], reference: Mapping[int, float]) -> list[float]:
    return [values[s] - reference[s] for s in sorted(set(values) & set(reference))]


class RacingPruner(optuna.pruners.BasePruner):
    """Stop a raced setting once it is worse than the incumbent on the shared seeds: one-sided paired t with the
    study's pooled spread (``test="t"``) or Wilcoxon signed-rank (``test="wilcoxon"``), at level ``alpha``."""

    def __init__(self, alpha: float = 0.1, test: str = "t") -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
        if test not in ("t", "wilcoxon"):
            raise ValueError(f"test must be 't' or 'wilcoxon', got {test!r}")
        self.alpha, self.test = alpha, test

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if marks_baseline(trial.user_attrs) or not trial.intermediate_values:
            return False
        trials = study.get_trials(deepcopy=False)
        best = incumbent(trials)
        if best is None or best.number == trial.number:
            return False
        diffs = _diffs(trial.intermediate_values, best.intermediate_values)
        if self.test == "wilcoxon":
            return self._wilcoxon(diffs)
        spread = pooled_spread([*[t for t in trials if t.number != trial.number], trial], best)
        if not diffs or spread is None:
            return False
        from scipy import stats

        sigma, df = spread
        bound = statistics.fmean(diffs) + float(stats.t.ppf(1 - self.alpha, df)) * sigma / math.sqrt(len(diffs))
        return bound < 0

    def _wilcoxon(self, diffs: list[float]) -> bool:
        """The one-sided signed-rank test that the challenger is below the incumbent (needs two shared seeds)."""
        if len(diffs) < 2 or statistics.fmean(diffs) >= 0:
            return False
        from scipy import stats

        return bool(stats.wilcoxon(diffs, alternative="less", zero_method="zsplit").pvalue < self.alpha)


def make_racing_pruner(race: Mapping[str, object]) -> optuna.pruners.BasePruner:
    """The pruner of a racing spec (:class:`RacingPruner` with its ``alpha`` and ``test``)."""
    return RacingPruner(float(race.get("alpha", 0.1)), str(race.get("test", "t")))  # type: ignore[arg-type]
