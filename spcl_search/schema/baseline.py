"""How a stored trial says it is a baseline (trained with no balance method, for comparison): read and written here only.

Its own module, importing nothing of the project, so that the search modules (racing) can tell a baseline apart
without importing the study schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the user attrs that mark an enqueued trial as the baseline (the stored key predates methods: ``use_cl``)
BASELINE_ATTRS: dict[str, Any] = {"use_cl": False}


def marks_baseline(attrs: Mapping[str, Any]) -> bool:
    """Whether a trial's user ``attrs`` mark it as a baseline: the one place that reads the stored ``use_cl``."""
    return attrs.get("use_cl", True) is False
