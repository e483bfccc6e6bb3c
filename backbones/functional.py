"""Stateless operations shared by several backbones."""

from __future__ import annotations

import torch


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with the mask drawn by ``torch.rand_like``.

    Same distribution as ``F.dropout``; on CPU ``bernoulli_`` (which ``F.dropout`` uses) is about 2.5x
    slower than ``rand`` (measured 4.7 ms against 1.9 ms forward + backward for a 250k-element tensor),
    and deep models draw many masks per step.
    """
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    return x * torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))


__all__ = ["dropout"]
