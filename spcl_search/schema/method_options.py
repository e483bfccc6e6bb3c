"""A balance method's options, checked and typed without torch: ``train --method-option`` and a study spec's
``method_options`` (validated before any worker starts) both go through :func:`method_options`.

An option's type is its default's in :data:`backbones.defaults.METHOD_OPTIONS`: a number (alpha, q_base, ...),
true/false (OGM-GE's ``smooth``), or an epoch (:data:`~backbones.defaults.EPOCH_OPTIONS`: OGM-GE's modulation
window, a whole number >= 0, None for no bound).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from backbones.defaults import EPOCH_OPTIONS, METHOD_OPTIONS, METHODS
from spcl_search.errors import ConfigError

#: a method option's value: a number, a switch, an epoch or no bound
OptionValue = float | bool | int | None


def check_method(name: str) -> str:
    """``name`` if it is a known method, else ConfigError naming the choices."""
    if name not in METHODS:
        raise ConfigError(f"--method {name!r}: choose one of {', '.join(METHODS)}")
    return name


def parse_option(item: str) -> tuple[str, OptionValue]:
    """``"alpha=0.5"`` -> ``("alpha", 0.5)``, ``"smooth=true"`` -> ``("smooth", True)``, ``"modulation_ends=9"`` ->
    ``("modulation_ends", 9)``; the value's fit to the option is checked by :func:`method_options`."""
    key, sep, text = (s.strip() for s in item.partition("="))
    if not sep or not key or not text:
        raise ConfigError(f"--method-option {item!r}: use KEY=VALUE, e.g. alpha=0.5 or smooth=true")
    if text.lower() in ("true", "false"):
        return key, text.lower() == "true"
    for convert in (int, float):
        try:
            return key, convert(text)
        except ValueError:
            continue
    raise ConfigError(f"--method-option {item!r}: the value must be a number or true/false")


def _value(method: str, key: str, default: OptionValue, value: Any) -> OptionValue:
    """``value`` as option ``key`` takes it, or a one-line ConfigError naming the option."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"--method {method}: option {key} must be true or false, got {value!r}")
        return value
    if key in EPOCH_OPTIONS:
        if value is None:
            return None
        if not (number and float(value).is_integer() and value >= 1):
            raise ConfigError(f"--method {method}: option {key} is an epoch, a whole number >= 1 (epochs count from 1), got {value!r}")
        return int(value)
    if not number:
        raise ConfigError(f"--method {method}: option {key} must be a number, got {value!r}")
    if value < 0:
        raise ConfigError(f"--method {method}: option {key} must be >= 0, got {value!r}")
    return float(value)


def method_options(name: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The method's options: its defaults overridden by ``given``, each of its type (unknown or ill-typed ones
    refused); the values are :data:`OptionValue`."""
    defaults = METHOD_OPTIONS[check_method(name)]
    given = dict(given or {})
    unknown = set(given) - set(defaults)
    if unknown:
        allowed = ", ".join(defaults) or "none"
        raise ConfigError(f"--method {name}: unknown option(s) {', '.join(sorted(unknown))}; it takes {allowed}")
    out: dict[str, Any] = {key: _value(name, key, default, given.get(key, default)) for key, default in defaults.items()}
    if name == "opm" and not (0 <= out["q_base"] <= 1 and 0 <= out["p_exe"] <= 1):
        raise ConfigError(f"--method opm: q_base and p_exe are probabilities in [0, 1], got {out['q_base']} and {out['p_exe']}")
    starts, ends = out.get("modulation_starts"), out.get("modulation_ends")
    if isinstance(starts, int) and isinstance(ends, int) and ends < starts:
        raise ConfigError(f"--method {name}: option modulation_ends ({ends}) comes before modulation_starts ({starts})")
    return out


__all__ = ["OptionValue", "check_method", "method_options", "parse_option"]
