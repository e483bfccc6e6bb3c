"""OpenMP wait policy: threads sleep when the cores are busy, spin when they are free."""

from __future__ import annotations

import os
import subprocess
import sys

from spcl_search import openmp


def test_an_idle_machine_keeps_the_spinning_default():
    env: dict[str, str] = {}
    assert openmp.choose_wait_policy(env, busy=0, cpus=2) is None
    assert env == {}


def test_a_busy_machine_makes_threads_sleep():
    env: dict[str, str] = {}
    assert openmp.choose_wait_policy(env, busy=1, cpus=2) == "PASSIVE"
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_a_large_node_with_two_free_cores_is_not_busy():
    assert openmp.choose_wait_policy({}, busy=14, cpus=16) is None
    assert openmp.choose_wait_policy({}, busy=15, cpus=16) == "PASSIVE"


def test_a_policy_set_by_the_user_wins():
    env = {"GOMP_SPINCOUNT": "1000"}
    assert openmp.choose_wait_policy(env, busy=8, cpus=2) is None
    assert env == {"GOMP_SPINCOUNT": "1000"}


def test_unknown_load_leaves_the_default():
    env: dict[str, str] = {}
    assert openmp.choose_wait_policy(env, busy=None, cpus=2) is None and env == {}


def test_running_processes_are_read_from_loadavg_without_the_reader(tmp_path):
    path = tmp_path / "loadavg"
    path.write_text("0.50 0.40 0.30 3/120 4242\n")
    assert openmp.running_elsewhere(samples=3, interval=0, path=str(path)) == 2


def test_an_unreadable_loadavg_means_unknown(tmp_path):
    assert openmp.running_elsewhere(samples=1, path=str(tmp_path / "missing")) is None
    (tmp_path / "bad").write_text("garbage")
    assert openmp.running_elsewhere(samples=1, path=str(tmp_path / "bad")) is None


#: run the command line's entry point in a child (``--help`` needs no database), then print the policy it chose
ENTRY = """
import os
from spcl_search.cli import main
try:
    main(['--help'])
except SystemExit:
    pass
print(os.environ.get('OMP_WAIT_POLICY', 'default'))
"""


def _policy_in_child(extra_env: dict[str, str], busy_loops: int) -> str:
    env = {k: v for k, v in os.environ.items() if k not in openmp.POLICY_VARS}
    env.update(extra_env)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy_loops)]
    try:
        out = subprocess.run(
            [sys.executable, "-c", ENTRY],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        )
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    return out.stdout.strip().splitlines()[-1]


def test_the_command_line_on_saturated_cores_selects_passive():
    assert _policy_in_child({}, busy_loops=(os.cpu_count() or 1) + 1) == "PASSIVE"


def test_the_command_line_respects_an_explicit_policy():
    assert _policy_in_child({"OMP_WAIT_POLICY": "ACTIVE"}, busy_loops=0) == "ACTIVE"


def test_importing_the_package_changes_no_environment_variable():
    code = "import os; before = dict(os.environ); import spcl_search, spcl_search.search, spcl_search.schema; print(dict(os.environ) == before)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "True"
