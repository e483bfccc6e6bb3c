"""MMPareto (Wei and Hu, ICML 2024): multimodal and unimodal losses combined by the Pareto rule per encoder.

The loss is the joint NLL plus each modality's own NLL. For modality ``m``'s encoder, the gradients of the
joint loss ``g_mm`` and of ``m``'s own loss ``g_m`` are compared: when they agree (cosine > 0) both weigh
0.5; when they conflict, the weights are the minimum-norm point of their convex hull (the two-task case of
the MGDA solver, in closed form: :func:`min_norm_weight`). The encoder's gradient becomes
``gamma * s * (2 w g_mm + 2 (1 - w) g_m)`` per parameter, with ``s = max(1, |g_total| / |2 w g_mm + 2 (1 -
w) g_m|)`` restoring the magnitude of the summed loss's gradient ``g_total`` (``gamma`` = 1.5 in the released
code). Parameters outside the modality encoders (fusion, graph, heads) keep ``g_total``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from spcl_search.methods.base import Trainable, encoder_parts, plain_loss, unimodal_loss
from spcl_search.methods.registry import Range, needs_modalities, option, register

if TYPE_CHECKING:
    import torch

    from spcl_search.data.batching import Batch
    from spcl_search.spcl import StepOutput


@register
@dataclass(frozen=True)
class MMParetoOptions:
    """MMPareto's options: the released code's magnitude factor gamma."""

    name: ClassVar[str] = "mmpareto"
    summary: ClassVar[str] = "multimodal and unimodal losses combined per encoder by the Pareto rule"
    space: ClassVar[dict[str, Range]] = {"gamma": (1.0, 2.0, False)}

    gamma: float = option(1.5, "magnitude factor of the combined encoder gradients")

    def check(self) -> None:
        pass

    def build(self, modalities: str) -> MMPareto:
        needs_modalities(self.name, modalities)
        return MMPareto(gamma=self.gamma)


def min_norm_weight(v1v1: float, v1v2: float, v2v2: float) -> float:
    """Weight ``w`` of ``v1`` in ``argmin_w |w v1 + (1 - w) v2|`` (clipped to ``[0.001, 0.999]`` as the solver)."""
    if v1v2 >= v1v1:
        return 0.999
    if v1v2 >= v2v2:
        return 0.001
    return (v2v2 - v1v2) / (v1v1 + v2v2 - 2.0 * v1v2)


class MMPareto:
    """MMPareto with magnitude factor ``gamma``."""

    name = "mmpareto"
    threshold = None

    def __init__(self, gamma: float = 1.5) -> None:
        self.gamma = float(gamma)
        self.last_weights: dict[str, float] = {}

    def step(self, model: Trainable, batch: Batch) -> StepOutput:
        import torch

        logits = model(batch)
        out = plain_loss(logits, batch)
        uni = {m: unimodal_loss(z, batch) for m, z in logits.items()}
        parts = {m: encoder_parts(model, m) for m in logits}
        params = list({id(p.param): p.param for ps in parts.values() for p in ps}.values())
        index = {id(p): i for i, p in enumerate(params)}
        g_mm = torch.autograd.grad(out.loss, params, retain_graph=True, allow_unused=True)
        g_uni = {}
        for m, ps in parts.items():
            own = list({id(p.param): p.param for p in ps}.values())
            g_uni[m] = dict(zip(map(id, own), torch.autograd.grad(uni[m], own, retain_graph=True, allow_unused=True)))
        (out.loss + sum(uni.values())).backward()
        with torch.no_grad():
            for m, ps in parts.items():
                pairs = [(p, _view(p, g_mm[index[id(p.param)]]), _view(p, g_uni[m][id(p.param)])) for p in ps]
                self.last_weights[m] = w = self.weight(
                    torch.cat([a.flatten() for _, a, _ in pairs]), torch.cat([b.flatten() for _, _, b in pairs])
                )
                for part, a, b in pairs:
                    g = part.grad()
                    if g is None:
                        continue
                    new = 2.0 * w * a + 2.0 * (1.0 - w) * b
                    norm = new.norm()
                    if norm == 0:
                        continue
                    g.copy_(new * torch.clamp(g.norm() / norm, min=1.0) * self.gamma)
        return out

    @staticmethod
    def weight(g_mm: torch.Tensor, g_m: torch.Tensor) -> float:
        """Weight of the joint gradient: 0.5 when the two agree, else the minimum-norm combination's."""
        import torch.nn.functional as F

        if float(F.cosine_similarity(g_mm, g_m, dim=0)) > 0:
            return 0.5
        return min_norm_weight(float(g_mm @ g_mm), float(g_mm @ g_m), float(g_m @ g_m))

    def end_epoch(self) -> None:
        pass


def _view(part, grad: torch.Tensor | None) -> torch.Tensor:
    """The part's rows of a full-parameter gradient (zeros when the loss does not reach the parameter)."""
    import torch

    return part.view(torch.zeros_like(part.param) if grad is None else grad)


__all__ = ["MMPareto", "MMParetoOptions", "min_norm_weight"]
