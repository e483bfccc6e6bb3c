"""Hyperparameter studies over SPCL settings with Optuna: storage, studies, objectives, workers, status.

Modules (one concept each): :mod:`~spcl_search.search.settings` (service defaults),
:mod:`~spcl_search.search.urls` (database URLs), :mod:`~spcl_search.search.retry` (riding out a database
restart), :mod:`~spcl_search.search.storage_api` (the one storage interface and its URL schemes),
:mod:`~spcl_search.search.storage` (opening a storage), :mod:`~spcl_search.search.rdb` (SQLite and PostgreSQL),
:mod:`~spcl_search.search.proxy` (the storage proxy's client), :mod:`~spcl_search.search.memory` (in memory),
:mod:`~spcl_search.search.lock` (the per-study lock), :mod:`~spcl_search.search.optuna_internals` (every use of Optuna's private API),
:mod:`~spcl_search.search.algorithms` (samplers and pruners), :mod:`~spcl_search.search.paper` (the paper's
hyperparameters), :mod:`~spcl_search.search.study` (create or join a study),
:mod:`~spcl_search.search.objectives` (search and balance objectives, the trainer protocol),
:mod:`~spcl_search.search.budget` (trial budget accounting), :mod:`~spcl_search.search.registry` (workers
known to a study), :mod:`~spcl_search.search.worker` (run trials until the budget is spent),
:mod:`~spcl_search.search.launcher` (local worker processes), :mod:`~spcl_search.search.status` (progress).
What a study is and records lives in :mod:`spcl_search.schema`.

The names below are imported lazily, so ``import spcl_search.search`` stays cheap::

    from spcl_search.search import open_storage, run_worker
    rdb = open_storage("sqlite:///study.db")
    run_worker(rdb, requested={"backbone": "mmgcn", "n_trials": 8})
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "open_storage": "storage",
    "resolve_url": "urls",
    "mask_url": "urls",
    "study_lock": "lock",
    "open_study": "study",
    "make_objective": "objectives",
    "run_worker": "worker",
    "WorkerOptions": "worker",
    "study_status": "status",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
