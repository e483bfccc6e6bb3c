"""Create a study from a spec, or join an existing one and adopt its stored spec.

Workers that start at the same moment on a fresh database create the study once (the database refuses
a second study of one name), store one spec and enqueue the warm-start trials once (under the study
lock, which joiners take too).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import optuna

from spcl_search.errors import ConfigError
from spcl_search.schema import spec as schema
from spcl_search.schema.baseline import BASELINE_ATTRS
from spcl_search.schema.records import SPEC_ATTR
from spcl_search.schema.spec import METHOD_PARAMS, Request, StudySpec
from spcl_search.schema.study_info import DATA_SHA256_ATTR
from spcl_search.search.algorithms import make_pruner, make_sampler
from spcl_search.search.lock import study_lock
from spcl_search.search.paper import warm_start_params
from spcl_search.search.storage import StudyStorage, mask_url, study_exists

logger = logging.getLogger(__name__)


@dataclass
class OpenedStudy:
    """A study ready for trials, its effective spec, and whether this call created it."""

    study: optuna.Study
    spec: StudySpec
    created: bool
    notes: list[str]


def stored_spec(study: optuna.Study) -> StudySpec:
    """The spec a study was created with (ConfigError if it was not made by spcl-search)."""
    raw = study.user_attrs.get(SPEC_ATTR)
    if not isinstance(raw, dict):
        raise ConfigError(f"study {study.study_name!r} was not created by spcl-search (it has no stored spec); use another --study name")
    return schema.from_dict(raw)


def load(storage: optuna.storages.BaseStorage, name: str, spec: StudySpec | None = None) -> optuna.Study:
    """Load study ``name`` with the sampler and pruner of its spec."""
    if spec is None:
        spec = stored_spec(optuna.load_study(study_name=name, storage=storage))
    return optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(spec), pruner=make_pruner(spec))


def _queued(spec: StudySpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Warm-start and baseline parameter sets to enqueue when the study is created (checked)."""
    queued = warm_start_params(spec.backbone, spec.dataset, spec.warm_start, spec.kind, spec.modalities)
    for params in queued:
        for key, value in params.items():
            rng = spec.space.get(key)
            if rng is not None and not rng.contains(value):
                raise ConfigError(
                    f"--warm-start {spec.warm_start}: the paper's {key} = {value} lies outside the search range "
                    f"{rng.to_dict()}; widen space.{key} or drop the warm start"
                )
    return queued, baseline_params(spec) if spec.baseline else []


def baseline_params(spec: StudySpec) -> list[dict[str, Any]]:
    """The params of the no-balance-method baseline trial(s) of ``spec``: one per modality set a search trains
    (or one for a balance study). They are the space's top corner (for SPCL the setting closest to no
    curriculum), so that samplers that learn from these trials are not misled; every reader tells the
    baseline apart by its attrs (:func:`~spcl_search.schema.records.marks_baseline`), never by its params."""
    upper = {name: rng.upper for name, rng in spec.space.items() if name in METHOD_PARAMS[spec.method]}
    if spec.kind == "search" and len(spec.modalities) > 1:
        return [{**upper, "modalities": m} for m in spec.modalities]
    return [dict(upper)]


def _enqueue(study: optuna.Study, spec: StudySpec, queued: list[dict[str, Any]], baselines: list[dict[str, Any]]) -> list[str]:
    notes = []
    for params in queued:
        study.enqueue_trial(params, user_attrs={"use_cl": True, "enqueued": "paper"})
    for params in baselines:
        study.enqueue_trial(params, user_attrs={**BASELINE_ATTRS, "enqueued": "baseline"})
    if queued:
        notes.append(f"enqueued {len(queued)} paper setting(s) as the first trials")
    if baselines:
        notes.append(f"enqueued {len(baselines)} no-SPCL baseline trial(s)")
    if len(queued) + len(baselines) > spec.n_trials:
        notes.append(f"only {spec.n_trials} of the {len(queued) + len(baselines)} enqueued trials fit the budget")
    return notes


#: seconds a joining worker waits for a study another process is creating to get its spec (the creator stores it
#: within milliseconds of creating the study, under the lock; a study still without one after this is foreign or
#: was left half made by a creator that died, and is refused)
CREATION_WAIT = 15.0


def open_study(
    storage: StudyStorage,
    requested: Mapping[str, Any],
    *,
    create: bool = True,
    fingerprint: str | None = None,
    attrs: Mapping[str, Any] | None = None,
    queue: Sequence[tuple[dict[str, Any], dict[str, Any]]] = (),
) -> OpenedStudy:
    """Create the study ``requested`` describes, or join it if it exists.

    ``requested`` holds the spec fields given explicitly (file fields and options). Joining adopts the
    stored spec; an explicit field that differs is refused with a ConfigError naming it, except
    ``n_trials`` (the budget may be changed) and ``data`` (paths differ between machines).
    ``fingerprint`` is the dataset's sha256, stored at creation (a worker checks its features against it). A study created here
    also gets the user ``attrs`` and the ``queue`` of (params, trial user attrs) enqueued.

    The study is created by one process (the database refuses a second study of that name), which then
    stores its spec, attrs and first trials under the study lock; a process that joins takes the lock too
    and waits while the study has no spec yet, so no worker ever sees it half made. The lock is never taken
    on a study that does not exist (a storage proxy refuses such a lease).
    """
    request = Request.of(requested)
    name = request.study_name
    request = request.but(name=name)
    if create and "backbone" in request and not study_exists(storage, name):
        created = _create(storage, request, name, fingerprint, attrs, queue)
        if created is not None:
            return created
    deadline = time.monotonic() + CREATION_WAIT
    while True:
        if not study_exists(storage, name):
            raise ConfigError(
                f"no study {name!r} in {mask_url(storage.url)}; create it with --backbone or --spec (spcl-search run), "
                "or check --study and --storage"
            )
        with study_lock(storage, name):
            study = optuna.load_study(study_name=name, storage=storage)
            if SPEC_ATTR in study.user_attrs or time.monotonic() > deadline:
                return _join(storage, study, request)
        time.sleep(0.2)  # another process created it a moment ago and is storing its spec


def _join(storage: StudyStorage, study: optuna.Study, request: Request) -> OpenedStudy:
    name = study.study_name
    notes: list[str] = []
    spec = stored_spec(study)
    diff = schema.conflicts(spec, request)
    if diff:
        text = "; ".join(f"{k} is {have!r} there but {want!r} here" for k, (have, want) in diff.items())
        raise ConfigError(
            f"study {name!r} in {mask_url(storage.url)} has another spec: {text}; drop those options to join it, or pick a new --study name"
        )
    want = request.get("n_trials")
    if want is not None and want != spec.n_trials:
        notes.append(f"budget of study {name!r} changed from {spec.n_trials} to {want} trials")
        spec = replace(spec, n_trials=want)
        study.set_user_attr(SPEC_ATTR, spec.to_dict())
    spec = schema.with_runtime(spec, request)
    return OpenedStudy(load(storage, name, spec), spec, False, notes)


def _create(
    storage: StudyStorage,
    request: Request,
    name: str,
    fingerprint: str | None,
    attrs: Mapping[str, Any] | None,
    queue: Sequence[tuple[dict[str, Any], dict[str, Any]]],
) -> OpenedStudy | None:
    """Create study ``name`` and store its spec and first trials; None when another process created it first."""
    spec = schema.build(request)
    queued, baselines = _queued(spec)
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            directions=["maximize"] * len(spec.metrics),
            sampler=make_sampler(spec),
            pruner=make_pruner(spec),
        )
    except optuna.exceptions.DuplicatedStudyError:
        return None
    try:
        with study_lock(storage, name):  # joiners wait until the spec and the first trials are stored
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(spec.metrics))
            for key, value in (
                (SPEC_ATTR, spec.to_dict()),
                ("kind", spec.kind),
                ("backbone", spec.backbone),
                ("variant", spec.variant),
                ("method", spec.method),
                ("dataset", spec.dataset),
            ):
                study.set_user_attr(key, value)
            if fingerprint:
                study.set_user_attr(DATA_SHA256_ATTR, fingerprint)
            for key, value in (attrs or {}).items():
                study.set_user_attr(key, value)
            notes = _enqueue(study, spec, queued, baselines)
            for params, trial_attrs in queue:
                study.enqueue_trial(params, user_attrs=trial_attrs)
    except BaseException:
        optuna.delete_study(study_name=name, storage=storage)
        raise
    return OpenedStudy(study, spec, True, notes)


def budget(storage: optuna.storages.BaseStorage, study_id: int) -> int:
    """The study's current budget (``n_trials`` of its stored spec, read afresh from ``storage``)."""
    raw = storage.get_study_user_attrs(study_id).get(SPEC_ATTR, {})
    return int(raw.get("n_trials", 0))
