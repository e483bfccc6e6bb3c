"""Trial records: the user attrs of one trial, typed (docs/architecture.md, "Study records").

The objective fills a :class:`TrialRecord` and stores it (``optuna_internals.set_trial_user_attrs``); ``status``, ``best``, the report,
``compare`` and the dashboard push read trials back with :meth:`TrialRecord.of`. The stored keys stay flat
(``dev_f1_atv``, ``use_cl``, ...), as existing databases and optuna-dashboard know them: the record is a
typed view over them. A new per-trial figure is one field of :class:`TrialRecord`; a new figure per
modality set is one field of :class:`SetResult` (stored as ``<field>_<set>``).

"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from optuna.trial import FrozenTrial

from spcl_search.results import EPOCH_BASE
from spcl_search.schema.baseline import marks_baseline
from spcl_search.schema.spec import MODALITY_SETS

#: study user attr holding the effective spec (its other attrs: kind, backbone, variant, dataset, data_sha256)
SPEC_ATTR = "spec"

_SET_KEY = re.compile(r"^(?P<name>.+)_(?P<m>[atv]{1,3})$")


@dataclass
class SetResult:
    """The figures of one modality set in one trial: means over the seeds (curves: the first seed).

    F1 and accuracy are weighted-F1 / accuracy in percent. A pruned trial has its best epoch so far
    and no accuracies; ``per_seed`` is there with several seeds only.
    """

    dev_f1: float | None = None
    test_f1: float | None = None
    dev_acc: float | None = None
    test_acc: float | None = None
    take_rate: float | None = None
    epoch_seconds: float | None = None
    best_epoch: int | None = None
    epochs: int | None = None
    dev_f1_curve: list[float] | None = None
    take_rate_curve: list[float] | None = None
    #: the SPCL threshold at each epoch (first seed); None without SPCL
    threshold_curve: list[float] | None = None
    #: with several seeds, one entry per seed: ``seed``, ``dev_f1``, ``test_f1``, ``best_epoch``
    per_seed: list[dict[str, Any]] | None = None


_SET_FIELDS = {f.name for f in fields(SetResult)}


@dataclass
class TrialRecord:
    """What one trial records: its settings, seeds, versions, timings and per-set figures."""

    variant: str | None = None
    #: the balance method this trial trained with (``none`` for a baseline; older trials: ``None``, SPCL's)
    method: str | None = None
    #: every option of that method the trial trained with, searched, fixed or default (``None`` for none, for SPCL
    #: trials stored before SPCL's switches were its options, and for trials stored before it was recorded: those
    #: of OGM-GE used ``rho - 1``, the smooth variant)
    method_options: dict[str, Any] | None = None
    #: forward-pass arithmetic, ``fp32`` or ``bf16`` (older trials: ``None``, fp32)
    precision: str | None = None
    use_cl: bool = True
    seed: int | None = None
    seeds: list[int] | None = None
    #: a raced trial: how many of ``seeds`` it trained before it finished or was stopped
    seeds_reached: int | None = None
    #: the effective training settings of its runs (lr, weight_decay, batch_size, epochs, patience, clip_grad_norm,
    #: standardise, precision, model): what ``best --command`` prints
    protocol: dict[str, Any] | None = None
    #: torch CPU threads of the worker that trained it
    threads: int | None = None
    #: a trial of a confirmation study: the number of the search trial whose setting it trains again
    confirms: int | None = None
    device: str | None = None
    versions: dict[str, str] | None = None
    data_surrogate: str | None = None
    enqueued: str | None = None
    #: search: the modality set trained
    modalities: str | None = None
    #: per modality set (stored as ``<figure>_<set>``)
    sets: dict[str, SetResult] = field(default_factory=dict)
    #: balance: tri-modal dev F1 minus the best bi-modal one (the second objective), the same on test,
    #: and minus each bi-modal set (``gain_vs_<set>``)
    gain: float | None = None
    gain_test: float | None = None
    gain_vs: dict[str, float] = field(default_factory=dict)
    #: written by the worker about this run of the trial (``gpu``: the GPU id it ran on, when it had one)
    worker: str | None = None
    gpu: str | None = None
    trial_seconds: float | None = None
    pruned_at_step: int | None = None
    #: 1: ``best_epoch_<set>`` counts from 1 (:data:`~spcl_search.results.EPOCH_BASE`); older trials have none and counted from 0
    epoch_base: int | None = None
    fail_reason: str | None = None
    error: str | None = None
    #: attrs this version does not know (kept, never lost)
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------- reading

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> TrialRecord:
        """The record stored as ``attrs`` (a trial's user attrs)."""
        top = {f.name for f in fields(cls)} - {"sets", "gain_vs", "extra"}
        record = cls()
        for key, value in attrs.items():
            match = _SET_KEY.match(key)
            if key in top:
                setattr(record, key, value)
            elif match and match["name"] in _SET_FIELDS:
                setattr(record.sets.setdefault(match["m"], SetResult()), match["name"], value)
            elif match and match["name"] == "gain_vs":
                record.gain_vs[match["m"]] = value
            else:
                record.extra[key] = value
        record.use_cl = not marks_baseline(attrs)
        return record

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord:
        """The record of ``trial``."""
        return cls.from_attrs(trial.user_attrs)

    def epoch(self, stored: int | None) -> int | None:
        """An epoch number this trial stored (``best_epoch_<set>``), counted from 1 as everywhere else."""
        return None if stored is None else int(stored) + EPOCH_BASE - int(self.epoch_base or 0)

    @property
    def is_baseline(self) -> bool:
        """Whether this is a no-SPCL baseline trial (``use_cl`` False)."""
        return not self.use_cl

    @property
    def trained(self) -> list[str]:
        """The modality sets this trial has a dev F1 for, in the paper's order."""
        return sort_modalities(m for m, r in self.sets.items() if r.dev_f1 is not None)

    def seed_values(self, modalities: str, name: str = "dev_f1") -> dict[int, float]:
        """Seed -> figure (``dev_f1`` or ``test_f1``) on ``modalities``: what paired comparisons pair on. A trial
        of one seed has its own figure; per-seed entries without a ``seed`` (older trials) take ``seeds``' order."""
        result = self.sets.get(modalities)
        if result is None:
            return {}
        seeds = list(self.seeds or ([self.seed] if self.seed is not None else [0]))
        if result.per_seed:
            out = {}
            for i, entry in enumerate(result.per_seed):
                seed = entry.get("seed", seeds[i] if i < len(seeds) else i)
                if entry.get(name) is not None:
                    out[int(seed)] = float(entry[name])
            return out
        value = getattr(result, name, None)
        return {} if value is None else {int(seeds[0]): float(value)}

    def metric(self, name: str, modalities: str) -> float | None:
        """A per-set figure such as ``metric("test_f1", "atv")`` as a float, or None if not recorded."""
        value = getattr(self.sets.get(modalities), name, None)
        try:
            return None if value is None else float(value)
        except (TypeError, ValueError):
            return None

    # ------------------------------------------------------------------------------------- writing

    def set(self, modalities: str) -> SetResult:
        """The figures of ``modalities`` (created empty)."""
        return self.sets.setdefault(modalities, SetResult())

    def to_attrs(self) -> dict[str, Any]:
        """The flat user attrs of this record (fields that are None are left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "sets":
                for m, result in value.items():
                    out.update({f"{g.name}_{m}": v for g in fields(result) if (v := getattr(result, g.name)) is not None})
            elif f.name == "gain_vs":
                out.update({f"gain_vs_{m}": v for m, v in value.items()})
            elif f.name == "extra":
                out.update(value)
            elif value is not None:
                out[f.name] = value
        return out


def sort_modalities(modalities: Iterable[str]) -> list[str]:
    """Modality sets in the paper's order (atv, at, tv, av), others after them."""
    found = set(modalities)
    return [m for m in MODALITY_SETS if m in found] + sorted(found - set(MODALITY_SETS))
