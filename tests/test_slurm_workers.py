"""scripts/slurm_workers.sh on a real (one-node, CPU-only) Slurm cluster against the real PostgreSQL.

The cluster is the one scripts/slurm_local_cluster.sh brings up (``.ci/run`` does it first); the test finds it
through ``SLURM_CONF`` (default: that script's ``/tmp/spcl-slurm/slurm.conf``). Without a cluster it skips
with the reason; under CI (``SPCL_REQUIRE_SLURM=1``) it fails instead.

One test, three array tasks, a study of simulated trials: the budget is met exactly, an ``scancel`` of
one task in the middle of a trial has that trial failed as interrupted and retried by another task, and the
task logs say which worker ran which trial.
"""

from __future__ import annotations

import os
import re
import shutil
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

from spcl_search.search.storage import resolve_url

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm_workers.sh"
DEFAULT_CONF = Path(os.environ.get("SPCL_SLURM_STATE", "/tmp/spcl-slurm")) / "slurm.conf"
TASKS = 3
N_TRIALS = 12
EPOCHS, EPOCH_SECONDS = 4, 0.5  # 2 s per simulated trial: 4 trials per task, the cancel lands mid-trial
DEADLINE = 100.0  # seconds for the whole array to finish


def fast_study_spec(name: str) -> str:
    """The study the array runs (its workers train with the simulated trainer: :func:`simulated.env`), no pruning."""
    return f"""
name = "{name}"
backbone = "mmgcn"
epochs = {EPOCHS}
n_trials = {N_TRIALS}
sampler = "random"
pruner = "none"
"""


def _slurm(*args: str, env: dict[str, str], check: bool = True) -> str:
    proc = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


@pytest.fixture
def slurm_env() -> dict[str, str]:
    """The environment for Slurm's commands, once the cluster's node takes jobs (skip or fail otherwise)."""
    conf = os.environ.get("SLURM_CONF") or str(DEFAULT_CONF)
    env = {**os.environ, "SLURM_CONF": conf}
    reason = None
    if not shutil.which("sbatch"):
        reason = "Slurm's client commands (sbatch) are not installed"
    elif not Path(conf).is_file():
        reason = f"no Slurm configuration at {conf}"
    else:
        try:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=15).stdout.split()
        except subprocess.TimeoutExpired:
            state = []
        if not set(state) & {"idle", "mixed", "allocated"}:
            reason = f"the Slurm cluster of {conf} has no node taking jobs (sinfo: {' '.join(state) or 'no answer'})"
    if reason:
        reason += "; run scripts/slurm_local_cluster.sh up"
        if os.environ.get("SPCL_REQUIRE_SLURM"):
            pytest.fail(reason)
        pytest.skip(reason)
    return env


@pytest.fixture
def study_name(pg_url):
    name = f"slurm-{uuid.uuid4().hex[:10]}"
    yield name
    if name in optuna.get_all_study_names(resolve_url(pg_url)):
        optuna.delete_study(study_name=name, storage=resolve_url(pg_url))


def _wait(what: str, predicate, timeout: float = 60.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _worker_of(log: Path) -> str | None:
    """The worker (``host:pid``) a task's log says it ran, once it joined the study."""
    match = re.search(r"worker (\S+) joined study", log.read_text(errors="replace")) if log.exists() else None
    return match.group(1) if match else None


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_array_job_meets_the_budget_retries_a_cancelled_tasks_trial_and_logs_who_ran_what(slurm_env, pg_url, study_name, tmp_path):
    spec = tmp_path / "study.toml"
    spec.write_text(fast_study_spec(study_name))
    env = {
        **slurm_env,
        **simulated.env(seconds=EPOCH_SECONDS),
        "SPCL_SEARCH_STORAGE": pg_url,
        "SPEC": str(spec),
        "KIND": "search",
        "VENV": sys.prefix,
        "EXTRA_ARGS": "--heartbeat-interval 1 --grace-period 5",
    }
    start = time.monotonic()
    job = _slurm(
        "sbatch", "--parsable", f"--array=0-{TASKS - 1}", "--gres=none", "--cpus-per-task=1", "--time=5",
        f"--job-name={study_name}", f"--chdir={REPO}", f"--output={tmp_path}/task-%a.log", "--export=ALL", str(SCRIPT),
        env=env,
    ).strip().split(";")[0]
    logs = [tmp_path / f"task-{i}.log" for i in range(TASKS)]
    storage = resolve_url(pg_url)
    try:
        victim = _wait("task 0's worker to join the study", lambda: _worker_of(logs[0]))
        study = _wait("the study", lambda: study_name in optuna.get_all_study_names(storage) and optuna.load_study(study_name=study_name, storage=storage))

        def victims_trial():
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if t.user_attrs.get("worker") == victim and t.params:
                    return t
            return None

        cancelled = _wait("task 0 to train a trial", victims_trial)
        time.sleep(0.3)  # into the trial's simulated epochs
        _slurm("scancel", f"{job}_0", env=env)
        _wait("the array job to finish", lambda: not _slurm("squeue", "-h", "-j", job, env=env).strip(), timeout=DEADLINE, interval=0.5)
    finally:
        _slurm("scancel", job, env=env, check=False)
    wall = time.monotonic() - start

    trials = optuna.load_study(study_name=study_name, storage=storage).trials
    states = Counter(t.state for t in trials)
    texts = [log.read_text(errors="replace") for log in logs]
    print(f"slurm array: {TASKS} tasks, {N_TRIALS} trials, {len(trials)} asked, {wall:.1f} s")

    # the budget, exactly: N complete trials, and one more trial in all, the cancelled one's retry
    assert states[TrialState.COMPLETE] == N_TRIALS and len(trials) == N_TRIALS + 1, dict(states)
    assert states[TrialState.FAIL] == 1 and not states[TrialState.RUNNING] and not states[TrialState.WAITING]

    # the cancel: Slurm cancelled task 0, its trial failed as interrupted, another task completed the retry
    assert "JobState=CANCELLED" in _slurm("scontrol", "show", "job", f"{job}_0", env=env)
    failed = trials[cancelled.number]
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_reason"] == "interrupted"
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == cancelled.number]
    assert retry.state == TrialState.COMPLETE and retry.params == failed.params
    assert retry.user_attrs["worker"] != victim
    assert f"trial {cancelled.number} interrupted" in texts[0]

    # the logs: each task names its worker, and each complete trial is in the log of the worker that ran it
    workers = {_worker_of(log): text for log, text in zip(logs, texts)}
    assert None not in workers and len(workers) == TASKS
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert f"trial {t.number} COMPLETE" in workers[t.user_attrs["worker"]], (t.number, t.user_attrs["worker"])
    assert not any("Traceback" in text for text in texts)
