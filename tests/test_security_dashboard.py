"""The dashboard is read-only unless started with --allow-writes, and answers only requests addressed to it."""

from __future__ import annotations

import http.client
import json

import optuna
import pytest

from spcl_search.reports.dashboard import start_dashboard
from spcl_search.search.storage import open_storage


@pytest.fixture
def served(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'dash.db'}", heartbeat_interval=None)
    study = optuna.create_study(study_name="dash", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    servers = []

    def serve(**options):
        server = start_dashboard(storage, port=0, **options)
        servers.append(server)
        return server, study, storage

    yield serve
    for server in servers:
        server.stop()


def request(server, method: str, path: str, body: object = None, host: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Content-Type": "application/json", "Host": host or f"127.0.0.1:{server.port}"}
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", "/api/studies/{sid}", {}),
        ("POST", "/api/studies/{sid}/rename", {"study_name": "renamed"}),
        ("PUT", "/api/studies/{sid}/note", {"version": 1, "body": "owned"}),
        ("POST", "/api/trials/{tid}/tell", {"state": "Fail"}),
        ("POST", "/api/studies", {"study_name": "new", "directions": ["minimize"]}),
    ],
)
def test_the_dashboard_refuses_writes_by_default(served, method, path, body):
    server, study, storage = served()
    sid, tid = study._study_id, study.trials[0]._trial_id
    status, text = request(server, method, path.format(sid=sid, tid=tid), body)
    assert status == 403 and b"read-only; start it with --allow-writes" in text
    assert optuna.get_all_study_names(storage) == ["dash"]
    assert [t.state for t in optuna.load_study(study_name="dash", storage=storage).trials] == [optuna.trial.TrialState.COMPLETE] * 2


def test_the_dashboard_still_reads(served):
    server, study, _ = served()
    status, text = request(server, "GET", f"/api/studies/{study._study_id}")
    assert status == 200 and json.loads(text)["name"] == "dash"


def test_with_allow_writes_the_browser_may_edit_a_note(served):
    server, study, storage = served(allow_writes=True)
    status, _ = request(server, "PUT", f"/api/studies/{study._study_id}/note", {"version": 1, "body": "from the browser"})
    assert status == 204


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.2:{port}", ""])
def test_a_request_not_addressed_to_the_dashboard_is_refused(served, host):
    server, _, _ = served()
    status, text = request(server, "GET", "/api/studies", host=host.format(port=server.port) or " ")
    assert status == 403 and b"is not this dashboard's address" in text


def test_localhost_names_the_dashboard_bound_to_127_0_0_1(served):
    server, _, _ = served()
    assert request(server, "GET", "/api/studies", host=f"localhost:{server.port}")[0] == 200
