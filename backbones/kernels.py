"""Which kernel a device-aware module runs: the CPU-tuned loop or the fused (GPU) form.

Several modules have two implementations of the same function with the same parameters: a form tuned for
CPUs (Python loops over time with hand-written backwards, few autograd nodes; measured fastest on 2 CPU
threads) and a fused form for GPUs (cuDNN's RNNs on packed sequences, one dropout kernel), where a loop of
small kernels is launch-bound. By default the tensor's device decides (``auto``: CUDA -> fused, anything
else -> the CPU form, so CPU runs stay bit for bit what they were). :func:`kernel_mode` overrides that for
a block of code: tests run both forms on the CPU with the same weights (the fused forms also run there),
and the GPU benchmark times the loop on CUDA against the fused form.

Modules with two forms: :class:`backbones.recurrent.GroupedBiLSTM` (cuDNN ``LSTM`` on packed sequences) and
:func:`backbones.functional.dropout` (``F.dropout``'s fused kernel).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

#: ``auto`` (by device), ``loop`` (the CPU-tuned forms everywhere), ``fused`` (the GPU forms everywhere)
KERNEL_MODES = ("auto", "loop", "fused")

_mode = "auto"


def use_fused(x: torch.Tensor) -> bool:
    """True when a module should run its fused form on ``x``: on CUDA, unless :func:`kernel_mode` says otherwise."""
    if _mode == "auto":
        return x.device.type == "cuda"
    return _mode == "fused"


@contextlib.contextmanager
def kernel_mode(mode: str) -> Iterator[None]:
    """Run the block with every device-aware module in ``mode`` (``auto``, ``loop`` or ``fused``); restores the previous mode."""
    global _mode
    if mode not in KERNEL_MODES:
        raise ValueError(f"kernel mode must be one of {', '.join(KERNEL_MODES)}, got {mode!r}")
    previous, _mode = _mode, mode
    try:
        yield
    finally:
        _mode = previous


def full_precision(x: torch.Tensor) -> contextlib.AbstractContextManager[None]:
    """Autocast off for the block when it is on for ``x``'s device (a no-op context otherwise).

    Recurrences run their steps in float32 under ``--precision bf16``: a state carried through a hundred
    steps in bf16 (8 bits of mantissa) drifts, the hand-written backwards assume one dtype per step, and
    the per-step products are small enough to be launch-bound, so bf16 would buy no time there.
    """
    if torch.is_autocast_enabled(x.device.type):
        return torch.autocast(device_type=x.device.type, enabled=False)
    return contextlib.nullcontext()


def upcast(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 if it is in a half precision (bf16, fp16); any other tensor as it is (float64 stays)."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


__all__ = ["KERNEL_MODES", "full_precision", "kernel_mode", "upcast", "use_fused"]
