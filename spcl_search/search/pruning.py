"""Stopping a trial by its dev-F1 curve, with a margin: the median rule, but only for a trial clearly below.

Optuna's MedianPruner stops a trial whose best value so far lies below the median of the finished trials at the
same step. When the study's settings are close (a flat top, as SPCL's is on the IEMOCAP surrogate: the best
quarter of an 8 x 8 grid lies within 0.3 points, against a seed-to-seed spread of about 3), that is a coin toss:
it stops about half of the good settings (45-61% of the top quartile at 16-32 trials, benchmarks/search_quality.py).
:class:`MarginMedianPruner` stops a trial only when its best value so far lies below ``(1 - margin)`` times that
median, so what it stops is the settings that are far behind (an SPCL curriculum that never admits the data).
"""

from __future__ import annotations

import math
import statistics

import optuna
from optuna.trial import FrozenTrial, TrialState


class MarginMedianPruner(optuna.pruners.BasePruner):
    """Stop a (maximised) trial whose best value so far is below ``(1 - margin)`` x the median of the finished
    trials' values at the same step; none before ``n_startup_trials`` finished or before step ``n_warmup_steps``."""

    def __init__(self, margin: float = 0.15, n_startup_trials: int = 5, n_warmup_steps: int = 0, n_min_trials: int = 1) -> None:
        if not 0 <= margin < 1:
            raise ValueError(f"margin must lie in [0, 1), got {margin}")
        if n_startup_trials < 0 or n_warmup_steps < 0 or n_min_trials < 1:
            raise ValueError("n_startup_trials and n_warmup_steps must be >= 0 and n_min_trials >= 1")
        self.margin, self.n_startup_trials, self.n_warmup_steps, self.n_min_trials = margin, n_startup_trials, n_warmup_steps, n_min_trials

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(done) < self.n_startup_trials:
            return False
        at_step = [v for t in done if (v := t.intermediate_values.get(step)) is not None and math.isfinite(v)]
        if len(at_step) < self.n_min_trials:
            return False
        best = max((v for v in trial.intermediate_values.values() if math.isfinite(v)), default=None)
        return best is not None and best < (1 - self.margin) * statistics.median(at_step)
