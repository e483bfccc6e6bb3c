"""Several workers per GPU (``--trials-per-gpu K``), tested on CPU with faked devices: which GPU each worker
takes, its memory cap, what ``status`` shows, and a GPU out-of-memory retried once at lower packing."""

from __future__ import annotations

import optuna
import pytest
import simulated
from optuna.trial import TrialState
from typer.testing import CliRunner

from spcl_search.cli import app
from spcl_search.search import launcher, packing
from spcl_search.search.registry import WorkerRecord, workers
from spcl_search.search.storage import open_storage
from spcl_search.search.study import open_study
from spcl_search.search.worker import WorkerOptions, run_worker

GOOD = {"cl_threshold": 0.7, "cl_growth": 1.3}
BAD = {"cl_threshold": 1.4, "cl_growth": 1.3}  # the simulated trainer raises CUDA out-of-memory for these


class FakeCuda:
    """``torch.cuda`` as far as the memory cap asks it: ``devices`` visible GPUs (none: no CUDA)."""

    def __init__(self, devices: int) -> None:
        self.devices, self.caps = devices, []

    def is_available(self):
        return self.devices > 0

    def device_count(self):
        return self.devices

    def set_per_process_memory_fraction(self, fraction, device):
        self.caps.append((fraction, device))


@pytest.fixture
def rdb(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # workers given --gpu set it; restored after the test
    return open_storage(f"sqlite:///{tmp_path / 'packed.db'}", heartbeat_interval=1, grace_period=2)


def test_k_workers_share_each_gpu_in_order():
    slots = launcher.plan(4, gpus=["0", "1"], trials_per_gpu=2)
    assert [s.gpu for s in slots] == ["0", "0", "1", "1"]
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "0", "1", "1"]
    assert [s.packing for s in slots] == [2, 2, 2, 2]


def test_without_packing_workers_still_take_the_gpus_round_robin():
    assert [(s.gpu, s.packing) for s in launcher.plan(3, gpus=["0", "1"])] == [("0", 2), ("1", 1), ("0", 2)]


def test_workers_beyond_k_per_gpu_wrap_round_and_count_in_the_packing():
    slots = launcher.plan(5, gpus=["0", "1"], trials_per_gpu=2)
    assert [(s.gpu, s.packing) for s in slots] == [("0", 3), ("0", 3), ("1", 2), ("1", 2), ("0", 3)]


def test_run_starts_k_workers_per_gpu_unless_told_how_many():
    assert launcher.default_workers(["0", "1", "2"], 4) == 12
    assert launcher.default_workers([], 4) == 1


def test_packing_below_one_is_refused_naming_the_option():
    with pytest.raises(ValueError, match="`trials_per_gpu` must be at least 1, got 0"):
        packing.place(2, ["0"], 0)


def test_launched_workers_are_told_their_gpu_and_its_packing(tmp_path, monkeypatch):
    started = []

    class FakePopen:
        def __init__(self, cmd, env, **kw):
            started.append((cmd, env))
            self.pid = 1

    monkeypatch.setattr(launcher.subprocess, "Popen", FakePopen)
    launcher.start_workers("s", "sqlite:///x.db", launcher.plan(2, gpus=["3"], trials_per_gpu=2), tmp_path)
    for cmd, env in started:
        assert cmd[cmd.index("--gpu") + 1] == "3" and cmd[cmd.index("--trials-per-gpu") + 1] == "2"
        assert env["CUDA_VISIBLE_DEVICES"] == "3"


def test_a_packed_worker_gets_its_share_of_the_gpu_with_headroom():
    assert packing.memory_fraction(1) is None  # alone on its GPU: no cap
    assert packing.memory_fraction(4) == pytest.approx(0.95 / 4)


def test_the_memory_cap_is_set_on_every_visible_cuda_device():
    cuda = FakeCuda(devices=2)
    assert packing.cap_memory(0.25, cuda) is True
    assert cuda.caps == [(0.25, 0), (0.25, 1)]


def test_without_cuda_the_memory_cap_is_skipped():
    cuda = FakeCuda(devices=0)
    assert packing.cap_memory(0.25, cuda) is False and cuda.caps == []


def test_a_packed_worker_caps_its_memory_before_its_first_trial(rdb, monkeypatch):
    cuda = FakeCuda(devices=1)
    monkeypatch.setattr(packing, "cuda_runtime", lambda: cuda)
    trained = []
    run_worker(rdb, options=WorkerOptions(gpu="0", trials_per_gpu=4), requested={"backbone": "mmgcn", "epochs": 1, "n_trials": 1},
               trainer=simulated.factory(), on_trial=lambda n, s: trained.append(cuda.caps[:]))
    assert trained == [[(pytest.approx(0.95 / 4), 0)]]


def test_trials_and_the_worker_record_say_which_gpu_ran_them(rdb):
    run_worker(rdb, options=WorkerOptions(gpu="1", trials_per_gpu=2), requested={"backbone": "mmgcn", "epochs": 1, "n_trials": 2},
               trainer=simulated.factory())
    study = optuna.load_study(study_name="mmgcn-synthetic-search", storage=rdb)
    assert [t.user_attrs["gpu"] for t in study.trials] == ["1", "1"]
    (record,) = workers(rdb, study._study_id)
    assert (record.gpu, record.packing) == ("1", 2)


def test_status_shows_the_gpu_and_packing_of_each_running_worker(rdb):
    opened = open_study(rdb, {"backbone": "mmgcn", "epochs": 1, "n_trials": 2})
    WorkerRecord(gpu="1", packing=4).publish(rdb, opened.study._study_id, state="running", trial=0)
    result = CliRunner().invoke(app, ["status", "--study", opened.spec.name, "--storage", rdb.url])
    assert result.exit_code == 0, result.output
    assert "1 (4/GPU)" in result.output


def _oom_study(rdb):
    """Trial 0 runs BAD (out of GPU memory in the simulated trainer), trial 1 GOOD."""
    study = open_study(rdb, {"backbone": "mmgcn", "epochs": 2, "pruner": "none", "n_trials": 2}).study
    study.enqueue_trial(BAD)
    study.enqueue_trial(GOOD)
    return study.study_name


def _oom_trainer():
    return simulated.factory(fault="cuda_oom", fault_above=1.2, fault_epoch=1)


def test_a_gpu_out_of_memory_on_a_packed_gpu_is_retried_once_while_its_worker_leaves(rdb):
    name = _oom_study(rdb)
    first = run_worker(rdb, name, WorkerOptions(gpu="0", trials_per_gpu=2), trainer=_oom_trainer())
    second = run_worker(rdb, name, WorkerOptions(gpu="1", trials_per_gpu=2), trainer=_oom_trainer())
    oom, good, retry = optuna.load_study(study_name=name, storage=rdb).trials
    assert first.reason == "packing" and first.trials == [0]  # it left: GPU 0 runs one worker fewer
    assert oom.state == TrialState.FAIL and oom.user_attrs["fail_reason"] == "out_of_memory"
    assert oom.user_attrs["error"].startswith("OutOfMemoryError: CUDA out of memory")
    assert (oom.user_attrs["gpu"], oom.user_attrs["packing"]) == ("0", 2)
    assert retry.system_attrs["failed_trial"] == 0 and retry.params == BAD and retry.user_attrs["gpu"] == "1"
    # the retry ran out of memory too: it fails for good and uses its slot, the budget is met
    assert retry.state == TrialState.FAIL and retry.user_attrs[packing.RETRIED_AFTER] == "out_of_memory"
    assert good.state == TrialState.COMPLETE and second.reason == "budget"


def test_a_gpu_out_of_memory_with_one_worker_per_gpu_is_an_ordinary_failed_trial(rdb):
    name = _oom_study(rdb)
    report = run_worker(rdb, name, WorkerOptions(gpu="0"), trainer=_oom_trainer())
    trials = optuna.load_study(study_name=name, storage=rdb).trials
    assert report.reason == "budget" and [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[0].user_attrs["fail_reason"] == "out_of_memory"
