"""Defaults of the search service, importable without optuna or torch (the CLI reads them)."""

from __future__ import annotations

#: environment variable holding the storage URL (``--storage`` overrides it)
ENV_VAR = "SPCL_SEARCH_STORAGE"
#: the SQLite file used when no URL is given, in the working directory
DEFAULT_SQLITE_FILE = "spcl_search.db"
#: seconds between heartbeats of a running trial
DEFAULT_HEARTBEAT_INTERVAL = 30
#: seconds without a heartbeat after which a trial is failed and retried elsewhere
DEFAULT_GRACE_PERIOD = 120
#: how often a trial whose worker died is retried before it counts as failed
DEFAULT_MAX_RETRY = 3
#: seconds a worker keeps retrying a study database that went away (restart, fail-over) before it gives up
STORAGE_RETRY_DEADLINE = 300.0
#: first and longest wait between two tries (the wait doubles in between, with jitter)
STORAGE_RETRY_FIRST_WAIT = 0.25
STORAGE_RETRY_MAX_WAIT = 10.0
#: environment variable naming a trainer factory ``module:attribute`` that workers use instead of real training
#: (tests and benchmarks give worker processes a simulated trainer through it)
TRAINER_ENV_VAR = "SPCL_SEARCH_TRAINER"
