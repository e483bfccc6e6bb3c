"""Local workers: one GPU each where there are GPUs, CPU threads split otherwise."""

from __future__ import annotations

import os

import pytest

from spcl_search.search import launcher


def test_workers_get_one_gpu_each_round_robin():
    slots = launcher.plan(3, gpus=["0", "1"])
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1", "0"]
    assert [s.gpu for s in slots] == ["0", "1", "0"]


def test_without_gpus_cpu_threads_are_split_and_cuda_hidden():
    slots = launcher.plan(4, gpus=[], cpus=16)
    assert [s.threads for s in slots] == [4, 4, 4, 4]
    assert all(s.env["CUDA_VISIBLE_DEVICES"] == "" and s.env["OMP_NUM_THREADS"] == "4" for s in slots)


def test_more_workers_than_cores_still_get_one_thread():
    assert [s.threads for s in launcher.plan(3, gpus=[], cpus=2)] == [1, 1, 1]


def test_visible_devices_variable_limits_the_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert launcher.detect_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert launcher.detect_gpus() == []


def test_storage_url_reaches_workers_through_the_environment_not_argv(tmp_path, monkeypatch):
    started = {}

    class FakePopen:
        def __init__(self, cmd, env, **kw):
            started["cmd"], started["env"] = cmd, env
            self.pid = 1

        def poll(self):
            return 0

    monkeypatch.setattr(launcher.subprocess, "Popen", FakePopen)
    url = "postgresql://alice:secret@db/x"
    launcher.start_workers("s", url, launcher.plan(1, gpus=[]), tmp_path)
    assert "secret" not in " ".join(started["cmd"])
    assert started["env"]["SPCL_SEARCH_STORAGE"] == url


def test_worker_gpu_option_hides_the_other_gpus(monkeypatch, tmp_path):
    from spcl_search.data.load import load_dataset
    from spcl_search.search.storage import open_storage
    from spcl_search.search.study import open_study
    from spcl_search.search.worker import WorkerOptions, load_trainer

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored after the test
    rdb = open_storage(f"sqlite:///{tmp_path / 'g.db'}")
    opened = open_study(rdb, {"backbone": "late_fusion"})
    import torch

    from spcl_search.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only message")
    with pytest.raises(ConfigError, match="CUDA is not available"):  # refused before any trial starts
        load_trainer(opened.spec, opened.study, WorkerOptions(gpu="3"), load_dataset("synthetic"))
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_cpu_workers_that_oversubscribe_the_cores_sleep_instead_of_spinning(monkeypatch):
    for var in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(var, raising=False)
    slots = launcher.plan(2, gpus=[], cpus=2, threads=2)
    assert all(s.env["OMP_WAIT_POLICY"] == "PASSIVE" for s in slots)


def test_cpu_workers_that_fit_the_cores_keep_the_default_wait_policy(monkeypatch):
    for var in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(var, raising=False)
    assert all("OMP_WAIT_POLICY" not in s.env for s in launcher.plan(4, gpus=[], cpus=16))


def test_a_wait_policy_the_user_set_is_left_alone(monkeypatch):
    monkeypatch.setenv("GOMP_SPINCOUNT", "5000")
    assert all("OMP_WAIT_POLICY" not in s.env for s in launcher.plan(2, gpus=[], cpus=2, threads=2))
