"""Hyperparameter studies over SPCL settings with Optuna: specs, storage, workers, status.

Modules (one concept each): :mod:`~spcl_search.search.spec` (study specifications),
:mod:`~spcl_search.search.paper` (the paper's hyperparameters), :mod:`~spcl_search.search.storage`
(database URLs and errors), :mod:`~spcl_search.search.lock` (the per-study lock),
:mod:`~spcl_search.search.budget` (trial budget accounting), :mod:`~spcl_search.search.study`
(create or join a study), :mod:`~spcl_search.search.objectives` (search and balance objectives),
:mod:`~spcl_search.search.records` (trial user attrs), :mod:`~spcl_search.search.registry` (workers
known to a study), :mod:`~spcl_search.search.worker` (run trials until the budget is spent),
:mod:`~spcl_search.search.launcher` (local worker processes), :mod:`~spcl_search.search.status`
(progress and best settings).

The names below are imported lazily, so ``import spcl_search.search`` stays cheap::

    from spcl_search.search import open_storage, open_study, run_worker
    rdb = open_storage("sqlite:///study.db")
    run_worker(rdb, requested={"backbone": "mmgcn", "n_trials": 8})
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "StudySpec": "spec",
    "ParamRange": "spec",
    "PAPER_HPARAMS": "paper",
    "paper_setting": "paper",
    "open_storage": "storage",
    "resolve_url": "storage",
    "mask_url": "storage",
    "study_lock": "lock",
    "BudgetCounts": "budget",
    "open_study": "study",
    "OpenedStudy": "study",
    "make_objective": "objectives",
    "set_user_attrs": "records",
    "run_worker": "worker",
    "WorkerOptions": "worker",
    "WorkerReport": "worker",
    "plan": "launcher",
    "start_workers": "launcher",
    "study_status": "status",
    "best_settings": "status",
    "StudyStatus": "status",
    "BestSetting": "status",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
