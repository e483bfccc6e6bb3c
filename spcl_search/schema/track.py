"""What ``--track`` and a spec's ``[track]`` name: a tracking backend and its URI, parsed once.

``mlflow`` (the default URI, ``./mlruns``) or ``mlflow:URI``; ``none`` or empty: no tracking. The trackers
themselves are :mod:`spcl_search.tracking`; this module imports nothing heavy, so the study schema can parse it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spcl_search.errors import ConfigError

#: tracking backends, by the name ``--track`` takes
BACKENDS = ("mlflow",)


@dataclass(frozen=True)
class Target:
    """Where runs go: ``backend`` (``mlflow``) and its ``uri`` (None: the backend's default, ``./mlruns``)."""

    backend: str
    uri: str | None = None

    def __str__(self) -> str:
        return self.backend if self.uri is None else f"{self.backend}:{self.uri}"


def parse_target(value: Any, where: str = "--track") -> Target | None:
    """``mlflow`` or ``mlflow:URI`` (or a spec's ``[track]`` table with ``backend`` and ``uri``) as a :class:`Target`;
    ``none`` or empty: no tracking. Anything else is a one-line ConfigError naming ``where``."""
    if isinstance(value, Mapping):
        unknown = set(value) - {"backend", "uri"}
        if unknown or not isinstance(value.get("backend", "mlflow"), str):
            raise ConfigError(f"{where}: a [track] table takes backend (mlflow) and uri, got {', '.join(sorted(map(str, value)))}")
        uri = value.get("uri")
        value = str(value.get("backend", "mlflow")) + ("" if uri in (None, "") else f":{uri}")
    text = "" if value is None else str(value).strip()
    if text in ("", "none"):
        return None
    backend, _, uri = text.partition(":")
    if backend not in BACKENDS:
        raise ConfigError(f"{where} {text!r}: track with {' or '.join(f'{b}[:URI]' for b in BACKENDS)} (or none)")
    return Target(backend, uri.strip() or None)
