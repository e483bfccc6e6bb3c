"""The two study objectives, built on one trainer.

* ``search``: one objective, the dev weighted-F1 of the trained modality set (a parameter when the
  spec lists several). Dev F1 is reported after every epoch so the pruner can stop the trial.
* ``balance``: two objectives for one SPCL setting and seed: the tri-modal dev F1 and the gain, the
  tri-modal dev F1 minus the best bi-modal dev F1 (atv, at, av and tv are all trained).

Every trial records a :class:`~spcl_search.schema.records.TrialRecord`; test F1 is recorded, never
optimised. With several seeds, figures are means over the seeds (``per_seed_<m>`` keeps each).

The trainer is anything that satisfies :class:`Trainer`: :func:`real_trainer` runs
:func:`spcl_search.train.train`; tests and benchmarks inject a simulated one (``tests/simulated.py``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import optuna

from backbones.defaults import SPCL as SPCL_DEFAULTS
from spcl_search.results import EPOCH_BASE, EpochRecord, TrainResult
from spcl_search.schema.records import SetResult, TrialRecord
from spcl_search.schema.spec import BIMODAL, METHOD_PARAMS, TRI_MODAL, StudySpec
from spcl_search.search import optuna_internals as internals
from spcl_search.search.algorithms import first_prunable_step

if TYPE_CHECKING:
    from spcl_search.data.types import ERCDataset


@dataclass(frozen=True)
class Setting:
    """What one trial trains: the SPCL setting (``cl_threshold``, ``cl_growth``; off for a baseline), another
    method's options (``method_options``, e.g. OGM-GE's ``alpha``), the other searched values (lr, dropout,
    hidden) and the modality sets. ``use_cl = False`` is the baseline: no balance method at all."""

    modalities: tuple[str, ...]
    cl_threshold: float
    cl_growth: float
    use_cl: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, float] = field(default_factory=dict)


class Trainer(Protocol):
    """Trains one modality set with one seed; ``device`` and ``versions`` are known before training, so
    that pruned and failed trials record them too. ``on_epoch`` may raise ``optuna.TrialPruned``."""

    device: str
    versions: Mapping[str, str]
    #: modalities whose features are surrogate/synthetic (from the data file's meta), e.g. "av"
    surrogate: str

    def __call__(self, modalities: str, seed: int, setting: Setting, on_epoch: Callable[[EpochRecord], None]) -> TrainResult: ...


#: builds the trainer of a study (``run_worker(trainer=...)``, ``$SPCL_SEARCH_TRAINER``)
TrainerFactory = Callable[[StudySpec], Trainer]


@dataclass(frozen=True)
class TrialProgress:
    """Where a running trial is: epoch ``epoch`` of ``epochs`` (counted from 1) of training ``modalities`` with
    seed number ``seed_index`` (of ``n_seeds``), set ``set_index`` of ``n_sets``; ``record``: that epoch's figures."""

    modalities: str
    set_index: int
    n_sets: int
    seed_index: int
    n_seeds: int
    epoch: int
    epochs: int
    record: EpochRecord

    @property
    def dev_f1(self) -> float:
        return self.record.dev_f1

    @property
    def step(self) -> int:
        """The epoch counted over this set's seeds (seed 2's first epoch follows seed 1's last), from 1."""
        return self.seed_index * self.epochs + self.epoch

    @property
    def part(self) -> str:
        """``atv``, or ``at (set 2/4), seed 2/3`` when the trial trains several sets or seeds."""
        out = self.modalities + (f" (set {self.set_index + 1}/{self.n_sets})" if self.n_sets > 1 else "")
        return out + (f", seed {self.seed_index + 1}/{self.n_seeds}" if self.n_seeds > 1 else "")


def suggest(trial: optuna.Trial, spec: StudySpec) -> Setting:
    """Draw (or take the enqueued) setting of ``trial`` from the spec's search space."""
    values: dict[str, Any] = {}
    for name, rng in spec.space.items():
        if rng.choices is not None:
            values[name] = trial.suggest_categorical(name, list(rng.choices))
        elif name == "hidden":
            low, high = rng.bounds
            values[name] = trial.suggest_int(name, int(low), int(high), step=int(rng.step or 1), log=rng.log)
        else:
            values[name] = trial.suggest_float(name, *rng.bounds, step=rng.step, log=rng.log)
    if spec.kind == "balance":
        modalities = (TRI_MODAL, *[m for m in spec.modalities if m != TRI_MODAL])
    elif len(spec.modalities) > 1:
        modalities = (trial.suggest_categorical("modalities", list(spec.modalities)),)
    else:
        modalities = (spec.modalities[0],)
    options = {name: float(values.pop(name)) for name in METHOD_PARAMS[spec.method] if name not in ("cl_threshold", "cl_growth")}
    cl_threshold = float(values.pop("cl_threshold", SPCL_DEFAULTS["cl_threshold"]))
    cl_growth = float(values.pop("cl_growth", SPCL_DEFAULTS["cl_growth"]))
    return Setting(modalities, cl_threshold, cl_growth, bool(trial.user_attrs.get("use_cl", True)), values, options)


@dataclass
class RealTrainer:
    """Runs :func:`spcl_search.train.train` on a dataset loaded once per worker."""

    spec: StudySpec
    dataset: ERCDataset
    device: str
    versions: Mapping[str, str]
    surrogate: str = ""
    threads: int | None = None

    def __call__(self, modalities: str, seed: int, setting: Setting, on_epoch: Callable[[EpochRecord], None]) -> TrainResult:
        from spcl_search.spcl import SPCLConfig
        from spcl_search.train import TrainConfig, train

        extra = dict(setting.extra)
        train_kwargs = {**self.spec.train}
        if "lr" in extra:
            train_kwargs["lr"] = extra.pop("lr")
        config = TrainConfig(
            backbone=self.spec.backbone,
            variant=self.spec.variant,
            method=self.spec.method if setting.use_cl else "none",
            method_options=setting.method_options if setting.use_cl else {},
            precision=self.spec.precision,
            modalities=modalities,
            epochs=self.spec.epochs,
            seed=seed,
            device=self.device,
            threads=self.threads,
            spcl=SPCLConfig(enabled=setting.use_cl, threshold=setting.cl_threshold, growth=setting.cl_growth, **self.spec.spcl),
            model={**self.spec.model, **extra},
            **train_kwargs,
        )
        return train(self.dataset, config, callback=on_epoch)


def real_trainer(spec: StudySpec, dataset: ERCDataset, device: str = "auto", threads: int | None = None) -> RealTrainer:
    """A trainer running :func:`spcl_search.train.train` on ``dataset``."""
    from spcl_search.train import library_versions, resolve_device

    surrogate = str(dataset.info.get("surrogate") or "")
    return RealTrainer(spec, dataset, str(resolve_device(device)), library_versions(), surrogate, threads)


# ----------------------------------------------------------------------------------------- objective


def _mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values))


def _result(runs: list[TrainResult]) -> SetResult:
    """The figures of one modality set: means over seeds, curves of the first seed."""
    first = runs[0]
    return SetResult(
        dev_f1=_mean([r.dev_f1 for r in runs]),
        test_f1=_mean([r.test_f1 for r in runs]),
        dev_acc=_mean([r.dev_acc for r in runs]),
        test_acc=_mean([r.test_acc for r in runs]),
        take_rate=_mean([r.take_rate for r in runs]),
        epoch_seconds=_mean([r.seconds_per_epoch for r in runs]),
        best_epoch=int(first.best_epoch),
        epochs=len(first.history),
        dev_f1_curve=[round(e.dev_f1, 4) for e in first.history],
        take_rate_curve=[round(e.take_rate, 4) for e in first.history],
        per_seed=[{"dev_f1": r.dev_f1, "test_f1": r.test_f1, "best_epoch": r.best_epoch} for r in runs] if len(runs) > 1 else None,
    )


def _partial(epochs: list[EpochRecord]) -> SetResult:
    """The figures of a pruned trial: its best dev epoch so far."""
    best = max(epochs, key=lambda e: e.dev_f1)
    return SetResult(
        dev_f1=best.dev_f1,
        test_f1=best.test_f1,
        best_epoch=int(best.epoch),
        epochs=len(epochs),
        take_rate=epochs[-1].take_rate,
        epoch_seconds=_mean([e.seconds for e in epochs]),
        dev_f1_curve=[round(e.dev_f1, 4) for e in epochs],
    )


def make_objective(
    spec: StudySpec, trainer: Trainer, progress: Callable[[TrialProgress], None] | None = None
) -> Callable[[optuna.Trial], float | tuple[float, float]]:
    """The objective of ``spec.kind`` using ``trainer``; ``progress`` hears of every epoch (the worker shows it).

    The trial's record is written in one statement when the trial ends (also when it is pruned or fails,
    with what is known by then).
    """
    first_check = first_prunable_step(spec)

    def train_set(trial: optuna.Trial, setting: Setting, m: str, prune: bool, record: TrialRecord) -> SetResult:
        runs: list[TrainResult] = []
        where = setting.modalities.index(m)
        for k, seed in enumerate(spec.seeds):
            seen: list[EpochRecord] = []

            def on_epoch(e: EpochRecord, k: int = k, seed: int = seed, seen: list[EpochRecord] = seen) -> None:
                seen.append(e)
                if progress is not None:
                    n_sets, n_seeds = len(setting.modalities), len(spec.seeds)
                    progress(TrialProgress(m, where, n_sets, k, n_seeds, len(seen), spec.epochs, e))
                if not prune:
                    return
                step = k * spec.epochs + len(seen) - 1
                trial.report(e.dev_f1, step=step)
                if step >= first_check and trial.should_prune():
                    record.sets[m] = _partial(seen)
                    record.pruned_at_step = step
                    raise optuna.TrialPruned(f"dev F1 {e.dev_f1:.2f} at epoch {e.epoch} of seed {seed}")

            runs.append(trainer(m, seed, setting, on_epoch))
        record.device, record.versions = runs[0].device, dict(runs[0].versions)
        record.sets[m] = _result(runs)
        return record.sets[m]

    def run(trial: optuna.Trial, setting: Setting, record: TrialRecord) -> float | tuple[float, float]:
        if spec.kind == "search":
            (m,) = setting.modalities
            record.modalities = m
            return float(train_set(trial, setting, m, True, record).dev_f1 or 0.0)
        dev = {m: float(train_set(trial, setting, m, False, record).dev_f1 or 0.0) for m in setting.modalities}
        test = {m: float(record.sets[m].test_f1 or 0.0) for m in setting.modalities}
        bi = [m for m in setting.modalities if m in BIMODAL]
        record.gain_vs = {m: dev[TRI_MODAL] - dev[m] for m in bi}
        record.gain_test = test[TRI_MODAL] - max(test[m] for m in bi)
        record.gain = dev[TRI_MODAL] - max(dev[m] for m in bi)
        return dev[TRI_MODAL], record.gain

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        setting = suggest(trial, spec)
        record = TrialRecord(
            variant=spec.variant,
            method=spec.method if setting.use_cl else "none",
            precision=spec.precision,
            use_cl=setting.use_cl,
            seed=int(spec.seeds[0]),
            seeds=list(spec.seeds),
            device=trainer.device,
            versions=dict(trainer.versions),
            data_surrogate=trainer.surrogate or None,
            epoch_base=EPOCH_BASE,
        )
        try:
            return run(trial, setting, record)
        finally:
            internals.set_trial_user_attrs(trial, record.to_attrs())

    return objective
