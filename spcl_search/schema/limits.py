"""The allowed range of every training value, so that a bad one is refused before anything starts.

One table serves ``spcl-search train``'s options (:class:`spcl_search.train.TrainConfig` checks itself when
built), a study spec's fixed values and search ranges (:mod:`spcl_search.schema.spec`) and the workers'
options: a value out of range is a one-line :class:`~spcl_search.errors.ConfigError` naming the option,
raised before a study is created, a dataset loaded or a progress bar drawn. No torch import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spcl_search.errors import ConfigError


@dataclass(frozen=True)
class Limit:
    """A range ``low``..``high`` (either end open or absent), of integers with ``integer``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def holds(self, value: Any) -> bool:
        """Whether ``value`` is a number (an integer with ``integer``) inside the range."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.integer and not float(value).is_integer():
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        """``an integer >= 1``, ``a number > 0``, ``a number in [0, 1)``."""
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {self.high:g}"
        return kind


#: value name -> its range: the training protocol, the model's searched sizes, seeds and threads, SPCL's
#: switches and the other balance methods' options (``alpha`` is OGM-GE's and OPM's)
LIMITS: dict[str, Limit] = {
    "lr": Limit(0, low_open=True),
    "weight_decay": Limit(0),
    "batch_size": Limit(1, integer=True),
    "clip_grad_norm": Limit(0),
    "epochs": Limit(1, integer=True),
    "patience": Limit(0, integer=True),
    "dropout": Limit(0, 1, high_open=True),
    "hidden": Limit(1, integer=True),
    "seed": Limit(0, integer=True),
    "threads": Limit(1, integer=True),
    "cl_threshold": Limit(0, low_open=True),
    "cl_growth": Limit(1),
    "cap": Limit(0, low_open=True),
    "alpha": Limit(0),
    "q_base": Limit(0, 1),
    "p_exe": Limit(0, 1),
    "gamma": Limit(0, low_open=True),
}


def check(name: str, value: Any, option: str | None = None) -> Any:
    """``value`` if it lies in ``name``'s range, else a ConfigError naming ``option`` (default ``--name``)."""
    limit = LIMITS[name]
    if not limit.holds(value):
        raise ConfigError(f"{option or '--' + name.replace('_', '-')} must be {limit.describe()}, got {value!r}")
    return value


def check_optional(name: str, value: Any, option: str | None = None) -> Any:
    """:func:`check` unless ``value`` is None (a default)."""
    return value if value is None else check(name, value, option)
