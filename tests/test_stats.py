"""Paired comparisons on shared seeds: hand-worked intervals, the Wilcoxon test from six seeds, the verdict lines."""

from __future__ import annotations

import math

import pytest

from spcl_search.stats import differences, mean_std, paired_difference


def test_the_interval_is_the_t_interval_of_the_per_seed_differences():
    # diffs 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.302653 -> half-width 4.302653 / sqrt(3) = 2.484138
    d = differences([1.0, 2.0, 3.0])
    assert (d.mean, d.std, d.n) == (2.0, 1.0, 3)
    assert d.low == pytest.approx(2.0 - 2.484138, abs=1e-6) and d.high == pytest.approx(2.0 + 2.484138, abs=1e-6)


def test_only_the_seeds_both_trials_have_are_paired():
    d = paired_difference({0: 60.0, 1: 62.0, 2: 61.0}, {1: 61.0, 2: 59.5, 7: 10.0})
    assert d.seeds == (1, 2) and d.mean == pytest.approx((1.0 + 1.5) / 2)


def test_no_shared_seed_gives_no_comparison():
    assert paired_difference({0: 60.0}, {1: 61.0}) is None


def test_an_interval_above_zero_is_better_at_95_percent():
    # diffs around 1 with sd 0.158114: half-width 2.776445 * 0.158114 / sqrt(5) = 0.196324
    d = differences([1.0, 1.2, 0.8, 1.1, 0.9])
    assert d.low == pytest.approx(1.0 - 0.196324, abs=1e-6)
    assert d.verdict("no curriculum") == "better than no curriculum at 95%"


def test_an_interval_below_zero_is_worse_and_one_across_zero_indistinguishable():
    assert differences([-1.0, -1.2, -0.8]).verdict("x") == "worse than x at 95%"
    assert differences([1.0, 2.0, 3.0]).verdict("no curriculum") == "indistinguishable from no curriculum at 95%"


def test_one_seed_gives_a_difference_but_no_interval_and_says_so():
    d = differences([0.7])
    assert d.low is None and d.decided == 0
    assert "1 shared seed" in d.verdict("no curriculum") and "no interval" in d.interval()


def test_wilcoxon_is_reported_from_six_seeds_on():
    assert differences([1.0, 2.0, 3.0, 4.0, 5.0]).wilcoxon_p is None
    # six positive differences: the exact two-sided p-value is 2 / 2**6
    assert differences([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).wilcoxon_p == pytest.approx(2 / 64)


def test_mean_and_std_of_one_value_has_no_std():
    assert mean_std([3.0]) == (3.0, None)
    assert mean_std([1.0, 3.0]) == (2.0, math.sqrt(2.0))
