"""TEST-ONLY simulated trainer: no data, no torch, a smooth function of the SPCL setting.

Workers get it in-process with ``run_worker(..., trainer=simulated.factory(seconds=...))`` and in worker
processes through ``$SPCL_SEARCH_TRAINER`` (``env(...)`` gives the variables: this folder on
``PYTHONPATH``, the factory, and its settings in ``$SPCL_SIMULATED``). It sleeps ``seconds`` per epoch and
can inject a fault (NaN loss, host or GPU out-of-memory, an error) after ``fault_epoch`` epochs (0: in the first) in trials whose
cl_threshold exceeds ``fault_above``, as real training would raise it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import time
import zlib
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from spcl_search.errors import NonFiniteLossError
from spcl_search.results import EpochRecord, TrainResult
from spcl_search.schema.spec import StudySpec
from spcl_search.search.objectives import Setting

SETTINGS_VAR = "SPCL_SIMULATED"
#: the tri-/bi-modal ceilings (atv beats the bi-modal sets when SPCL is on)
BASE = {"atv": 62.0, "at": 60.0, "tv": 57.0, "av": 45.0, "a": 40.0, "t": 55.0, "v": 30.0}
FAULTS = ("nan", "memory", "cuda_oom", "error")


def light_versions() -> dict[str, str]:
    """Library versions without importing torch."""
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


def _inject(fault: str, epoch: int) -> None:
    if fault == "nan":
        raise NonFiniteLossError(f"training loss became nan at epoch {epoch}; lower --lr or check the features")
    if fault == "memory":
        raise MemoryError()
    if fault == "cuda_oom":
        import torch

        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
    raise RuntimeError(f"simulated failure at epoch {epoch}")


@dataclass
class SimulatedTrainer:
    """A :class:`~spcl_search.search.objectives.Trainer` whose dev F1 peaks at cl_threshold 0.7, cl_growth 1.3."""

    epochs: int
    seconds: float = 0.0
    fault: str | None = None
    fault_above: float = -math.inf
    fault_epoch: int = 0
    device: str = "cpu"
    versions: dict[str, str] = field(default_factory=light_versions)
    surrogate: str = ""

    def run(self, modalities: str, seed: int, setting: Setting) -> Generator[EpochRecord, None, TrainResult]:
        spcl = setting.method == "spcl"
        threshold0 = float(setting.method_options.get("cl_threshold", 0.4))
        growth = float(setting.method_options.get("cl_growth", 1.1))
        if setting.baseline:  # trained as the stored baseline's params, the corner closest to no curriculum
            threshold0, growth = 1.5, 2.0
        peak = BASE.get(modalities, 40.0) - 40 * (threshold0 - 0.7) ** 2 - 30 * (growth - 1.3) ** 2
        numbers = {k: v for k, v in setting.method_options.items() if isinstance(v, float) and not spcl}  # not switches or epochs
        peak -= sum(10 * (v - 0.5) ** 2 for v in numbers.values())  # other balance methods' settings
        if setting.baseline:
            peak -= 3.0 if modalities == "atv" else 1.0
        options = ":".join(f"{k}={v:.6f}" for k, v in sorted(numbers.items()))
        rng = random.Random(zlib.crc32(f"{modalities}:{seed}:{threshold0:.6f}:{growth:.6f}:{options}".encode()))
        history: list[EpochRecord] = []
        for epoch in range(self.epochs):
            t0 = time.perf_counter()
            if self.seconds:
                time.sleep(self.seconds)
            if self.fault and epoch == self.fault_epoch and threshold0 > self.fault_above:
                _inject(self.fault, epoch + 1)
            dev = peak * (1 - 0.5 ** (epoch + 1)) + rng.uniform(-0.5, 0.5)
            take = 1.0 if setting.baseline else min(1.0, threshold0 * growth**epoch)
            threshold = threshold0 * growth**epoch if not setting.baseline else None
            record = EpochRecord(epoch + 1, 0.0, take, threshold, dev, dev + 2.0, dev - 1.0, dev + 1.0, time.perf_counter() - t0, 0.0, {}, {})
            history.append(record)
            yield record
        best = max(history, key=lambda r: r.dev_f1)
        return TrainResult(
            config={}, best_epoch=best.epoch, dev_f1=best.dev_f1, dev_acc=best.dev_acc, test_f1=best.test_f1, test_acc=best.test_acc,
            history=history, seconds_per_epoch=self.seconds, device=self.device, take_rate=history[-1].take_rate, dataset={},
            versions=self.versions, model={},
        )


def factory(**settings: Any) -> Callable[[StudySpec], SimulatedTrainer]:
    """A trainer factory for ``run_worker(trainer=...)``: the study's epochs, these ``settings``."""
    return lambda spec: SimulatedTrainer(spec.epochs, **settings)


def from_env(spec: StudySpec) -> SimulatedTrainer:
    """The factory ``$SPCL_SEARCH_TRAINER`` names in worker processes; settings from ``$SPCL_SIMULATED``."""
    return SimulatedTrainer(spec.epochs, **json.loads(os.environ.get(SETTINGS_VAR) or "{}"))


def env(**settings: Any) -> dict[str, str]:
    """Environment variables that make worker processes (and ``spcl-search run``'s) use the simulated trainer."""
    here = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    return {"SPCL_SEARCH_TRAINER": "simulated:from_env", SETTINGS_VAR: json.dumps(settings), "PYTHONPATH": path}


def raising(exc: BaseException) -> Callable[[StudySpec], SimulatedTrainer]:
    """A trainer factory whose trainer raises ``exc`` as soon as it trains."""

    class Raising(SimulatedTrainer):
        def run(self, modalities: str, seed: int, setting: Setting) -> Generator[EpochRecord, None, TrainResult]:
            raise exc
            yield  # a generator, like every trainer's run()

    return lambda spec: Raising(spec.epochs, versions={"optuna": optuna.__version__})
