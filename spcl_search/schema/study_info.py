"""What a stored study says about itself, read once: :class:`StudyInfo`.

A study's user attrs (``spec``, ``kind``, ``backbone``, ``variant``, ``method``, ``confirms``, ``data_sha256``)
are read here and nowhere else by key: the stored spec is parsed once (:func:`spcl_search.schema.spec.from_dict`,
where the legacy defaults, :data:`~spcl_search.schema.spec.LEGACY_DEFAULTS`, and the older keys such as the
``spcl`` table are mapped), and status, best, report and compare read the typed fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from spcl_search.errors import ConfigError
from spcl_search.schema.records import SPEC_ATTR
from spcl_search.schema.spec import LEGACY_DEFAULTS, StudySpec, from_dict

#: the study attr naming the study a confirmation study confirms
CONFIRMS_ATTR = "confirms"
#: the study attr holding the SHA-256 of the data its trials trained on
DATA_SHA256_ATTR = "data_sha256"


@dataclass(frozen=True)
class StudyInfo:
    """What a study says about itself: its attrs (written by ``open_study``), metric names and trial counts.

    A study stored before backbones had forms has no ``variant``: it trained the original forms; one stored
    before balance methods has no ``method``: it trained SPCL (:data:`~spcl_search.schema.spec.LEGACY_DEFAULTS`).
    """

    name: str
    kind: str
    backbone: str
    dataset: str
    metric_names: tuple[str, ...]
    n_trials: int
    n_complete: int
    surrogate: str = ""
    variant: str = LEGACY_DEFAULTS["variant"]
    #: the study's balance method (studies stored before methods existed: SPCL)
    method: str = LEGACY_DEFAULTS["method"]
    #: forward-pass arithmetic of its trials (studies stored before it existed: fp32)
    precision: str = LEGACY_DEFAULTS["precision"]
    #: the study's budget (its spec's ``n_trials``; 0 when unknown)
    budget: int = 0
    #: the stored spec, parsed (None: the study has none that this version can read)
    spec: StudySpec | None = None
    #: the name of the study this one confirms (a confirmation study), else None
    confirms: str | None = None
    #: the SHA-256 of the data file its trials trained on, when recorded
    data_sha256: str | None = None

    @property
    def is_multi_objective(self) -> bool:
        return len(self.metric_names) > 1


def parsed_spec(attrs: dict[str, Any]) -> StudySpec | None:
    """The stored spec of a study with user ``attrs``, parsed with the legacy keys mapped (None: no spec, or one
    this version cannot read)."""
    raw = attrs.get(SPEC_ATTR)
    if not isinstance(raw, dict) or "backbone" not in raw:
        return None
    try:
        return from_dict(raw)
    except ConfigError:
        return None


def study_info(study: optuna.Study) -> StudyInfo:
    """The :class:`StudyInfo` of ``study``: its attrs, else its parsed spec, else the legacy defaults."""
    attrs = study.user_attrs
    stored = attrs.get(SPEC_ATTR)
    raw: dict[str, Any] = stored if isinstance(stored, dict) else {}
    spec = parsed_spec(attrs)
    n_objectives = len(study.directions)
    trials = study.get_trials(deepcopy=False)

    def attr(key: str, fallback: str) -> str:
        given = getattr(spec, key, None) if spec is not None else raw.get(key)
        return str(attrs.get(key) or given or fallback)

    return StudyInfo(
        name=study.study_name,
        kind=attr("kind", "balance" if n_objectives > 1 else "search"),
        backbone=attr("backbone", "?"),
        dataset=attr("dataset", "?"),
        metric_names=tuple(study.metric_names or raw.get("objectives") or [f"objective {i}" for i in range(n_objectives)]),
        n_trials=len(trials),
        n_complete=sum(t.state == TrialState.COMPLETE for t in trials),
        surrogate=next((str(t.user_attrs["data_surrogate"]) for t in trials if t.user_attrs.get("data_surrogate")), ""),
        variant=attr("variant", LEGACY_DEFAULTS["variant"]),
        method=attr("method", LEGACY_DEFAULTS["method"]),
        precision=attr("precision", LEGACY_DEFAULTS["precision"]),
        budget=int(spec.n_trials if spec is not None else raw.get("n_trials") or 0),
        spec=spec,
        confirms=str(attrs[CONFIRMS_ATTR]) if attrs.get(CONFIRMS_ATTR) else None,
        data_sha256=str(attrs[DATA_SHA256_ATTR]) if attrs.get(DATA_SHA256_ATTR) else None,
    )


__all__ = ["CONFIRMS_ATTR", "DATA_SHA256_ATTR", "StudyInfo", "parsed_spec", "study_info"]
