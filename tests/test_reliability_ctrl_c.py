"""Ctrl-C at a terminal: ``spcl-search run`` under a real pseudo-terminal, with 2 workers in its process group.

The terminal's Ctrl-C reaches ``run`` and both workers together; ``run`` then passes the stop on with
SIGTERM. Every running trial ends FAIL ``interrupted`` with a WAITING retry, nothing stays RUNNING, and
``run`` exits 130, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid

import optuna
import pytest
import simulated
from optuna.trial import TrialState

from spcl_search.search.storage import open_storage

CTRL_C = b"\x03"


class Terminal:
    """A pseudo-terminal whose slave is the controlling terminal of one command's new session."""

    def __init__(self, cmd: list[str], cwd, env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # the slave becomes the session's terminal
        )  # fmt: skip
        os.close(slave)
        self._chunks: list[bytes] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the slave side closed
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    @property
    def output(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        os.close(self.master)


def _running(url: str, name: str, n: int, proc: subprocess.Popen, timeout: float = 120.0) -> list:
    """The ``n`` trials the workers are training (parameters drawn), once they train them."""
    reader = open_storage(url, heartbeat_interval=None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "run exited before its workers started trials"
        try:
            trials = optuna.load_study(study_name=name, storage=reader).get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # not created yet
            trials = []
        if len([t for t in trials if t.params]) >= n:
            time.sleep(0.5)  # past the trials' first writes: they sleep in their simulated epochs
            return trials
        time.sleep(0.2)
    raise AssertionError(f"the workers never ran {n} trials at once")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ctrl_c.db'}"
    return request.getfixturevalue("pg_url")


@pytest.mark.slow
def test_ctrl_c_at_a_terminal_fails_and_reenqueues_every_running_trial_and_exits_130(url, tmp_path):
    name = f"ctrl-c-{uuid.uuid4().hex[:8]}"
    cmd = [
        sys.executable, "-m", "spcl_search", "run", "--backbone", "mmgcn", "--study", name, "--epochs", "100",
        "--n-trials", "4", "--pruner", "none", "--workers", "2", "--storage", url, "--log-dir", str(tmp_path / "logs"),
        "--heartbeat-interval", "1", "--grace-period", "3",
    ]  # fmt: skip
    terminal = Terminal(cmd, tmp_path, {**os.environ, **simulated.env(seconds=0.2), "TERM": "xterm"})
    try:
        running = _running(url, name, 2, terminal.proc)
        terminal.type(CTRL_C)
        assert terminal.proc.wait(timeout=60) == 130, terminal.output[-2000:]
    finally:
        terminal.close()
    trials = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat_interval=None)).get_trials()
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    interrupted = {t.number for t in trials if t.state == TrialState.FAIL}
    assert interrupted == {t.number for t in running}
    assert all(t.user_attrs["fail_reason"] == "interrupted" for t in trials if t.number in interrupted)
    retried = {t.system_attrs.get("failed_trial") for t in trials if t.state == TrialState.WAITING}
    assert retried == interrupted
    logs = sorted((tmp_path / "logs" / name).glob("worker-*.log"))
    assert len(logs) == 2
    for log in logs:
        text = log.read_text()
        assert "Traceback" not in text and "race condition" not in text, text
        assert "interrupted by SIGINT" in text.splitlines()[-1]
