"""Several worker processes on one study: exact budget, SIGKILL recovery, SQLite without lock errors.

The PostgreSQL tests use the real server at ``$SPCL_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``) and skip, saying why, when it is unreachable
(``SPCL_REQUIRE_PG=1`` makes that a failure). Trials use the test-only simulated trainer
(``tests/simulated.py``, given to the worker processes through ``$SPCL_SEARCH_TRAINER``), so each test takes seconds; heartbeats are 1 s with a 3 s grace period.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import optuna
import pytest
import simulated
from optuna.trial import TrialState

from spcl_search.errors import StorageError
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study

HEARTBEAT = ["--heartbeat-interval", "1", "--grace-period", "3"]
PG_URL = os.environ.get("SPCL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def pg_url():
    try:
        open_storage(PG_URL, heartbeat_interval=None)
    except StorageError as exc:
        reason = f"PostgreSQL at {PG_URL} is not reachable ({exc}); start it or set SPCL_TEST_PG_URL"
        if os.environ.get("SPCL_REQUIRE_PG"):
            pytest.fail(reason)
        pytest.skip(reason)
    return PG_URL


@pytest.fixture
def pg_study(pg_url):
    """A unique study name on PostgreSQL, deleted after the test."""
    name = f"test-search-{uuid.uuid4().hex[:10]}"
    yield name
    rdb = open_storage(pg_url, heartbeat_interval=None)
    if name in optuna.get_all_study_names(rdb):
        optuna.delete_study(study_name=name, storage=rdb)


def _create(url, name, **fields):
    rdb = open_storage(url, heartbeat_interval=1, grace_period=3)
    open_study(rdb, {"name": name, "backbone": "mmgcn", **fields})
    return rdb


def _spawn(url, name, seconds=0.0):
    cmd = [sys.executable, "-m", "spcl_search", "worker", "--study", name, "--storage", url, *HEARTBEAT]
    env = {**os.environ, **simulated.env(seconds=seconds)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _finish(procs, timeout=240):
    outputs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        outputs.append(out)
    return outputs


def _trials_run(output):
    return [int(n) for n in re.findall(r"trial (\d+) (?:COMPLETE|PRUNED|FAIL)", output)]


@pytest.mark.slow
@pytest.mark.postgres
def test_four_pg_workers_finish_exactly_the_budget_without_duplicates(pg_url, pg_study):
    n = 20
    rdb = _create(pg_url, pg_study, n_trials=n, epochs=2, pruner="none")
    procs = [_spawn(pg_url, pg_study, seconds=0.02) for _ in range(4)]
    outputs = _finish(procs)
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    trials = optuna.load_study(study_name=pg_study, storage=rdb).trials
    assert len(trials) == n
    assert Counter(t.state for t in trials) == {TrialState.COMPLETE: n}
    assert all({"worker", "dev_f1_atv", "test_f1_atv", "trial_seconds"} <= set(t.user_attrs) for t in trials)
    ran = [num for out in outputs for num in _trials_run(out)]
    assert sorted(ran) == list(range(n))  # each trial ran once, in exactly one worker
    assert len({t.user_attrs["worker"] for t in trials}) >= 2


@pytest.mark.slow
@pytest.mark.postgres
def test_trial_of_a_sigkilled_pg_worker_is_retried_and_completed_by_another(pg_url, pg_study):
    n = 3
    rdb = _create(pg_url, pg_study, n_trials=n, epochs=6, pruner="none")
    victim, survivor = _spawn(pg_url, pg_study, seconds=0.5), _spawn(pg_url, pg_study, seconds=0.5)
    study = optuna.load_study(study_name=pg_study, storage=rdb)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline:
        for t in study.get_trials(states=(TrialState.RUNNING,)):
            if str(t.user_attrs.get("worker", "")).endswith(f":{victim.pid}"):
                killed = t.number
        time.sleep(0.2)
    assert killed is not None, "the victim never started a trial"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    (out,) = _finish([survivor])
    assert survivor.returncode == 0, out
    trials = optuna.load_study(study_name=pg_study, storage=rdb).trials
    assert trials[killed].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].user_attrs["worker"].endswith(f":{survivor.pid}")
    assert sum(t.state == TrialState.COMPLETE for t in trials) == n
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


@pytest.mark.slow
def test_two_sqlite_workers_never_see_database_is_locked(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    n = 30
    rdb = _create(url, "sqlite-pair", n_trials=n, epochs=2, pruner="none")
    outputs = _finish([_spawn(url, "sqlite-pair") for _ in range(2)])
    assert not any("database is locked" in out for out in outputs), outputs
    trials = optuna.load_study(study_name="sqlite-pair", storage=rdb).trials
    assert Counter(t.state for t in trials) == {TrialState.COMPLETE: n}
    assert sorted(num for out in outputs for num in _trials_run(out)) == list(range(n))


@pytest.mark.slow
@pytest.mark.postgres
def test_slurm_array_tasks_create_the_study_once_and_share_the_budget(pg_url, pg_study, tmp_path):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    spec = tmp_path / "cheap.toml"
    spec.write_text(f'name = "{pg_study}"\nbackbone = "mmgcn"\nepochs = 2\nn_trials = 6\npruner = "none"\nwarm_start = "paper:iemocap"\n')
    env = {**os.environ, **simulated.env(), "SPCL_SEARCH_STORAGE": pg_url, "SPEC": str(spec), "SLURM_CPUS_PER_TASK": "1", "VENV": str(Path(sys.executable).parent.parent)}
    tasks = [
        subprocess.Popen(["bash", str(repo / "scripts" / "slurm_workers.sh")], env={**env, "SLURM_ARRAY_TASK_ID": str(i)}, cwd=repo,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(3)
    ]
    outputs = _finish(tasks)
    assert [t.returncode for t in tasks] == [0, 0, 0], outputs
    rdb = open_storage(pg_url, heartbeat_interval=None)
    trials = optuna.load_study(study_name=pg_study, storage=rdb).trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 6 and len(trials) == 6
    assert sum(t.user_attrs.get("enqueued") == "paper" for t in trials) == 1  # enqueued once, not per task


@pytest.mark.slow
@pytest.mark.postgres
def test_a_slurm_task_with_trials_per_gpu_runs_that_many_workers_on_its_gpu(pg_url, pg_study, tmp_path):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    spec = tmp_path / "cheap.toml"
    spec.write_text(f'name = "{pg_study}"\nbackbone = "mmgcn"\nepochs = 2\nn_trials = 6\npruner = "none"\n')
    env = {**os.environ, **simulated.env(seconds=0.2), "SPCL_SEARCH_STORAGE": pg_url, "SPEC": str(spec), "SLURM_CPUS_PER_TASK": "2",
           "VENV": str(Path(sys.executable).parent.parent), "TRIALS_PER_GPU": "2", "CUDA_VISIBLE_DEVICES": "0", "SLURM_ARRAY_TASK_ID": "0"}
    task = subprocess.run(["bash", str(repo / "scripts" / "slurm_workers.sh")], env=env, cwd=repo, capture_output=True, text=True, timeout=240)
    assert task.returncode == 0, task.stdout + task.stderr
    assert "2 worker(s)" in task.stdout
    ran = {k: _trials_run("\n".join(line for line in task.stdout.splitlines() if line.startswith(f"[worker {k}]"))) for k in (0, 1)}
    assert ran[0] and ran[1] and sorted(ran[0] + ran[1]) == list(range(6))  # both workers trained, each trial once
    trials = optuna.load_study(study_name=pg_study, storage=open_storage(pg_url, heartbeat_interval=None)).trials
    assert Counter(t.state for t in trials) == {TrialState.COMPLETE: 6}
    assert {t.user_attrs["gpu"] for t in trials} == {"0"} and len({t.user_attrs["worker"] for t in trials}) == 2
