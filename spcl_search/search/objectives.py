"""The two study objectives, built on one trainer.

* ``search``: one objective, the dev weighted-F1 of the trained modality set (a parameter when the
  spec lists several). Dev F1 is reported after every epoch so the pruner can stop the trial.
* ``balance``: two objectives for one SPCL setting and seed: the tri-modal dev F1 and the gain, the
  tri-modal dev F1 minus the best bi-modal dev F1 (atv, at, av and tv are all trained).

Every trial records the user attrs of docs/architecture.md ("Study records"); test F1 is recorded,
never optimised. With several seeds, figures are means over the seeds (``per_seed_<m>`` keeps each).

The trainer is :func:`spcl_search.train.train` (objective ``train``) or, for storage tests and
benchmarks only, a simulated one (objective ``cheap``) that sleeps ``cheap.seconds`` per epoch and
returns a smooth function of the parameters, so that workers can be tested in seconds; it can also
inject a fault (``cheap.fault``: NaN loss, host or GPU out-of-memory, an error) for reliability tests.
"""

from __future__ import annotations

import math
import platform
import random
import statistics
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from spcl_search.errors import NonFiniteLossError
from spcl_search.search.algorithms import first_prunable_step
from spcl_search.search.records import set_user_attrs
from spcl_search.search.spec import BIMODAL, StudySpec


@dataclass
class Setting:
    """What one trial trains: the SPCL setting, optional model/optimiser values, the modality sets."""

    modalities: list[str]
    cl_threshold: float
    cl_growth: float
    use_cl: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # lr, dropout, hidden when searched


@dataclass
class Epoch:
    """The per-epoch figures the objective needs (a subset of ``train.EpochRecord``)."""

    epoch: int
    dev_f1: float
    test_f1: float
    take_rate: float
    seconds: float


@dataclass
class Fit:
    """Outcome of training one modality set with one seed."""

    best_epoch: int
    dev_f1: float
    dev_acc: float
    test_f1: float
    test_acc: float
    seconds_per_epoch: float
    take_rate: float
    device: str
    epochs_run: int
    dev_curve: list[float]
    take_curve: list[float]
    versions: dict[str, str]


#: fit(modalities, seed, setting, on_epoch) -> Fit; on_epoch may raise optuna.TrialPruned
FitFn = Callable[[str, int, Setting, Callable[[Epoch], None]], Fit]


@dataclass
class Trainer:
    """Trains one modality set with one seed; ``device`` and ``versions`` are known before training,
    so that pruned and failed trials record them too."""

    fit: FitFn
    device: str
    versions: dict[str, str]
    #: modalities whose features are surrogate/synthetic (from the data file's meta), e.g. "av"
    surrogate: str = ""

    def __call__(self, modalities: str, seed: int, setting: Setting, on_epoch: Callable[[Epoch], None]) -> Fit:
        return self.fit(modalities, seed, setting, on_epoch)


def light_versions() -> dict[str, str]:
    """Library versions without importing torch (for the simulated trainer)."""
    import numpy
    import sqlalchemy

    import spcl_search

    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "optuna": optuna.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "spcl_search": spcl_search.__version__,
    }


def suggest(trial: optuna.Trial, spec: StudySpec) -> Setting:
    """Draw (or take the enqueued) setting of ``trial`` from the spec's search space."""
    values: dict[str, Any] = {}
    for name, rng in spec.space.items():
        if rng.choices is not None:
            values[name] = trial.suggest_categorical(name, list(rng.choices))
        elif name == "hidden":
            values[name] = trial.suggest_int(name, int(rng.low), int(rng.high), step=int(rng.step or 1), log=rng.log)  # type: ignore[arg-type]
        else:
            values[name] = trial.suggest_float(name, float(rng.low), float(rng.high), step=rng.step, log=rng.log)  # type: ignore[arg-type]
    if spec.kind == "balance":
        modalities = ["atv", *[m for m in spec.modalities if m != "atv"]]
    elif len(spec.modalities) > 1:
        modalities = [trial.suggest_categorical("modalities", list(spec.modalities))]
    else:
        modalities = [spec.modalities[0]]
    use_cl = bool(trial.user_attrs.get("use_cl", True))
    return Setting(
        modalities=modalities,
        cl_threshold=float(values.pop("cl_threshold")),
        cl_growth=float(values.pop("cl_growth")),
        use_cl=use_cl,
        extra=values,
    )


# ------------------------------------------------------------------------------------------ trainers


def real_trainer(spec: StudySpec, dataset: Any, device: str = "auto", threads: int | None = None) -> Trainer:
    """A trainer running :func:`spcl_search.train.train` on ``dataset`` (loaded once per worker)."""
    from spcl_search.spcl import SPCLConfig
    from spcl_search.train import TrainConfig, library_versions, resolve_device, train

    def fit(modalities: str, seed: int, setting: Setting, on_epoch: Callable[[Epoch], None]) -> Fit:
        extra = dict(setting.extra)
        train_kwargs = {**spec.train}
        if "lr" in extra:
            train_kwargs["lr"] = extra.pop("lr")
        config = TrainConfig(
            backbone=spec.backbone,
            variant=spec.variant,
            modalities=modalities,
            epochs=spec.epochs,
            seed=seed,
            device=device,
            threads=threads,
            spcl=SPCLConfig(enabled=setting.use_cl, threshold=setting.cl_threshold, growth=setting.cl_growth, **spec.spcl),
            model={**spec.model, **extra},
            **train_kwargs,
        )

        def callback(record: Any) -> None:
            on_epoch(Epoch(record.epoch, record.dev_f1, record.test_f1, record.take_rate, record.seconds))

        result = train(dataset, config, callback=callback)
        return Fit(
            best_epoch=result.best_epoch,
            dev_f1=result.dev_f1,
            dev_acc=result.dev_acc,
            test_f1=result.test_f1,
            test_acc=result.test_acc,
            seconds_per_epoch=result.seconds_per_epoch,
            take_rate=result.take_rate,
            device=result.device,
            epochs_run=len(result.history),
            dev_curve=[r.dev_f1 for r in result.history],
            take_curve=[r.take_rate for r in result.history],
            versions=dict(result.versions),
        )

    surrogate = str(getattr(dataset, "info", {}).get("surrogate") or "")
    return Trainer(fit, str(resolve_device(device)), library_versions(), surrogate)


#: the simulated trainer's tri-/bi-modal ceilings (atv beats the bi-modal sets when SPCL is on)
_CHEAP_BASE = {"atv": 62.0, "at": 60.0, "tv": 57.0, "av": 45.0, "a": 40.0, "t": 55.0, "v": 30.0}


def _inject(fault: str, epoch: int) -> None:
    """Raise the TEST-ONLY fault ``fault`` (see ``spec.CHEAP_FAULTS``) as real training would."""
    if fault == "nan":
        raise NonFiniteLossError(f"training loss became nan at epoch {epoch}; lower --lr or check the features")
    if fault == "memory":
        raise MemoryError()
    if fault == "cuda_oom":
        import torch

        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
    raise RuntimeError(f"simulated failure at epoch {epoch}")


def cheap_trainer(spec: StudySpec) -> Trainer:
    """TEST-ONLY simulated trainer: no data, no torch; ``cheap.seconds`` of sleep per epoch, and the
    ``cheap.fault`` at epoch ``cheap.fault_epoch`` when ``cl_threshold > cheap.fault_above``."""
    seconds = float(spec.cheap.get("seconds", 0.0))
    fault = spec.cheap.get("fault")
    fault_above = float(spec.cheap.get("fault_above", -math.inf))
    fault_epoch = int(spec.cheap.get("fault_epoch", 0))
    versions = light_versions()

    def fit(modalities: str, seed: int, setting: Setting, on_epoch: Callable[[Epoch], None]) -> Fit:
        peak = _CHEAP_BASE.get(modalities, 40.0) - 40 * (setting.cl_threshold - 0.7) ** 2 - 30 * (setting.cl_growth - 1.3) ** 2
        if not setting.use_cl:
            peak -= 3.0 if modalities == "atv" else 1.0
        key = f"{modalities}:{seed}:{setting.cl_threshold:.6f}:{setting.cl_growth:.6f}"
        rng = random.Random(zlib.crc32(key.encode()))
        dev_curve, take_curve, best = [], [], (0, -math.inf, 0.0)
        for epoch in range(spec.epochs):
            t0 = time.perf_counter()
            if seconds:
                time.sleep(seconds)
            if fault and epoch == fault_epoch and setting.cl_threshold > fault_above:
                _inject(fault, epoch)
            dev = peak * (1 - 0.5 ** (epoch + 1)) + rng.uniform(-0.5, 0.5)
            take = 1.0 if not setting.use_cl else min(1.0, setting.cl_threshold * setting.cl_growth**epoch)
            dev_curve.append(dev)
            take_curve.append(take)
            if dev > best[1]:
                best = (epoch, dev, dev - 1.0)
            on_epoch(Epoch(epoch, dev, dev - 1.0, take, time.perf_counter() - t0))
        return Fit(
            best_epoch=best[0],
            dev_f1=best[1],
            dev_acc=best[1] + 2.0,
            test_f1=best[2],
            test_acc=best[2] + 2.0,
            seconds_per_epoch=seconds,
            take_rate=take_curve[-1],
            device="cpu",
            epochs_run=len(dev_curve),
            dev_curve=dev_curve,
            take_curve=take_curve,
            versions=versions,
        )

    return Trainer(fit, "cpu", versions)


# ----------------------------------------------------------------------------------------- objective


def _mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values))


def _record(m: str, fits: list[Fit]) -> tuple[dict[str, Any], dict[str, float]]:
    """User attrs of modality set ``m`` and its figures (means over seeds)."""
    figures = {
        "dev_f1": _mean([f.dev_f1 for f in fits]),
        "test_f1": _mean([f.test_f1 for f in fits]),
        "dev_acc": _mean([f.dev_acc for f in fits]),
        "test_acc": _mean([f.test_acc for f in fits]),
        "take_rate": _mean([f.take_rate for f in fits]),
        "epoch_seconds": _mean([f.seconds_per_epoch for f in fits]),
    }
    attrs: dict[str, Any] = {f"{key}_{m}": value for key, value in figures.items()}
    attrs[f"best_epoch_{m}"] = int(fits[0].best_epoch)
    attrs[f"epochs_{m}"] = int(fits[0].epochs_run)
    attrs[f"dev_f1_curve_{m}"] = [round(v, 4) for v in fits[0].dev_curve]
    attrs[f"take_rate_curve_{m}"] = [round(v, 4) for v in fits[0].take_curve]
    if len(fits) > 1:
        attrs[f"per_seed_{m}"] = [{"dev_f1": f.dev_f1, "test_f1": f.test_f1, "best_epoch": f.best_epoch} for f in fits]
    return attrs, figures


def _record_partial(m: str, epochs: list[Epoch]) -> dict[str, Any]:
    """User attrs of a pruned trial: the best dev epoch seen so far."""
    best = max(epochs, key=lambda e: e.dev_f1)
    return {
        f"dev_f1_{m}": best.dev_f1,
        f"test_f1_{m}": best.test_f1,
        f"best_epoch_{m}": int(best.epoch),
        f"epochs_{m}": len(epochs),
        f"take_rate_{m}": epochs[-1].take_rate,
        f"epoch_seconds_{m}": _mean([e.seconds for e in epochs]),
        f"dev_f1_curve_{m}": [round(e.dev_f1, 4) for e in epochs],
    }


def make_objective(spec: StudySpec, trainer: Trainer) -> Callable[[optuna.Trial], float | tuple[float, float]]:
    """The objective of ``spec.kind`` using ``trainer``.

    User attrs are collected and written in one transaction when the trial ends (also when it is
    pruned or fails, with what is known by then).
    """
    first_check = first_prunable_step(spec)

    def train_set(trial: optuna.Trial, setting: Setting, m: str, prune: bool, rec: dict[str, Any]) -> dict[str, float]:
        fits: list[Fit] = []
        for k, seed in enumerate(spec.seeds):
            seen: list[Epoch] = []

            def on_epoch(e: Epoch, k: int = k, seed: int = seed, seen: list[Epoch] = seen) -> None:
                seen.append(e)
                if not prune:
                    return
                step = k * spec.epochs + len(seen) - 1
                trial.report(e.dev_f1, step=step)
                if step >= first_check and trial.should_prune():
                    rec.update(_record_partial(m, seen))
                    rec["pruned_at_step"] = step
                    raise optuna.TrialPruned(f"dev F1 {e.dev_f1:.2f} at epoch {e.epoch} of seed {seed}")

            fits.append(trainer(m, seed, setting, on_epoch))
        rec["device"] = fits[0].device
        rec["versions"] = fits[0].versions
        attrs, figures = _record(m, fits)
        rec.update(attrs)
        return figures

    def run(trial: optuna.Trial, setting: Setting, rec: dict[str, Any]) -> float | tuple[float, float]:
        if spec.kind == "search":
            (m,) = setting.modalities
            rec["modalities"] = m
            return train_set(trial, setting, m, True, rec)["dev_f1"]
        figures = {m: train_set(trial, setting, m, False, rec) for m in setting.modalities}
        bi = [m for m in setting.modalities if m in BIMODAL]
        best_dev = max(figures[m]["dev_f1"] for m in bi)
        best_test = max(figures[m]["test_f1"] for m in bi)
        for m in bi:
            rec[f"gain_vs_{m}"] = figures["atv"]["dev_f1"] - figures[m]["dev_f1"]
        rec["gain_test"] = figures["atv"]["test_f1"] - best_test
        gain = figures["atv"]["dev_f1"] - best_dev
        rec["gain"] = gain
        return figures["atv"]["dev_f1"], gain

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        setting = suggest(trial, spec)
        rec: dict[str, Any] = {
            "variant": spec.variant,
            "use_cl": setting.use_cl,
            "seed": int(spec.seeds[0]),
            "seeds": list(spec.seeds),
            "device": getattr(trainer, "device", "unknown"),
            "versions": getattr(trainer, "versions", {}),
        }
        if getattr(trainer, "surrogate", ""):
            rec["data_surrogate"] = trainer.surrogate
        try:
            return run(trial, setting, rec)
        finally:
            set_user_attrs(trial, rec)

    return objective
