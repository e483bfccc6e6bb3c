"""The two study objectives, built on one trainer.

* ``search``: one objective, the dev weighted-F1 of the trained modality set (a parameter when the
  spec lists several). Dev F1 is reported after every epoch so the pruner can stop the trial.
* ``balance``: two objectives for one setting of the study's method and seed: the tri-modal dev F1 and the gain, the
  tri-modal dev F1 minus the best bi-modal dev F1 (atv, at, av and tv are all trained).

Every setting of a study is trained on the same seeds (the spec's), so settings are compared on shared seeds
(common random numbers). With several seeds a trial's figures are means over them (``per_seed_<m>`` keeps
each), and its seeds train in lockstep: the value reported to the pruner at epoch e is the mean over the
seeds at epoch e. A racing study (spec ``race``) trains a setting one seed at a time instead, reports each
seed's dev F1 as the step named by the seed, and its pruner (:mod:`spcl_search.search.racing`) stops the
setting once it is significantly worse than the incumbent on the seeds both have.

Every trial records a :class:`~spcl_search.schema.records.TrialRecord`; test F1 is recorded, never
optimised. The trainer is anything that satisfies :class:`Trainer`: :func:`real_trainer` runs
:func:`spcl_search.train.training`; tests and benchmarks inject a simulated one (``tests/simulated.py``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import optuna

from spcl_search.methods.registry import DEFAULT_METHOD
from spcl_search.results import EPOCH_BASE, EpochRecord, TrainResult
from spcl_search.schema.baseline import marks_baseline
from spcl_search.schema.method_options import method_options
from spcl_search.schema.records import SetResult, TrialRecord
from spcl_search.schema.spec import BIMODAL, METHOD_PARAMS, TRI_MODAL, StudySpec
from spcl_search.search import optuna_internals as internals
from spcl_search.search.algorithms import first_prunable_step, take_rate_warmup

if TYPE_CHECKING:
    from spcl_search.data.types import ERCDataset


@dataclass(frozen=True)
class Setting:
    """What one trial trains: the modality sets, the balance method and its options (``method_options``: the
    searched ones, e.g. SPCL's ``cl_threshold`` and ``cl_growth`` or OGM-GE's ``alpha``, over the spec's fixed
    ones), and the other searched values (lr, dropout, hidden). ``baseline``: the study's comparison trial,
    which trains method ``none`` and is never an answer (a study *of* ``none`` has no baseline trial)."""

    modalities: tuple[str, ...]
    method: str = DEFAULT_METHOD
    method_options: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    baseline: bool = False


class Trainer(Protocol):
    """Trains one modality set with one seed, one epoch at a time: :meth:`run` yields each epoch's record
    and returns the :class:`TrainResult` (the objective may stop it after any epoch). ``device`` and
    ``versions`` are known before training, so that pruned and failed trials record them too."""

    device: str
    versions: Mapping[str, str]
    #: modalities whose features are surrogate/synthetic (from the data file's meta), e.g. "av"
    surrogate: str

    def run(self, modalities: str, seed: int, setting: Setting) -> Generator[EpochRecord, None, TrainResult]: ...


#: builds the trainer of a study (``run_worker(trainer=...)``, ``$SPCL_SEARCH_TRAINER``)
TrainerFactory = Callable[[StudySpec], Trainer]


@dataclass(frozen=True)
class TrialProgress:
    """Where a running trial is: epoch ``epoch`` of ``epochs`` (counted from 1) of training ``modalities`` (set
    ``set_index`` of ``n_sets``) with ``seed``, one of ``running`` seeds trained side by side (of the spec's
    ``n_seeds``; a racing study runs them one at a time); ``record``: that epoch's figures."""

    modalities: str
    set_index: int
    n_sets: int
    seed: int
    #: ``seed``'s place among the spec's seeds, from 1
    seed_number: int
    running: int
    n_seeds: int
    epoch: int
    epochs: int
    record: EpochRecord

    @property
    def dev_f1(self) -> float:
        return self.record.dev_f1

    @property
    def part(self) -> str:
        """``atv``, or ``at (set 2/4), 3 seeds`` (side by side) / ``atv, seed 2/3`` (racing, one at a time) when the
        trial trains several sets or seeds."""
        out = self.modalities + (f" (set {self.set_index + 1}/{self.n_sets})" if self.n_sets > 1 else "")
        if self.n_seeds > 1:
            out += f", {self.running} seeds" if self.running > 1 else f", seed {self.seed_number}/{self.n_seeds}"
        return out


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
    searched = {name: float(values.pop(name)) for name in METHOD_PARAMS[spec.method] if name in values}
    if marks_baseline(trial.user_attrs):
        return Setting(modalities, "none", {}, values, baseline=True)
    return Setting(modalities, spec.method, {**spec.method_options, **searched}, values)


@dataclass
class RealTrainer:
    """Runs :func:`spcl_search.train.train` on a dataset loaded once per worker."""

    spec: StudySpec
    dataset: ERCDataset
    device: str
    versions: Mapping[str, str]
    surrogate: str = ""
    threads: int | None = None

    def run(self, modalities: str, seed: int, setting: Setting) -> Generator[EpochRecord, None, TrainResult]:
        from spcl_search.train import TrainConfig, training

        extra = dict(setting.extra)
        train_kwargs = {**self.spec.train}
        if "lr" in extra:
            train_kwargs["lr"] = extra.pop("lr")
        config = TrainConfig(
            backbone=self.spec.backbone,
            variant=self.spec.variant,
            method=setting.method,
            method_options=setting.method_options,
            precision=self.spec.precision,
            modalities=modalities,
            epochs=self.spec.epochs,
            seed=seed,
            device=self.device,
            threads=self.threads,
            model={**self.spec.model, **extra},
            **train_kwargs,
        )
        return training(self.dataset, config)


def real_trainer(spec: StudySpec, dataset: ERCDataset, device: str = "auto", threads: int | None = None) -> RealTrainer:
    """A trainer running :func:`spcl_search.train.train` on ``dataset``."""
    from spcl_search.train import library_versions, resolve_device

    surrogate = str(dataset.info.get("surrogate") or "")
    return RealTrainer(spec, dataset, str(resolve_device(device)), library_versions(), surrogate, threads)


# ----------------------------------------------------------------------------------------- objective

#: the effective training settings a trial records (``protocol``), from its first run's config: what
#: ``spcl-search best --command`` needs to reproduce it
PROTOCOL_KEYS = ("lr", "weight_decay", "batch_size", "epochs", "patience", "clip_grad_norm", "standardise", "precision", "model")


def _mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values))


def _protocol(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: config[k] for k in PROTOCOL_KEYS if k in config}


def _result(runs: list[TrainResult], seeds: Sequence[int]) -> SetResult:
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
        threshold_curve=_thresholds(first.history),
        per_seed=[{"seed": int(s), "dev_f1": r.dev_f1, "test_f1": r.test_f1, "best_epoch": r.best_epoch} for s, r in zip(seeds, runs)]
        if len(runs) > 1
        else None,
    )


def _thresholds(history: Sequence[EpochRecord]) -> list[float] | None:
    values = [e.threshold for e in history]
    return None if any(v is None for v in values) else [round(float(v), 5) for v in values if v is not None]


def _partial(seen: list[list[EpochRecord]], seeds: Sequence[int]) -> SetResult:
    """The figures of a trial pruned in the middle of its seeds' epochs: each seed's best dev epoch so far."""
    bests = [max(epochs, key=lambda e: e.dev_f1) for epochs in seen if epochs]
    first = seen[0]
    return SetResult(
        dev_f1=_mean([b.dev_f1 for b in bests]),
        test_f1=_mean([b.test_f1 for b in bests]),
        best_epoch=int(bests[0].epoch),
        epochs=len(first),
        take_rate=_mean([epochs[-1].take_rate for epochs in seen if epochs]),
        epoch_seconds=_mean([e.seconds for epochs in seen for e in epochs]),
        dev_f1_curve=[round(e.dev_f1, 4) for e in first],
        take_rate_curve=[round(e.take_rate, 4) for e in first],
        threshold_curve=_thresholds(first),
        per_seed=[{"seed": int(s), "dev_f1": b.dev_f1, "test_f1": b.test_f1, "best_epoch": b.epoch} for s, b in zip(seeds, bests)]
        if len(bests) > 1
        else None,
    )


def make_objective(
    spec: StudySpec, trainer: Trainer, progress: Callable[[TrialProgress], None] | None = None
) -> Callable[[optuna.Trial], float | tuple[float, float]]:
    """The objective of ``spec.kind`` using ``trainer``; ``progress`` hears of every epoch (the worker shows it).

    The trial's record is written in one statement when the trial ends (also when it is pruned or fails,
    with what is known by then).
    """
    first_check = first_prunable_step(spec)
    warm_take, warm_cap = take_rate_warmup(spec), max(first_check, spec.epochs // 2)
    racing = spec.racing

    def lockstep(
        trial: optuna.Trial, setting: Setting, m: str, seeds: Sequence[int], prune: bool, record: TrialRecord
    ) -> list[TrainResult]:
        """Train ``seeds`` side by side, one epoch each in turn; with ``prune``, report the mean dev F1 over the
        seeds after every epoch (a seed stopped early counts with its last epoch) and stop if the pruner says so."""
        runs = [trainer.run(m, seed, setting) for seed in seeds]
        seen: list[list[EpochRecord]] = [[] for _ in seeds]
        results: list[TrainResult | None] = [None] * len(seeds)
        epoch = 0
        where = (setting.modalities.index(m), len(setting.modalities))
        while any(r is None for r in results):
            advanced = False
            for i, run in enumerate(runs):
                if results[i] is not None:
                    continue
                try:
                    seen[i].append(next(run))
                    advanced = True
                except StopIteration as stop:
                    results[i] = stop.value
                    continue
                if progress is not None:
                    number = list(spec.seeds).index(seeds[i]) + 1 if seeds[i] in spec.seeds else i + 1
                    n_seeds = len(spec.seeds)
                    progress(TrialProgress(m, *where, seeds[i], number, len(seeds), n_seeds, len(seen[i]), spec.epochs, seen[i][-1]))
            if not advanced or not prune:
                epoch += advanced
                continue
            value = _mean([epochs[min(epoch, len(epochs) - 1)].dev_f1 for epochs in seen])
            trial.report(value, step=epoch)
            take = _mean([epochs[min(epoch, len(epochs) - 1)].take_rate for epochs in seen])
            admitted = warm_take is None or take >= warm_take or epoch >= warm_cap  # the curriculum let (most) data in
            if epoch >= first_check and admitted and trial.should_prune():
                record.sets[m] = _partial(seen, seeds)
                record.pruned_at_step = epoch
                raise optuna.TrialPruned(f"dev F1 {value:.2f} (mean over {len(seeds)} seed(s)) at epoch {epoch + 1}")
            epoch += 1
        return [r for r in results if r is not None]

    def train_set(trial: optuna.Trial, setting: Setting, m: str, prune: bool, record: TrialRecord) -> SetResult:
        seeds = list(spec.seeds)
        if racing and prune:
            runs: list[TrainResult] = []
            for k, seed in enumerate(seeds):
                runs += lockstep(trial, setting, m, [seed], False, record)
                record.seeds_reached = k + 1
                trial.report(runs[-1].dev_f1, step=seed)
                if k + 1 < len(seeds) and trial.should_prune():
                    record.sets[m] = _result(runs, seeds)
                    _finish(record, runs)
                    raise optuna.TrialPruned(
                        f"mean dev F1 {record.sets[m].dev_f1:.2f} over seeds {seeds[: k + 1]}: worse than the incumbent"
                    )
        else:
            runs = lockstep(trial, setting, m, seeds, prune, record)
        record.sets[m] = _result(runs, seeds)
        _finish(record, runs)
        return record.sets[m]

    def _finish(record: TrialRecord, runs: list[TrainResult]) -> None:
        record.device, record.versions = runs[0].device, dict(runs[0].versions)
        record.protocol = _protocol(runs[0].config) or None

    def run(trial: optuna.Trial, setting: Setting, record: TrialRecord) -> float | tuple[float, float]:
        if spec.kind == "search":
            (m,) = setting.modalities
            record.modalities = m
            return float(train_set(trial, setting, m, not setting.baseline, record).dev_f1 or 0.0)
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
            method=setting.method,
            precision=spec.precision,
            use_cl=not setting.baseline,
            seed=int(spec.seeds[0]),
            seeds=list(spec.seeds),
            device=trainer.device,
            versions=dict(trainer.versions),
            data_surrogate=trainer.surrogate or None,
            epoch_base=EPOCH_BASE,
            method_options=method_options(setting.method, setting.method_options) or None,
            threads=getattr(trainer, "threads", None),
        )
        try:
            return run(trial, setting, record)
        finally:
            internals.set_trial_user_attrs(trial, record.to_attrs())

    return objective
