"""Soak: 16 workers on one PostgreSQL study, twelve SIGKILLs at evenly spaced points of progress (each
victim replaced), the server restarted once; at the end every asked trial is COMPLETE exactly once, none is RUNNING, none is lost
(every FAIL has its retry). Trials use the test-only simulated trainer; heartbeats are 1 s with a 5 s
grace period; workers that could not connect because the server was restarting (exit 2, one line) are
started again, as a scheduler would. The figures (trials, kills, retries, wall time) go to ``artifacts/soak.json`` and to the
test's stdout.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
import simulated
from optuna.trial import TrialState
from pg_cluster import ensure_up, restart_postgres, skip_unless_restartable

from spcl_search.search import budget as budgets
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study

REPO = Path(__file__).resolve().parents[1]
WORKERS = 16
N_TRIALS = 160
EPOCHS, EPOCH_SECONDS = 3, 0.4  # 1.2 s of simulated training per trial
# SIGKILLs are tied to progress, not to the clock, so a fast machine gets as many as a slow one: one kill
# each time another share of the trials has finished, spread over the first 75 % of the run; then the soak drains.
KILLS = 12
KILL_AT = [round(N_TRIALS * 0.75 * (k + 1) / (KILLS + 1)) for k in range(KILLS)]
RESTART_AT = 0.4  # restart PostgreSQL once this share of the trials is complete
TIME_LIMIT = 170.0  # the soak must end well within 3 minutes
# Random kills may hit one trial's retries again and again; past --max-retry (3 by default, against a
# trial that kills its worker every time) it would count as failed. The soak's kills are not the trial's fault.
WORKER_OPTIONS = ["--heartbeat-interval", "1", "--grace-period", "5", "--max-retry", "50"]


class Pool:
    """The soak's worker processes: started, killed and replaced, each with its own log."""

    def __init__(self, url: str, study: str, logs: Path) -> None:
        self.url, self.study, self.logs = url, study, logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.killed: set[int] = set()
        self.start_failures: set[int] = set()

    def start(self) -> None:
        cmd = [sys.executable, "-m", "spcl_search", "worker", "--study", self.study, "--storage", self.url, *WORKER_OPTIONS]
        with (self.logs / f"worker-{len(self.procs)}.log").open("wb") as fh:
            env = {**os.environ, **simulated.env(seconds=EPOCH_SECONDS)}
            self.procs.append(subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env))

    def live(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.killed.add(proc.pid)

    def stop_all(self) -> None:
        for p in self.live():
            p.kill()
            p.wait()

    def failed_to_start(self) -> int:
        """Workers that exited because the server was down when they started (not yet replaced)."""
        new = [p for p in self.procs if p.returncode == 2 and p.pid not in self.start_failures and "cannot connect" in self._log(p)]
        self.start_failures.update(p.pid for p in new)
        return len(new)

    def _log(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.logs / f"worker-{self.procs.index(proc)}.log").read_text(errors="replace")

    def outputs(self) -> list[str]:
        return [p.read_text(errors="replace") for p in sorted(self.logs.glob("worker-*.log"))]


def _victim(study: optuna.Study, pool: Pool, rng: random.Random) -> subprocess.Popen[bytes] | None:
    """A live worker in the middle of a trial (a kill that costs a trial), else any live worker."""
    busy = {str(t.user_attrs.get("worker", "")).rsplit(":", 1)[-1] for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    live = pool.live()
    running = [p for p in live if str(p.pid) in busy]
    return rng.choice(running or live) if live else None


@pytest.fixture
def soak_pg(pg_url):
    skip_unless_restartable(pg_url)
    name = f"soak-{uuid.uuid4().hex[:10]}"
    yield pg_url, name
    ensure_up(pg_url)
    rdb = open_storage(pg_url, heartbeat_interval=None)
    if name in optuna.get_all_study_names(rdb):
        optuna.delete_study(study_name=name, storage=rdb)


@pytest.mark.slow
@pytest.mark.postgres
def test_soak_sixteen_workers_sigkills_and_a_restart_complete_every_trial_exactly_once(soak_pg, tmp_path, record_property):
    url, name = soak_pg
    rdb = open_storage(url, heartbeat_interval=1, grace_period=5)
    open_study(rdb, {"name": name, "backbone": "mmgcn", "n_trials": N_TRIALS, "epochs": EPOCHS, "pruner": "none", "sampler": "random"})
    study = optuna.load_study(study_name=name, storage=rdb)
    pool = Pool(url, name, tmp_path)
    rng = random.Random(0)
    start = time.monotonic()
    restart_seconds = None
    try:
        for _ in range(WORKERS):
            pool.start()
        while pool.live() and time.monotonic() - start < TIME_LIMIT:
            time.sleep(0.5)
            counts = budgets.count(study.get_trials(deepcopy=False))
            for _ in range(pool.failed_to_start()):
                pool.start()  # started while the server restarted: it said so and exited 2; start another
            if restart_seconds is None and counts.complete >= RESTART_AT * N_TRIALS:
                restart_seconds = restart_postgres(url)
            due = sum(counts.finished >= at for at in KILL_AT)
            if len(pool.killed) < due:  # at most one kill per poll; a fast run catches up on the next polls
                victim = _victim(study, pool, rng)
                if victim is not None:
                    pool.kill(victim)
                    pool.start()  # keep 16 workers, as a cluster scheduler would
        assert not pool.live(), f"the soak did not finish within {TIME_LIMIT:.0f} s"
    finally:
        pool.stop_all()
    wall = time.monotonic() - start

    trials = optuna.load_study(study_name=name, storage=rdb).trials
    states = Counter(t.state for t in trials)
    lineage = Counter(t.system_attrs.get("failed_trial", t.number) for t in trials if t.state == TrialState.COMPLETE)
    outputs = pool.outputs()
    figures = {
        "trials_asked": N_TRIALS,
        "trials_complete": states[TrialState.COMPLETE],
        "trials_total": len(trials),
        "trial_retries": sum("failed_trial" in t.system_attrs for t in trials),
        "most_retries_of_one_trial": max((len(t.system_attrs.get("retry_history", [])) for t in trials), default=0),
        "failed_then_retried": budgets.count(trials).retried,
        "running_left": states[TrialState.RUNNING],
        "waiting_left": states[TrialState.WAITING],
        "workers_started": len(pool.procs),
        "sigkills": len(pool.killed),
        "postgres_restarts": 1 if restart_seconds is not None else 0,
        "postgres_restart_seconds": None if restart_seconds is None else round(restart_seconds, 2),
        "storage_retries": sum(out.count("unreachable while trying to") for out in outputs),
        "workers_that_saw_the_restart": sum("unreachable while trying to" in out for out in outputs),
        "workers_that_could_not_connect_at_start": len(pool.start_failures),
        "worker_exit_codes": dict(Counter(str(p.returncode) for p in pool.procs)),
        "wall_seconds": round(wall, 1),
        "cpu_cores": os.cpu_count(),
    }
    (REPO / "artifacts").mkdir(exist_ok=True)
    (REPO / "artifacts" / "soak.json").write_text(json.dumps(figures, indent=2) + "\n")
    (REPO / "artifacts" / "soak-trials.json").write_text(json.dumps([  # to diagnose a failure
        {"number": t.number, "state": t.state.name, "retry_of": t.system_attrs.get("retry_history", [None])[-1],
         "fail_reason": t.user_attrs.get("fail_reason"), "error": t.user_attrs.get("error"), "worker": t.user_attrs.get("worker")}
        for t in trials
    ], indent=1) + "\n")
    print("soak:", json.dumps(figures))
    for key, value in figures.items():
        record_property(key, value)

    assert restart_seconds is not None and figures["workers_that_saw_the_restart"] >= 1
    assert figures["sigkills"] >= KILLS - 2  # a kill is skipped only if no worker was alive at that poll
    assert not any("Traceback" in out for out in outputs)
    assert states[TrialState.COMPLETE] == N_TRIALS and states[TrialState.RUNNING] == 0
    assert set(lineage.values()) == {1} and len(lineage) == N_TRIALS  # each asked trial completed exactly once
    assert budgets.count(trials).failed == 0  # no trial lost: every FAIL has its retry
    survivors = [p.returncode for p in pool.procs if p.pid not in pool.killed | pool.start_failures]
    assert set(survivors) <= {0}, figures["worker_exit_codes"]
    assert wall < 180
