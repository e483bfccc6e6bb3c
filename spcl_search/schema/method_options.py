"""A balance method's options, checked and typed without torch: ``train --method-option`` and a study spec's
``method_options`` (validated before any worker starts) both go through :func:`method_options`, which the
method's own description (:mod:`spcl_search.methods.registry`) checks.
"""

from __future__ import annotations

from spcl_search.errors import ConfigError
from spcl_search.methods.registry import OptionValue, check_method, method_options


def parse_option(item: str) -> tuple[str, OptionValue]:
    """``"alpha=0.5"`` -> ``("alpha", 0.5)``, ``"smooth=true"`` -> ``("smooth", True)``, ``"modulation_ends=9"`` ->
    ``("modulation_ends", 9)``, ``"normalise=selected"`` -> ``("normalise", "selected")``; the value's fit to the
    option is checked by :func:`method_options`."""
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
    return key, text


__all__ = ["OptionValue", "check_method", "method_options", "parse_option"]
