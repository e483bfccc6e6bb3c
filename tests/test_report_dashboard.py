"""optuna-dashboard on a PostgreSQL study: its API lists the study, its trials and our figures."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request

import optuna
import pytest
from report_fixtures import balance_study, unique_name

from spcl_search.errors import StorageError
from spcl_search.reports.dashboard import push_report, start_dashboard
from spcl_search.reports.report import build_report
from spcl_search.search.storage import open_storage

PG_URL = os.environ.get("SPCL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def pg_storage():
    try:
        return open_storage(PG_URL, heartbeat_interval=None)
    except StorageError as exc:
        reason = f"PostgreSQL not reachable at {PG_URL} (set SPCL_TEST_PG_URL): {exc}"
        if os.environ.get("SPCL_REQUIRE_PG"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def pg_study(pg_storage):
    study = balance_study(name=unique_name("report-dashboard"), storage=pg_storage, n_spcl=5)
    yield study
    optuna.delete_study(study_name=study.study_name, storage=pg_storage)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def find_study(base_url: str, name: str) -> dict:
    summaries = get_json(f"{base_url}/api/studies")["study_summaries"]
    return next(s for s in summaries if s["study_name"] == name)


def test_dashboard_api_lists_the_postgres_study_and_its_trials(pg_storage, pg_study):
    server = start_dashboard(pg_storage, port=0)
    try:
        summary = find_study(server.url, pg_study.study_name)
        detail = get_json(f"{server.url}/api/studies/{summary['study_id']}")
    finally:
        server.stop()
    assert [t["number"] for t in detail["trials"]] == list(range(6))
    assert detail["objective_names"] == ["dev_f1_atv", "gain"]


def test_pushed_report_figures_and_note_appear_in_the_dashboard(pg_storage, pg_study):
    ids = push_report(pg_study, build_report(pg_study))
    server = start_dashboard(pg_storage, port=0)
    try:
        detail = get_json(f"{server.url}/api/studies/{pg_study._study_id}")
    finally:
        server.stop()
    assert sorted(g["id"] for g in detail["plotly_graph_objects"]) == sorted(ids)
    assert "spcl-gain" in ids
    # the dashboard draws these itself: pushed, they would show twice
    assert not [i for i in ids if i.split("-")[1] in ("history", "importance", "timeline", "pareto", "landscape")]
    assert detail["note"]["body"].startswith(f"# SPCL search report: {pg_study.study_name}")


def test_dashboard_command_prints_its_address_and_serves_the_study(pg_study):
    cmd = [
        sys.executable,
        "-m",
        "spcl_search",
        "dashboard",
        "--study",
        pg_study.study_name,
        "--storage",
        PG_URL,
        "--port",
        "0",
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "optuna-dashboard: http" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert found.wait(120), "".join(lines)
        url = re.search(r"(http://[\d.]+:\d+)/dashboard/studies/(\d+)", "".join(lines))
        assert url, "".join(lines)
        detail = get_json(f"{url.group(1)}/api/studies/{url.group(2)}")
        assert detail["name"] == pg_study.study_name and len(detail["trials"]) == 6
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(lines)


def test_dashboard_without_a_study_serves_every_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'two.db'}"
    names = [balance_study(name=f"every-{i}", storage=url, n_spcl=3).study_name for i in range(2)]
    cmd = [sys.executable, "-m", "spcl_search", "dashboard", "--storage", url, "--port", "0", "--no-push"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "optuna-dashboard: http" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert found.wait(120), "".join(lines)
        base = re.search(r"optuna-dashboard: (http://[\d.]+:\d+)\s", "".join(lines))
        assert base, "".join(lines)
        served = {s["study_name"] for s in get_json(f"{base.group(1)}/api/studies")["study_summaries"]}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert served == set(names)
    assert proc.returncode == 0, "".join(lines)
