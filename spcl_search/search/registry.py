"""Workers known to a study: each worker keeps one study system attr up to date.

The record is ``spcl_worker:<host>:<pid>:<token>`` -> ``{host, pid, gpu, packing, threads, started, last_seen,
state, trial, trials_done, grace_period, trial_started, epoch, epochs, part, dev_f1}``; ``state`` is ``running`` (a
trial), ``waiting`` (the budget is reserved by others' running trials), or ``exited``. While a trial runs, ``epoch`` of
``epochs`` (counted from 1) is the training run it is in (``part``: its modality set, and its seed of several)
and ``dev_f1`` the last epoch's dev F1; the worker writes them at most every few seconds and with each heartbeat. A
worker that was killed never writes ``exited``; readers treat a record whose ``last_seen`` is older than the worker's
own grace period (the one its trials are failed after) as gone.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna

PREFIX = "spcl_worker:"


@dataclass
class WorkerRecord:
    """What a worker tells the study about itself."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    gpu: str | None = None
    #: workers sharing this GPU (``--trials-per-gpu``)
    packing: int = 1
    threads: int | None = None
    started: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    state: str = "starting"
    trial: int | None = None
    trials_done: int = 0
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    #: seconds without a heartbeat after which this worker's trial is failed (its storage's); None in older records
    grace_period: float | None = None
    #: the running trial: when it started, the epoch its current training run is at (of ``epochs``), which run
    #: (``part``: ``atv``, ``at, seed 2/3``) and the last epoch's dev F1
    trial_started: float | None = None
    epoch: int | None = None
    epochs: int | None = None
    part: str | None = None
    dev_f1: float | None = None

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.host}:{self.pid}:{self.token}"

    @property
    def label(self) -> str:
        """``host:pid``, as stored in each trial's ``worker`` user attr."""
        return f"{self.host}:{self.pid}"

    def publish(self, storage: optuna.storages.BaseStorage, study_id: int, **changes: Any) -> None:
        """Apply ``changes``, stamp ``last_seen`` and write the record."""
        for key, value in changes.items():
            setattr(self, key, value)
        self.last_seen = time.time()
        storage.set_study_system_attr(study_id, self.key, asdict(self))


def workers(storage: optuna.storages.BaseStorage, study_id: int, *, stale_after: float | None = None) -> list[WorkerRecord]:
    """Worker records of a study; with ``stale_after``, only those not exited and seen within their own grace period
    (``stale_after`` for records that do not say theirs)."""
    out = []
    now = time.time()
    for key, value in storage.get_study_system_attrs(study_id).items():
        if not key.startswith(PREFIX) or not isinstance(value, dict):
            continue
        known = {k: v for k, v in value.items() if k in WorkerRecord.__dataclass_fields__}
        rec = WorkerRecord(**known)
        if stale_after is not None and (rec.state == "exited" or now - rec.last_seen > (rec.grace_period or stale_after)):
            continue
        out.append(rec)
    return sorted(out, key=lambda r: r.started)
