"""Paired comparisons on shared seeds: how far apart two settings are, and how sure we are of it.

Two settings trained with the same seed share the initialisation and the batch order (common random
numbers), so the per-seed difference of their dev F1 varies far less than either figure does (on the IEMOCAP
surrogate about 0.6 points against 3). Every claim that one setting beats another (``best``, ``confirm``, the
report) rests on :func:`paired_difference` over the seeds both were trained on: the mean difference with a
t interval, and the Wilcoxon signed-rank test as well from :data:`WILCOXON_MIN_SEEDS` seeds on.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: the confidence level of every interval shown
LEVEL = 0.95
#: from this many shared seeds on, the Wilcoxon signed-rank test is reported beside the t interval
WILCOXON_MIN_SEEDS = 6


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` over ``n`` shared seeds: the mean, the spread of the per-seed differences, a two-sided t interval
    at :data:`LEVEL` (none with one seed) and, with enough seeds, the two-sided Wilcoxon signed-rank p-value."""

    mean: float
    n: int
    std: float | None = None
    low: float | None = None
    high: float | None = None
    wilcoxon_p: float | None = None
    seeds: tuple[int, ...] = ()

    @property
    def decided(self) -> int:
        """+1 when the interval lies above 0, -1 when below, 0 when it holds 0 or there is none."""
        if self.low is None or self.high is None:
            return 0
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    def interval(self) -> str:
        """``"+0.42 [-0.31, +1.15]"`` (95% t interval over the seeds), or ``"+0.42 (1 seed, no interval)"``."""
        if self.low is None or self.high is None:
            return f"{self.mean:+.2f} ({self.n} seed{'s' if self.n != 1 else ''}, no interval)"
        text = f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"
        return text + (f" Wilcoxon p={self.wilcoxon_p:.3f}" if self.wilcoxon_p is not None else "")

    def verdict(self, other: str) -> str:
        """One line: ``"better than no curriculum at 95%"``, ``"worse than ..."``, or ``"indistinguishable from ..."``."""
        level = f"{LEVEL:.0%}"
        if self.low is None:
            return f"not tested against {other}: {self.n} shared seed{'s' if self.n != 1 else ''} (confirm with more seeds)"
        if self.decided > 0:
            return f"better than {other} at {level}"
        if self.decided < 0:
            return f"worse than {other} at {level}"
        return f"indistinguishable from {other} at {level}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float]) -> PairedDifference | None:
    """``a - b`` on the seeds both have (seed -> figure), or None when they share no seed."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diffs = [float(a[s]) - float(b[s]) for s in seeds]
    return differences(diffs, seeds)


def differences(diffs: Sequence[float], seeds: Sequence[int] = ()) -> PairedDifference:
    """The :class:`PairedDifference` of per-seed differences ``diffs``."""
    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return PairedDifference(mean, n, seeds=tuple(seeds))
    from scipy import stats

    std = statistics.stdev(diffs)
    if std == 0:  # every seed gave the same difference: the interval is that point
        low = high = mean
    else:
        ci = stats.ttest_1samp(diffs, 0.0).confidence_interval(confidence_level=LEVEL)
        low, high = float(ci.low), float(ci.high)
    p = None
    if n >= WILCOXON_MIN_SEEDS:
        p = 1.0 if all(d == 0 for d in diffs) else float(stats.wilcoxon(diffs, zero_method="zsplit").pvalue)
    return PairedDifference(mean, n, std, low, high, p, tuple(seeds))


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None with fewer than two values)."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def pm(mean: float | None, std: float | None) -> str:
    """``"58.10 ± 2.81"`` (two decimals; no spread with one value), or ``"-"`` when there is no figure."""
    if mean is None:
        return "-"
    return f"{mean:.2f}" + ("" if std is None else f" ± {std:.2f}")
