"""The storage proxy lets no one in: tokens on every call of both services, read-only tokens, TLS, trial holders,
bounded sizes, and a lease table that no flood of lock calls can wedge; SIGTERM ends it within 5 s."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import optuna
import pytest
import simulated
from optuna.trial import TrialState
from typer.testing import CliRunner

from spcl_search.cli import app
from spcl_search.errors import ConfigError, StorageError
from spcl_search.search.lock import LockBusy, database_lock
from spcl_search.search.proxy import SERVICE, ProxyStorage, encode
from spcl_search.search.proxy_access import ClientAccess
from spcl_search.search.proxy_server import LeaseTable, make_server
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import run_worker

TOKEN = "t0ken-" + "a" * 40
READ_ONLY = "r3ad-" + "b" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token_file(folder: Path, name: str, token: str) -> Path:
    path = folder / name
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def database(tmp_path):
    return f"sqlite:///{tmp_path / 'proxied.db'}"


@pytest.fixture
def guarded(database, tmp_path, monkeypatch):
    """A proxy with a token and a read-only token (heartbeat 1 s, grace 2 s); yields its URL. Clients get the full token
    from $SPCL_SEARCH_TOKEN_FILE unless a test changes it."""
    port = free_port()
    proxy = make_server(
        database, "127.0.0.1", port, heartbeat_interval=1, grace_period=2, threads=16, tokens=(TOKEN,), read_only_tokens=(READ_ONLY,)
    )
    proxy.start()
    monkeypatch.setenv("SPCL_SEARCH_TOKEN_FILE", str(token_file(tmp_path, "token", TOKEN)))
    yield f"grpc://127.0.0.1:{port}"
    proxy.stop(0)


def as_client(monkeypatch, tmp_path, token: str | None) -> None:
    if token is None:
        monkeypatch.delenv("SPCL_SEARCH_TOKEN_FILE", raising=False)
    else:
        monkeypatch.setenv("SPCL_SEARCH_TOKEN_FILE", str(token_file(tmp_path, f"t{abs(hash(token))}", token)))


# ------------------------------------------------------------------ tokens


def test_a_proxy_reachable_from_other_machines_needs_a_token(database):
    with pytest.raises(ConfigError, match="--host 0.0.0.0: a proxy reachable from other machines needs a token"):
        make_server(database, "0.0.0.0", free_port())


def test_a_client_without_a_token_is_refused_in_one_line(guarded, monkeypatch, tmp_path):
    as_client(monkeypatch, tmp_path, None)
    with pytest.raises(StorageError, match="refused: this storage proxy needs a token.*set \\$SPCL_SEARCH_TOKEN_FILE"):
        open_storage(guarded)


def test_a_client_with_a_wrong_token_is_refused(guarded, monkeypatch, tmp_path):
    as_client(monkeypatch, tmp_path, "not-the-token-" + "c" * 30)
    with pytest.raises(StorageError, match="refused: the token is not this storage proxy's"):
        open_storage(guarded)


def _every_method() -> list[tuple[str, object, object]]:
    """(path, request, serializer) of every RPC of Optuna's StorageService and of the Coordinator."""
    from optuna.storages._grpc.auto_generated import api_pb2

    out = []
    for method in api_pb2.DESCRIPTOR.services_by_name["StorageService"].methods:
        request = getattr(api_pb2, method.input_type.name)()
        out.append((f"/optuna.StorageService/{method.name}", request, type(request).SerializeToString))
    for name in ("Config", "Heartbeat", "StaleTrials", "Orphans", "SetTrialUserAttrs", "Lock", "Unlock"):
        out.append((f"/{SERVICE}/{name}", {"trial_id": 1, "study_id": 1, "study": "s", "token": "x", "attrs": {}, "older_than": 1}, encode))
    return out


def test_every_rpc_of_both_services_is_refused_without_the_token(guarded):
    channel = grpc.insecure_channel(guarded.removeprefix("grpc://"))
    methods = _every_method()
    assert len(methods) == 19 + 7
    for path, request, serializer in methods:
        call = channel.unary_unary(path, request_serializer=serializer, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as err:
            call(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, path


def test_the_cli_shows_a_refused_client_as_one_line(guarded, monkeypatch, tmp_path):
    as_client(monkeypatch, tmp_path, None)
    result = CliRunner().invoke(app, ["status", "--storage", guarded])
    assert isinstance(result.exception, StorageError) and "\n" not in str(result.exception)
    assert "refused" in str(result.exception) and TOKEN not in result.output


def test_with_the_token_a_worker_finishes_the_budget(guarded, database):
    report = run_worker(open_storage(guarded), requested={"backbone": "mmgcn", "epochs": 1, "n_trials": 3}, trainer=simulated.factory())
    trials = optuna.load_study(study_name="mmgcn-synthetic-search", storage=open_storage(database)).trials
    assert report.reason == "budget" and [t.state for t in trials] == [TrialState.COMPLETE] * 3


def test_the_global_token_file_option_reaches_the_storage(guarded, monkeypatch, tmp_path):
    path = token_file(tmp_path, "given", TOKEN)
    monkeypatch.delenv("SPCL_SEARCH_TOKEN_FILE")
    result = CliRunner().invoke(app, ["--token-file", str(path), "status", "--storage", guarded, "--json"])
    assert result.exit_code == 0, result.output


def test_a_token_file_others_can_read_is_refused(tmp_path, monkeypatch):
    path = token_file(tmp_path, "loose", TOKEN)
    path.chmod(0o644)
    monkeypatch.setenv("SPCL_SEARCH_TOKEN_FILE", str(path))
    with pytest.raises(ConfigError, match="other users can read it; run chmod 600"):
        ClientAccess.from_environment()


# ------------------------------------------------------------------ the read-only token


def test_the_read_only_token_may_read_but_not_write(guarded, monkeypatch, tmp_path):
    open_study(open_storage(guarded), {"backbone": "mmgcn", "epochs": 1, "n_trials": 2})
    as_client(monkeypatch, tmp_path, READ_ONLY)
    reader = open_storage(guarded, heartbeat_interval=None)
    study = optuna.load_study(study_name="mmgcn-synthetic-search", storage=reader)
    assert study.user_attrs["kind"] == "search"
    with pytest.raises(grpc.RpcError) as err:
        study.set_user_attr("spec", {"n_trials": 1})
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "read-only token may not call SetStudyUserAttribute" in err.value.details()
    status = CliRunner().invoke(app, ["status", "--storage", guarded, "--json"])
    assert status.exit_code == 0 and '"n_trials": 2' in status.output


# ------------------------------------------------------------------ trials belong to the worker that started them


def _started_trial(url: str) -> tuple[ProxyStorage, int]:
    owner = open_storage(url)
    study = open_study(owner, {"backbone": "mmgcn", "epochs": 1, "n_trials": 2}).study
    trial = study.ask()
    owner.record_heartbeat(trial._trial_id)
    return owner, trial._trial_id


def test_heartbeats_are_taken_only_from_the_worker_that_started_the_trial(guarded):
    owner, trial_id = _started_trial(guarded)
    intruder = open_storage(guarded)
    with pytest.raises(grpc.RpcError) as err:
        intruder.record_heartbeat(trial_id)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "run by another worker" in err.value.details()
    owner.record_heartbeat(trial_id)


def test_another_client_cannot_complete_or_annotate_a_live_trial(guarded):
    _, trial_id = _started_trial(guarded)
    intruder = open_storage(guarded)
    for attempt in (
        lambda: intruder.set_trial_state_values(trial_id, TrialState.COMPLETE, [99.9]),
        lambda: intruder.set_trial_user_attr(trial_id, "dev_f1_atv", 99.9),
        lambda: intruder.set_trial_user_attrs(trial_id, {"dev_f1_atv": 99.9}),
    ):
        with pytest.raises(grpc.RpcError) as err:
            attempt()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_stale_trial_may_be_failed_by_another_worker_but_not_kept_alive(guarded):
    _, trial_id = _started_trial(guarded)
    intruder = open_storage(guarded)
    time.sleep(4.0)  # the owner died: no heartbeat for the grace period (2 s), with room for a loaded machine
    with pytest.raises(grpc.RpcError):
        intruder.record_heartbeat(trial_id)
    assert intruder.set_trial_state_values(trial_id, TrialState.FAIL)


def test_a_trial_put_back_to_waiting_belongs_to_whoever_starts_it_next(guarded):
    first, trial_id = _started_trial(guarded)
    assert first.set_trial_state_values(trial_id, TrialState.WAITING)  # its slot was over the budget
    second = open_storage(guarded)
    assert second.set_trial_state_values(trial_id, TrialState.RUNNING)
    second.record_heartbeat(trial_id)
    with pytest.raises(grpc.RpcError):
        first.record_heartbeat(trial_id)


def test_a_finished_trial_cannot_be_created_through_the_proxy(guarded):
    study = open_study(open_storage(guarded), {"backbone": "mmgcn", "epochs": 1, "n_trials": 2}).study
    with pytest.raises(grpc.RpcError) as err:
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=99.9))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "results come from trials that ran" in err.value.details()


def test_a_waiting_trial_cannot_be_completed_through_the_proxy(guarded):
    study = open_study(open_storage(guarded), {"backbone": "mmgcn", "epochs": 1, "n_trials": 2}).study
    study.enqueue_trial({"cl_threshold": 0.7, "cl_growth": 1.3})
    (waiting,) = study.get_trials(states=(TrialState.WAITING,))
    with pytest.raises(grpc.RpcError) as err:
        open_storage(guarded).set_trial_state_values(waiting._trial_id, TrialState.COMPLETE, [99.9])
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "a waiting trial cannot be finished" in err.value.details()


def test_a_user_attr_over_64_kb_is_refused(guarded):
    owner, trial_id = _started_trial(guarded)
    with pytest.raises(grpc.RpcError) as err:
        owner.set_trial_user_attr(trial_id, "blob", "x" * (65 << 10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "over the proxy's limit of 65,536" in err.value.details()
    owner.set_trial_user_attr(trial_id, "small", "x" * 1000)


# ------------------------------------------------------------------ leases


def test_a_lease_on_a_study_that_does_not_exist_is_refused(database):
    table = LeaseTable(open_storage(database), ttl=5)
    assert table.acquire("no-such-study", wait=0) == {"token": None, "absent": True}


def test_a_lease_expires_on_the_clock_and_frees_the_database_lock(database):
    storage = open_storage(database)
    optuna.create_study(study_name="s", storage=storage)
    table = LeaseTable(storage, ttl=0.3)
    assert table.acquire("s", wait=0)["token"] is not None
    with pytest.raises(LockBusy), database_lock(storage, "s", wait=0.05):
        pass
    time.sleep(1.2)  # nobody asked for the lease again: the reaper gave it away
    with database_lock(storage, "s", wait=0.05):
        pass


def test_a_thousand_bogus_lock_calls_leave_status_answering_before_their_waits_end(guarded):
    name = open_study(open_storage(guarded), {"backbone": "mmgcn", "epochs": 1, "n_trials": 2}).spec.name
    storage = open_storage(guarded, heartbeat_interval=None)
    assert storage.call("Lock", {"study": name, "wait": 0})["token"]  # held, never released: callers for it wait
    with ThreadPoolExecutor(max_workers=64) as pool:
        calls = [pool.submit(storage.call, "Lock", {"study": name if i % 2 else f"made-up-{i}", "wait": 5.0}) for i in range(1000)]
        time.sleep(0.3)
        start = time.monotonic()
        result = CliRunner().invoke(app, ["status", "--storage", guarded, "--json"])
        took = time.monotonic() - start
        answers = [c.result() for c in calls]
    assert result.exit_code == 0 and took < 3.0, took  # blocked behind the 5 s lock waits it would take longer (idle: ~0.3 s)
    assert all(a == {"token": None, "absent": True} for a in answers[::2])


def test_sigterm_stops_the_proxy_within_five_seconds(tmp_path):
    port = free_port()
    env = {**os.environ, "SPCL_SEARCH_STORAGE": f"sqlite:///{tmp_path / 'p.db'}", "SPCL_SEARCH_TOKEN_FILE": str(token_file(tmp_path, "tk", TOKEN))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "spcl_search", "storage-proxy", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        out, _ = proc.communicate(timeout=30)
        assert time.monotonic() - start < 5.0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "storage proxy stopped" in out and "Traceback" not in out


# ------------------------------------------------------------------ secrets


def test_the_proxy_takes_no_database_url_on_its_command_line():
    result = CliRunner().invoke(app, ["storage-proxy", "--storage", "postgresql://u:secret@h/db"])
    assert isinstance(result.exception, ConfigError) and "never the command line" in str(result.exception)
    assert "secret" not in str(result.exception)


@pytest.mark.postgres
def test_the_proxy_masks_the_password_in_its_log_and_config_reply(pg_url, tmp_path, caplog):
    import sqlalchemy

    secret = "pr0xy-s3cret"
    parsed = sqlalchemy.engine.make_url(pg_url)
    url = f"postgresql://{parsed.username or 'postgres'}@{parsed.host}:{parsed.port or 5432}/{parsed.database}?password={secret}"
    port = free_port()
    proxy = make_server(url, "127.0.0.1", port, tokens=(TOKEN,))
    proxy.start()
    try:
        client = ProxyStorage(f"grpc://127.0.0.1:{port}", heartbeats=False, access=ClientAccess(token=TOKEN))
        assert secret not in json.dumps(client.call("Config", {})) and "***" in client.database
    finally:
        proxy.stop(0)
    assert secret not in caplog.text


# ------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (and a second, unrelated CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    paths = {}
    for name in ("proxy", "other"):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"spcl-test-{name}")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}.key").write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        paths[name] = (str(folder / f"{name}.crt"), str(folder / f"{name}.key"))
    return paths


@pytest.fixture
def tls_proxy(database, certificate, tmp_path, monkeypatch):
    port = free_port()
    proxy = make_server(database, "127.0.0.1", port, heartbeat_interval=1, grace_period=2, threads=16, tokens=(TOKEN,), tls=certificate["proxy"])
    proxy.start()
    monkeypatch.setenv("SPCL_SEARCH_TOKEN_FILE", str(token_file(tmp_path, "token", TOKEN)))
    monkeypatch.setattr("spcl_search.search.proxy.CONNECT_TIMEOUT", 1.5)
    yield port
    proxy.stop(0)


def test_over_tls_with_the_ca_and_the_token_a_worker_finishes_the_budget(tls_proxy, certificate, database, monkeypatch):
    monkeypatch.setenv("SPCL_SEARCH_CA_FILE", certificate["proxy"][0])
    report = run_worker(
        open_storage(f"grpcs://127.0.0.1:{tls_proxy}"), requested={"backbone": "mmgcn", "epochs": 1, "n_trials": 2}, trainer=simulated.factory()
    )
    assert report.reason == "budget" and report.states == {"COMPLETE": 2}
    status = CliRunner().invoke(app, ["status", "--storage", f"grpcs://127.0.0.1:{tls_proxy}", "--json"])
    assert status.exit_code == 0 and '"finished": 2' in status.output


def test_a_worker_process_given_the_token_and_ca_files_runs_over_tls(tls_proxy, certificate, database, tmp_path, monkeypatch):
    url = f"grpcs://127.0.0.1:{tls_proxy}"
    monkeypatch.setenv("SPCL_SEARCH_CA_FILE", certificate["proxy"][0])
    open_study(open_storage(url), {"name": "tls", "backbone": "mmgcn", "epochs": 1, "n_trials": 2, "pruner": "none"})
    env = {k: v for k, v in os.environ.items() if k not in ("SPCL_SEARCH_TOKEN_FILE", "SPCL_SEARCH_CA_FILE")}
    cmd = [sys.executable, "-m", "spcl_search", "--token-file", str(token_file(tmp_path, "w", TOKEN)), "--ca-file", certificate["proxy"][0]]
    done = subprocess.run(
        [*cmd, "worker", "--study", "tls", "--storage", url], env={**env, **simulated.env(seconds=0.05)}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    trials = optuna.load_study(study_name="tls", storage=open_storage(database)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2


def test_over_tls_a_certificate_the_client_does_not_trust_is_a_one_line_error(tls_proxy, certificate, monkeypatch):
    monkeypatch.setenv("SPCL_SEARCH_CA_FILE", certificate["other"][0])
    with pytest.raises(StorageError, match="no storage proxy answers at grpcs://.*the certificate must be trusted"):
        open_storage(f"grpcs://127.0.0.1:{tls_proxy}")


def test_a_plain_client_cannot_talk_to_a_tls_proxy(tls_proxy):
    with pytest.raises(StorageError, match="no storage proxy answers at grpc://127.0.0.1"):
        open_storage(f"grpc://127.0.0.1:{tls_proxy}")


def test_only_loopback_addresses_bind_without_a_token():
    from spcl_search.search.proxy_access import is_loopback

    assert all(is_loopback(h) for h in ("localhost", "127.0.0.1", "127.3.2.1", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "127.evil.example", "10.0.0.5", "::"))
