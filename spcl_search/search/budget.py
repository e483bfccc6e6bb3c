"""How many trials of a study's budget are used, and whether a worker may start another.

A trial uses one slot of the budget when it is

* finished: COMPLETE, PRUNED, or FAIL *unless* a retry of it exists (a trial whose worker died is
  failed by the heartbeat check and re-created as a WAITING retry, which inherits the slot);
* RUNNING (its slot is reserved while it runs).

WAITING trials (enqueued warm-start settings and retries) use no slot until a worker takes them;
``study.ask`` always takes a waiting trial before it samples a new one. Workers reserve a slot under
the study lock (:mod:`spcl_search.search.lock`), so with any number of workers exactly ``n_trials``
trials finish. A retried trial's slot never goes free in between: until its retry exists the failed
trial counts as finished.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState


@dataclass(frozen=True)
class BudgetCounts:
    """Trials of a study by what they mean for the budget."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    retried: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        """Trials that used their slot for good (complete, pruned, failed and not retried)."""
        return self.complete + self.pruned + self.failed

    @property
    def used(self) -> int:
        """Finished plus running: slots no worker may take."""
        return self.finished + self.running


def retried_numbers(trials: Iterable[FrozenTrial]) -> set[int]:
    """Numbers of the failed trials that have a retry (the retry names its predecessor last)."""
    out: set[int] = set()
    for t in trials:
        history = t.system_attrs.get("retry_history")
        if history:
            out.add(int(history[-1]))
    return out


def count(trials: Iterable[FrozenTrial]) -> BudgetCounts:
    """Count ``trials`` for the budget (see the module docstring)."""
    trials = list(trials)
    retried = retried_numbers(trials)
    c = {"complete": 0, "pruned": 0, "failed": 0, "retried": 0, "running": 0, "waiting": 0}
    for t in trials:
        if t.state == TrialState.COMPLETE:
            c["complete"] += 1
        elif t.state == TrialState.PRUNED:
            c["pruned"] += 1
        elif t.state == TrialState.FAIL:
            c["retried" if t.number in retried else "failed"] += 1
        elif t.state == TrialState.RUNNING:
            c["running"] += 1
        elif t.state == TrialState.WAITING:
            c["waiting"] += 1
    return BudgetCounts(**c)


def may_start(counts: BudgetCounts, n_trials: int) -> bool:
    """Whether a worker may take a slot now."""
    return counts.used < n_trials


def is_done(counts: BudgetCounts, n_trials: int) -> bool:
    """Whether the budget is spent for good (nothing running could still give a slot back)."""
    return counts.finished >= n_trials
