"""Start K local worker processes for one study.

Where there are GPUs, ``trials_per_gpu`` workers share each one (worker i on GPU ``i // K``, told with
``--gpu`` and ``CUDA_VISIBLE_DEVICES``; :mod:`spcl_search.search.packing` caps their memory and handles a
GPU out-of-memory); otherwise the CPU cores are split between workers.
Each worker is ``python -m spcl_search worker`` and gets the storage URL through
``$SPCL_SEARCH_STORAGE``, so a password never appears in a process list. Output goes to one log
file per worker.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from spcl_search.openmp import POLICY_VARS, oversubscribed
from spcl_search.outputs import output_folder, unwritable
from spcl_search.search.packing import gpu_environment, place
from spcl_search.search.settings import ENV_VAR


@dataclass
class WorkerSlot:
    """How one local worker is started."""

    index: int
    gpu: str | None
    threads: int | None
    env: dict[str, str] = field(default_factory=dict)
    #: workers sharing this slot's GPU
    packing: int = 1


def detect_gpus() -> list[str]:
    """GPU ids this process may use: ``$CUDA_VISIBLE_DEVICES`` if set, else those ``nvidia-smi -L`` lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def default_workers(gpus: list[str], trials_per_gpu: int = 1) -> int:
    """Workers ``run`` starts when ``--workers`` is not given: ``trials_per_gpu`` per GPU, else one."""
    return len(gpus) * trials_per_gpu if gpus else 1


def plan(
    workers: int, gpus: list[str] | None = None, cpus: int | None = None, threads: int | None = None, trials_per_gpu: int = 1
) -> list[WorkerSlot]:
    """Slots for ``workers`` processes: ``trials_per_gpu`` per GPU (:func:`~spcl_search.search.packing.place`),
    else ``cpus // workers`` threads each.

    CPU workers whose threads together exceed the cores get ``OMP_WAIT_POLICY=PASSIVE`` (a spinning
    pool on shared cores is 4-10x slower; spcl_search/openmp.py), unless the user set a policy.
    """
    gpus = detect_gpus() if gpus is None else gpus
    cpus = cpus or os.cpu_count() or 1
    user_policy = any(v in os.environ for v in POLICY_VARS)
    slots = []
    placements = place(workers, gpus, trials_per_gpu)
    for i in range(workers):
        if placements:
            where = placements[i]
            slots.append(WorkerSlot(i, where.gpu, threads, gpu_environment(where.gpu), where.packing))
        else:
            n = threads or max(1, cpus // workers)
            env = {**gpu_environment(None), "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
            if n > 1 and not user_policy and oversubscribed(n * (workers - 1), n, cpus):
                env["OMP_WAIT_POLICY"] = "PASSIVE"
            slots.append(WorkerSlot(i, None, n, env))
    return slots


@dataclass
class LocalWorker:
    slot: WorkerSlot
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def tail(self, lines: int = 5) -> str:
        """Last ``lines`` lines of the worker's log."""
        try:
            with self.log.open(errors="replace") as fh:
                return "".join(deque(fh, maxlen=lines)).rstrip()
        except OSError:
            return ""


def start_workers(
    study: str, storage_url: str, slots: list[WorkerSlot], log_dir: Path, extra_args: list[str] | None = None
) -> list[LocalWorker]:
    """Start one ``spcl-search worker`` process per slot; logs go to ``log_dir/<study>/worker-<i>.log``."""
    folder = output_folder(log_dir / study)
    out = []
    for slot in slots:
        cmd = [sys.executable, "-m", "spcl_search", "worker", "--study", study]
        if slot.threads:
            cmd += ["--threads", str(slot.threads)]
        if slot.gpu is not None:
            cmd += ["--gpu", slot.gpu, "--trials-per-gpu", str(slot.packing)]
        cmd += extra_args or []
        env = {**os.environ, **slot.env, ENV_VAR: storage_url, "PYTHONUNBUFFERED": "1"}
        log = folder / f"worker-{slot.index}.log"
        try:
            fh = log.open("ab")
        except OSError as exc:
            raise unwritable(log, exc) from None
        with fh:
            proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.append(LocalWorker(slot, proc, log))
    return out


def stop_workers(workers: list[LocalWorker], grace: float = 30.0) -> None:
    """SIGTERM every live worker (each fails and re-enqueues its trial), SIGKILL after ``grace`` s."""
    for w in workers:
        if w.returncode is None:
            w.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for w in workers:
        try:
            w.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.process.kill()
            w.process.wait()
