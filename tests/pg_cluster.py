"""The local PostgreSQL cluster as the restart tests drive it: reach it, restart it, never leave it down."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
import sqlalchemy

from spcl_search.search.storage import resolve_url


def cluster_command() -> list[str]:
    """``pg_ctlcluster`` for the newest local cluster, or ``[]`` when there is none."""
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"] if versions else []


def can_reach(url: str) -> bool:
    """True when ``select 1`` succeeds on ``url``."""
    engine = sqlalchemy.create_engine(resolve_url(url))
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        return True
    except sqlalchemy.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def ensure_up(url: str, wait: float = 60.0) -> None:
    """Start the cluster if ``url`` is unreachable and wait until it answers."""
    if not can_reach(url):
        subprocess.run([*cluster_command(), "start"], capture_output=True, timeout=120)
    deadline = time.monotonic() + wait
    while not can_reach(url) and time.monotonic() < deadline:
        time.sleep(0.2)


def restart_postgres(url: str) -> float:
    """Restart the local cluster; returns the seconds it took. Leaves it running, even on failure."""
    start = time.monotonic()
    try:
        subprocess.run([*cluster_command(), "restart"], check=True, capture_output=True, timeout=120)
    finally:
        ensure_up(url)
    return time.monotonic() - start


def skip_unless_restartable(url: str) -> None:
    """Skip the test unless this process may restart the server behind ``url`` (root, local cluster)."""
    host = sqlalchemy.engine.make_url(resolve_url(url)).host
    if os.geteuid() != 0 or not cluster_command() or not shutil.which("pg_ctlcluster") or host not in ("127.0.0.1", "localhost"):
        pytest.skip("restarting PostgreSQL needs root and the local cluster (pg_ctlcluster)")
