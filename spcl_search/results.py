"""What a training run gives back: one record per epoch and the run's result (no torch import).

:func:`spcl_search.train.train` returns them; the search's objective reads them from any trainer
(:class:`spcl_search.search.objectives.Trainer`), so a trainer that needs no torch can return them too.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass
from typing import Any

#: how epochs are numbered everywhere (records, the progress bar, summaries, logs, status, the report, JSON):
#: the first epoch is epoch 1
EPOCH_BASE = 1


@dataclass
class EpochRecord:
    """Figures of one epoch (``epoch`` counts from :data:`EPOCH_BASE`, 1). F1 and accuracy are weighted-F1 /
    accuracy in percent.

    ``seconds`` is the training pass alone (what the benchmarks compare); ``eval_seconds`` the dev
    and test evaluation after it.
    """

    epoch: int
    train_loss: float
    take_rate: float
    threshold: float | None
    dev_f1: float
    dev_acc: float
    test_f1: float
    test_acc: float
    seconds: float
    eval_seconds: float
    uni_nll: dict[str, float]
    ratio: dict[str, float]


@dataclass
class TrainResult:
    """Outcome of a run: the best dev epoch (1-based) and the test figures at that epoch."""

    config: dict[str, Any]
    best_epoch: int
    dev_f1: float
    dev_acc: float
    test_f1: float
    test_acc: float
    history: list[EpochRecord]
    seconds_per_epoch: float
    device: str
    take_rate: float
    dataset: dict[str, Any]
    versions: dict[str, str]
    model: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; ``epoch_base`` says that ``best_epoch`` and each ``history[i].epoch`` count from 1."""
        return {**asdict(self), "epoch_base": EPOCH_BASE}


def drive(run: Generator[EpochRecord, None, TrainResult], on_epoch: Callable[[EpochRecord], None] | None = None) -> TrainResult:
    """Run ``run`` (a training that yields one :class:`EpochRecord` per epoch) to its end, calling ``on_epoch``
    after each epoch; whatever ``on_epoch`` raises propagates and leaves the run unfinished."""
    while True:
        try:
            record = next(run)
        except StopIteration as stop:
            result: TrainResult = stop.value
            return result
        if on_epoch is not None:
            on_epoch(record)
