"""The storage proxy (``spcl-search storage-proxy``, ``grpc://HOST:PORT``): workers and read commands through it,
heartbeats and the study lock kept by the proxy, and 64 worker processes through one proxy over PostgreSQL, each
sending the proxy's token (tests/test_security_proxy.py has the refusals)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter

import optuna
import pytest
import simulated
from optuna.trial import TrialState
from typer.testing import CliRunner

from spcl_search.cli import app
from spcl_search.errors import StorageError
from spcl_search.search import retry
from spcl_search.search.lock import study_lock
from spcl_search.search.proxy import LeaseLost, ProxyStorage
from spcl_search.search.proxy_server import LeaseTable, make_server
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import run_worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def database(tmp_path):
    return f"sqlite:///{tmp_path / 'proxied.db'}"


@pytest.fixture
def proxy(database):
    """A proxy in this process over a SQLite study database (heartbeat 1 s, grace 2 s); yields its grpc:// URL."""
    port = free_port()
    server = make_server(database, "127.0.0.1", port, heartbeat_interval=1, grace_period=2, threads=16)
    server.start()
    yield f"grpc://127.0.0.1:{port}"
    server.stop(0)


def test_a_grpc_url_opens_a_proxy_client_with_the_proxys_heartbeat_settings(proxy):
    storage = open_storage(proxy)
    assert isinstance(storage, ProxyStorage)
    assert (storage.get_heartbeat_interval(), storage.grace_period) == (1, 2)
    assert open_storage(proxy, heartbeat_interval=None).get_heartbeat_interval() is None  # read-only commands


def test_a_worker_through_the_proxy_finishes_exactly_the_budget(proxy, database):
    report = run_worker(open_storage(proxy), requested={"backbone": "mmgcn", "epochs": 2, "n_trials": 4}, trainer=simulated.factory())
    trials = optuna.load_study(study_name="mmgcn-synthetic-search", storage=open_storage(database)).trials
    assert report.reason == "budget" and Counter(t.state for t in trials) == {TrialState.COMPLETE: 4}
    assert all({"worker", "dev_f1_atv", "trial_seconds"} <= set(t.user_attrs) for t in trials)


def test_read_commands_accept_a_grpc_url(proxy):
    run_worker(open_storage(proxy), requested={"backbone": "mmgcn", "epochs": 1, "n_trials": 2}, trainer=simulated.factory())
    runner = CliRunner()
    status = runner.invoke(app, ["status", "--storage", proxy, "--json"])
    assert status.exit_code == 0, status.output
    assert '"finished": 2' in status.output
    best = runner.invoke(app, ["best", "--storage", proxy, "--json"])
    assert best.exit_code == 0 and '"study": "mmgcn-synthetic-search"' in best.output


def test_a_trial_whose_worker_stops_beating_is_failed_and_retried_through_the_proxy(proxy):
    storage = open_storage(proxy)
    study = open_study(storage, {"backbone": "mmgcn", "epochs": 1, "n_trials": 1}).study
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)  # then the worker dies
    time.sleep(2.5)
    report = run_worker(storage, study.study_name, trainer=simulated.factory())
    dead, retried = optuna.load_study(study_name=study.study_name, storage=storage).trials
    assert dead.state == TrialState.FAIL and retried.system_attrs["failed_trial"] == 0
    assert dead.user_attrs["fail_reason"] == "heartbeat"
    assert retried.state == TrialState.COMPLETE and report.trials == [1]


def test_the_study_lock_through_the_proxy_admits_one_holder_at_a_time(proxy):
    first, second = open_storage(proxy), open_storage(proxy)
    optuna.create_study(study_name="s", storage=first)
    with study_lock(first, "s"):
        assert second.call("Lock", {"study": "s", "wait": 0.2}) == {"token": None}
    with study_lock(second, "s"):  # free again
        pass


def test_a_lease_whose_holder_went_quiet_is_given_away_and_its_late_release_fails(database):
    storage = open_storage(database)
    optuna.create_study(study_name="s", storage=storage)
    table = LeaseTable(storage, ttl=0.3)
    late = table.acquire("s", wait=0)["token"]
    time.sleep(0.4)
    assert table.acquire("s", wait=0)["token"] is not None
    assert table.release("s", late) is False


def test_a_lost_lease_is_redone_from_the_start_like_a_lost_connection():
    assert retry.is_transient(LeaseLost("given away"))


def test_an_unreachable_proxy_is_transient_once_running():
    import grpc

    class Unavailable(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAVAILABLE

        def details(self):
            return "failed to connect to all addresses"

    assert retry.is_transient(Unavailable())
    assert retry.describe(Unavailable()) == "gRPC UNAVAILABLE: failed to connect to all addresses"


def test_no_proxy_at_the_url_is_a_one_line_error_naming_the_command(monkeypatch):
    monkeypatch.setattr("spcl_search.search.proxy.CONNECT_TIMEOUT", 0.5)
    port = free_port()
    with pytest.raises(StorageError, match=rf"no storage proxy answers at grpc://127.0.0.1:{port}.*spcl-search storage-proxy"):
        open_storage(f"grpc://127.0.0.1:{port}")


def test_a_proxy_url_without_a_port_is_refused():
    with pytest.raises(StorageError, match="a storage proxy is grpc://HOST:PORT"):
        open_storage("grpc://somewhere")


# ------------------------------------------------------------------ 64 worker processes, one proxy, PostgreSQL

PG_URL = os.environ.get("SPCL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _wait_for_proxy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            open_storage(url, heartbeat_interval=None)
            return
        except StorageError:
            time.sleep(0.5)
    raise AssertionError("the proxy did not start")


@pytest.mark.slow
@pytest.mark.postgres
def test_64_workers_through_one_proxy_meet_the_budget_and_retry_sigkilled_workers_trials(pg_url, tmp_path, monkeypatch):
    name = f"test-proxy-{uuid.uuid4().hex[:10]}"
    n, workers, killed_workers = 96, 64, 4
    port = free_port()
    url = f"grpc://127.0.0.1:{port}"
    token = tmp_path / "proxy.token"
    token.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    token.chmod(0o600)
    secured = {**os.environ, "SPCL_SEARCH_TOKEN_FILE": str(token)}  # the proxy's token, which every worker sends
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spcl_search",
            "storage-proxy",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--heartbeat-interval",
            "2",
            "--grace-period",
            "8",
            "--connections",
            "8",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**secured, "SPCL_SEARCH_STORAGE": pg_url},
    )
    monkeypatch.setenv("SPCL_SEARCH_TOKEN_FILE", str(token))
    logs = []
    procs = []
    try:
        _wait_for_proxy(url, proxy)
        open_study(open_storage(url), {"name": name, "backbone": "mmgcn", "epochs": 2, "n_trials": n, "pruner": "none"})
        env = {**secured, **simulated.env(seconds=1.0)}
        for i in range(workers):
            log = open(tmp_path / f"worker-{i}.log", "w+")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "spcl_search", "worker", "--study", name, "--storage", url],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        reader = open_storage(url, heartbeat_interval=None)
        study = optuna.load_study(study_name=name, storage=reader)
        victims, killed = {}, set()
        deadline = time.monotonic() + 300
        while len(victims) < killed_workers and time.monotonic() < deadline:
            for t in study.get_trials(states=(TrialState.RUNNING,)):
                pid = int(str(t.user_attrs.get("worker", ":0")).rsplit(":", 1)[1])
                victim = next((p for p in procs if p.pid == pid), None)
                if victim is not None and pid not in victims and len(victims) < killed_workers:
                    victim.send_signal(signal.SIGKILL)
                    victims[pid] = t.number
                    killed.add(t.number)
            time.sleep(0.5)
        assert len(victims) == killed_workers, "too few workers started a trial"
        for p in procs:
            p.wait(timeout=600)
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
        survivors = [(p, out) for p, out in zip(procs, outputs) if p.pid not in victims]
        assert all(p.returncode == 0 for p, _ in survivors), [out[-2000:] for p, out in survivors if p.returncode != 0][:2]
        # a lease the proxy gave away (its holder too slow on a loaded machine) is redone by design; anything
        # else unreachable, a StorageError or a traceback is a failure
        troubles = [
            line
            for _, out in survivors
            for line in out.splitlines()
            if re.search(r"StorageError|unreachable|Traceback", line)
            and "LeaseLost" not in line
            and not re.search(r"reachable again after", line)
        ]
        assert not troubles[:3]
        trials = optuna.load_study(study_name=name, storage=reader).trials
        assert sum(t.state == TrialState.COMPLETE for t in trials) == n  # the budget, exactly
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        for number in killed:  # each SIGKILLed worker's trial was failed and retried to completion
            assert trials[number].state == TrialState.FAIL
            lineage = [t for t in trials if t.system_attrs.get("failed_trial") == number]
            assert any(t.state == TrialState.COMPLETE for t in lineage)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        proxy.send_signal(signal.SIGTERM)
        out, _ = proxy.communicate(timeout=60)
        for log in logs:
            log.close()
        rdb = open_storage(pg_url, heartbeat_interval=None)
        if name in optuna.get_all_study_names(rdb):
            optuna.delete_study(study_name=name, storage=rdb)
    assert "Traceback" not in out, out[-3000:]
