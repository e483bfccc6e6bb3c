"""The confirmation stage: train a study's best settings again, beside the baseline, on fresh shared seeds.

A search reports the maximum over settings of noisy figures, so its best dev F1 is optimistic and its ranking
of close settings is a coin toss. :func:`confirm` takes the ``top`` settings of a finished study by dev F1 (per
modality set), plus the no-balance-method baseline, and trains each on the same ``seeds``, by default seeds
the search never used. The answer is then the best mean dev F1 over those seeds, with its paired difference to
the baseline and to the runner-up (:mod:`spcl_search.stats`; :func:`spcl_search.schema.best.best_settings`).

The confirmation is a **linked study**, ``<study>-confirm``: the parent's spec with the confirmation seeds, no
pruner, and exactly the enqueued trials as its budget (each trial records ``confirms``, the number of the search
trial it repeats; the study records ``confirms``, the parent's name). It lives in the same storage, so any
worker runs it (``spcl-search worker --study <study>-confirm``, a Slurm array, ``spcl-search confirm`` itself),
while the search's own trials, sampler, pruner and figures stay untouched. Every read command shows the parent's
answer from it (:func:`confirmation_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from spcl_search.errors import ConfigError
from spcl_search.schema import study_info as study_info_module
from spcl_search.schema.baseline import BASELINE_ATTRS
from spcl_search.schema.best import ranked_trials
from spcl_search.schema.records import TrialRecord
from spcl_search.schema.spec import TRI_MODAL, StudySpec
from spcl_search.schema.study_info import study_info
from spcl_search.search import budget as budgets
from spcl_search.search.storage import StudyStorage, mask_url, study_exists
from spcl_search.search.study import OpenedStudy, baseline_params, open_study, stored_spec

#: the confirmation study of ``S`` is ``S`` + this suffix
SUFFIX = "-confirm"
#: study user attr of a confirmation study: the name of the study it confirms
CONFIRMS_ATTR = study_info_module.CONFIRMS_ATTR
#: settings confirmed per modality set, and fresh seeds, when none are asked for
DEFAULT_TOP = 3
DEFAULT_SEEDS = 5


@dataclass
class Confirmation:
    """A confirmation study ready for workers: what it trains, and whether this call created it."""

    opened: OpenedStudy
    parent: str
    picks: list[int]
    seeds: tuple[int, ...]
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.opened.spec.name


def confirmation_name(study: str) -> str:
    """The name of the confirmation study of ``study``."""
    return study + SUFFIX


def is_confirmation(study: optuna.Study) -> bool:
    """Whether ``study`` is the confirmation study of another."""
    return bool(study.user_attrs.get(CONFIRMS_ATTR))


def confirmation_of(storage: optuna.storages.BaseStorage, study: optuna.Study | str) -> optuna.Study | None:
    """The confirmation study of ``study`` in ``storage``, or None when it has not been confirmed."""
    name = study if isinstance(study, str) else study.study_name
    child = confirmation_name(name)
    if not study_exists(storage, child):
        return None
    found = optuna.load_study(study_name=child, storage=storage)
    return found if found.user_attrs.get(CONFIRMS_ATTR) == name else None


def fresh_seeds(spec: StudySpec, n: int = DEFAULT_SEEDS) -> tuple[int, ...]:
    """``n`` seeds the search of ``spec`` never used: the ones after its largest."""
    start = max(spec.seeds) + 1
    return tuple(range(start, start + n))


def top_trials(study: optuna.Study, spec: StudySpec, top: int) -> list[FrozenTrial]:
    """The ``top`` complete trials by dev F1 (not baselines): per modality set for a search, by tri-modal dev F1
    for a balance study (every trial trains every set)."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if not TrialRecord.of(t).is_baseline]
    if spec.kind == "balance":
        return ranked_trials(complete, TRI_MODAL)[:top]
    picks: list[FrozenTrial] = []
    for m in spec.modalities:
        picks += ranked_trials([t for t in complete if TrialRecord.of(t).modalities in (None, m)], m)[:top]
    return picks


def confirm(
    storage: StudyStorage, name: str, *, top: int = DEFAULT_TOP, seeds: Sequence[int] | None = None, data: str | None = None
) -> Confirmation:
    """Create (or resume) the confirmation study of study ``name``: its ``top`` settings and the baseline on
    ``seeds`` (default: :func:`fresh_seeds`). One-line ConfigErrors say what to do when it cannot."""
    if top < 1:
        raise ConfigError(f"`top` must be >= 1, got {top}")
    if not study_exists(storage, name):
        raise ConfigError(
            f"no study {name!r} in {mask_url(getattr(storage, 'url', 'this storage'))}; run `spcl-search status` to list them"
        )
    parent = optuna.load_study(study_name=name, storage=storage)
    if is_confirmation(parent):
        raise ConfigError(f"study {name!r} is itself a confirmation (of {parent.user_attrs[CONFIRMS_ATTR]!r}); confirm that one")
    spec = stored_spec(parent)
    counts = budgets.count(parent.get_trials(deepcopy=False))
    if counts.running or not budgets.is_done(counts, spec.n_trials):  # waiting trials past the budget never run
        raise ConfigError(
            f"study {name!r} has finished {counts.finished} of its {spec.n_trials} trials ({counts.running} running); "
            f"confirm once its search is done (spcl-search status --study {name})"
        )
    chosen = tuple(int(s) for s in (seeds if seeds is not None else fresh_seeds(spec)))
    if not chosen or any(s < 0 for s in chosen) or len(set(chosen)) != len(chosen):
        raise ConfigError(f"`seeds` must be distinct integers >= 0, got {list(chosen)}")
    picks = top_trials(parent, spec, top)
    if not picks:
        raise ConfigError(f"study {name!r} has no complete trial to confirm yet; run its search first (spcl-search run --study {name})")
    notes = []
    reused = sorted(set(chosen) & set(spec.seeds))
    if reused:
        notes.append(f"seeds {reused} were used by the search too: its selection bias stays in them (fresh seeds avoid it)")
    queue: list[tuple[dict[str, Any], dict[str, Any]]] = [(dict(t.params), {"use_cl": True, "confirms": t.number}) for t in picks]
    queue += [(params, {**BASELINE_ATTRS, "enqueued": "baseline"}) for params in baseline_params(spec)]
    child = confirmation_name(name)
    request = {
        **{k: v for k, v in spec.to_dict().items() if k != "objectives"},
        "name": child,
        "data": data or spec.data,
        "seeds": list(chosen),
        "n_trials": len(queue),
        "sampler": "random",
        "pruner": "none",
        "pruner_options": {},
        "warm_start": "none",
        "baseline": False,
        "race": {},
    }
    if study_exists(storage, child):
        existing = stored_spec(optuna.load_study(study_name=child, storage=storage))
        if tuple(existing.seeds) != chosen:
            raise ConfigError(
                f"study {name!r} was already confirmed on seeds {list(existing.seeds)}; see `spcl-search best --study {name}`, "
                f"or confirm with `seeds` {','.join(map(str, existing.seeds))} to finish that confirmation"
            )
        request = {"name": child, "data": request["data"]}  # join it as it is (its picks were fixed when it was made)
    opened = open_study(
        storage,
        request,
        fingerprint=study_info(parent).data_sha256,
        attrs={CONFIRMS_ATTR: name, "confirm": {"top": top, "seeds": list(chosen), "trials": [t.number for t in picks]}},
        queue=queue,
    )
    recorded = opened.study.user_attrs.get("confirm", {})
    return Confirmation(opened, name, list(recorded.get("trials", [])), tuple(opened.spec.seeds), notes)
