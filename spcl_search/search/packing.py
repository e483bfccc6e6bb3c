"""Several trials per GPU: which GPU each worker takes, its memory cap, and what a CUDA out-of-memory means.

An ERC trial uses a small share of a modern GPU, so ``--trials-per-gpu K`` packs K workers on each GPU
(worker i on GPU ``i // K``). Packed workers must not starve each other:

* each caps its PyTorch allocator at :func:`memory_fraction` of the GPU (``0.95 / K``: the CUDA contexts
  live outside the cap), so a trial that outgrows its share fails alone instead of its neighbours;
* a trial that runs out of GPU memory while its GPU is packed (K > 1) fails with ``fail_reason``
  ``out_of_memory`` and is retried once (:func:`oom_retry_due`): its worker leaves, so the retry runs
  on that GPU at K-1 or on another GPU. The retry carries ``retried_after = "out_of_memory"``; if it
  runs out of memory again it fails for good (a trial too large for any share is not retried forever).
  At K = 1 a CUDA out-of-memory is an ordinary failed trial, as before.

Nothing here imports torch unless CUDA is actually asked about (tests fake the device functions).
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

#: share of a GPU the packed workers' allocators may use together (the rest: CUDA contexts, fragmentation)
HEADROOM = 0.95
#: user attr of a trial that retries one which ran out of GPU memory (never retried again for that)
RETRIED_AFTER = "retried_after"
OUT_OF_MEMORY = "out_of_memory"


@dataclass(frozen=True)
class Placement:
    """Where one worker runs: its GPU and how many workers share that GPU."""

    gpu: str
    packing: int


def place(workers: int, gpus: list[str], per_gpu: int = 1) -> list[Placement]:
    """Worker ``i`` goes on ``gpus[(i // per_gpu) % len(gpus)]``; ``packing`` counts the workers each GPU got.

    More workers than ``per_gpu * len(gpus)`` wrap round (a GPU then holds more than ``per_gpu``).
    """
    if per_gpu < 1:
        raise ValueError(f"`trials_per_gpu` must be at least 1, got {per_gpu}")
    if not gpus:
        return []
    chosen = [gpus[(i // per_gpu) % len(gpus)] for i in range(workers)]
    shared = Counter(chosen)
    return [Placement(g, shared[g]) for g in chosen]


def gpu_environment(gpu: str | None) -> dict[str, str]:
    """The environment that shows CUDA only ``gpu`` (no GPU at all for None: a CPU worker); set before CUDA starts,
    so nothing lands on GPU 0 by accident."""
    return {"CUDA_VISIBLE_DEVICES": "" if gpu is None else str(gpu)}


def memory_fraction(packing: int) -> float | None:
    """The allocator cap of a worker sharing its GPU with ``packing - 1`` others (None: alone, no cap)."""
    return None if packing <= 1 else round(HEADROOM / packing, 4)


def cuda_runtime() -> Any | None:
    """``torch.cuda`` when torch is importable, else None (a worker with the simulated trainer has no torch)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    return torch.cuda


def cap_memory(fraction: float | None, cuda: Any | None = None) -> bool:
    """Cap this process's CUDA allocator at ``fraction`` of each visible GPU; False when there is no CUDA.

    ``cuda`` (default: ``torch.cuda``) is injectable so the launcher logic is tested without a GPU.
    """
    if fraction is None:
        return False
    if not 0 < fraction <= 1:
        raise ValueError(f"`memory_fraction` must be in (0, 1], got {fraction}")
    cuda = cuda if cuda is not None else cuda_runtime()
    if cuda is None or not cuda.is_available():
        return False
    for device in range(cuda.device_count()):
        cuda.set_per_process_memory_fraction(fraction, device)
    return True


def is_cuda_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is PyTorch's CUDA out-of-memory error."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)


def oom_attrs(packing: int) -> dict[str, Any]:
    """User attrs of a trial that ran out of GPU memory at ``packing`` workers per GPU."""
    return {"oom": "cuda", "packing": packing}


def oom_retry_due(trial: FrozenTrial) -> bool:
    """Whether failed ``trial`` ran out of GPU memory on a packed GPU and is not itself such a retry."""
    attrs = trial.user_attrs
    return (
        trial.state == TrialState.FAIL
        and attrs.get("fail_reason") == OUT_OF_MEMORY
        and attrs.get("oom") == "cuda"
        and int(attrs.get("packing") or 1) > 1
        and attrs.get(RETRIED_AFTER) != OUT_OF_MEMORY
    )
