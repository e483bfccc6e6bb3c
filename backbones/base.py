"""The one interface every backbone implements.

A backbone maps a padded :class:`~spcl_search.data.batching.Batch` to one logit tensor per modality,
``{m: [seq, batch, n_classes]}``. The SPCL engine sums them into the joint prediction and measures
modality imbalance from them, so a backbone never fuses its modality logits itself.

Balance methods other than SPCL need two more things from a backbone, which every one provides:
:meth:`Backbone.encoder_parts` (the parameters of one modality's encoder, for gradient modulation such
as OGM-GE and MMPareto) and ``batch.feature_scale`` (a per-utterance factor on one modality's encoder
output, for feature dropping such as OPM; see :class:`~spcl_search.data.batching.Batch`).

Rules every backbone follows:
- works for any non-empty modality subset in canonical order (``a``, ``t``, ``v``, ``at`` ... ``atv``);
- no ``.cuda()``: every tensor follows the input's device;
- a dialogue's logits depend only on that dialogue (padding- and batch-invariant);
- logits at padded positions may be anything finite; the engine masks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from backbones.registry import DEFAULT_FORM, lookup
from spcl_search.data.batching import Batch


@dataclass(frozen=True)
class ParameterPart:
    """One modality's share of a parameter: the whole tensor, or ``param[index]`` (modalities stacked along
    the first dimension, as the grouped recurrent kernels keep them)."""

    param: nn.Parameter
    index: slice | int | None = None

    def view(self, tensor: torch.Tensor) -> torch.Tensor:
        """The part's rows of ``tensor`` (the parameter itself or a gradient of its shape), as a view."""
        return tensor if self.index is None else tensor[self.index]

    def grad(self) -> torch.Tensor | None:
        """A view of the part's gradient (writing it changes ``param.grad``); None before a backward."""
        return None if self.param.grad is None else self.view(self.param.grad)


def whole(module: nn.Module) -> list[ParameterPart]:
    """Every parameter of ``module`` as a whole part."""
    return [ParameterPart(p) for p in module.parameters()]


def scale_rows(batch: Batch, modality: str, rows: torch.Tensor, pack: Any) -> torch.Tensor:
    """``rows`` times the batch's ``feature_scale`` of ``modality`` (unchanged without one).

    ``pack`` turns the time-major ``[S, B]`` scale into the layout of ``rows`` minus its last dimension
    (e.g. ``Packing.pack`` for packed rows, ``lambda s: s.t()`` for batch-first ``[B, S, d]``).
    """
    if batch.feature_scale is None or modality not in batch.feature_scale:
        return rows
    return rows * pack(batch.feature_scale[modality]).unsqueeze(-1).to(rows.dtype)


class Backbone(nn.Module):
    """Base class: stores the form, the modality set, input dims, class and speaker counts.

    Each form is a class of its own (e.g. :class:`~backbones.mmgcn.SPCLMMGCN` and
    :class:`~backbones.mmgcn.OriginalMMGCN` on a shared :class:`~backbones.mmgcn.MMGCN`) that declares it as
    ``variant``; its registered form class (:mod:`backbones.registry`) carries its defaults. Constructor options
    left ``None`` take the form's default (:meth:`options`), so the class and ``backbones.build`` share one table.
    """

    #: registry name, e.g. ``"mmgcn"``
    name: str = ""
    #: the form a class implements; empty: a class of several forms, told which by ``variant`` (default spcl)
    variant: str = ""

    def __init__(
        self, modalities: str, input_dims: dict[str, int], n_classes: int, n_speakers: int, variant: str | None = None
    ) -> None:
        super().__init__()
        declared = type(self).variant
        if declared and variant not in (None, declared):
            raise ValueError(f"{type(self).__name__} is the {declared} form of {self.name}, not {variant!r}")
        self.variant = declared or variant or DEFAULT_FORM
        self.form_class = lookup(self.name, self.variant)
        self.modalities = modalities
        self.input_dims = {m: int(input_dims[m]) for m in modalities}
        self.n_classes = int(n_classes)
        self.n_speakers = int(n_speakers)

    def options(self, **given: Any) -> dict[str, Any]:
        """``given`` with every ``None`` replaced by this form's default (``None`` again if the form has none)."""
        table = self.form_class.model_defaults()
        return {k: table.get(k) if v is None else v for k, v in given.items()}

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        """Return ``{modality: logits [seq, batch, n_classes]}`` for every modality of ``batch``."""
        raise NotImplementedError

    def encoder_parts(self, modality: str) -> list[ParameterPart]:
        """The parameters of ``modality``'s own encoder (what gradient-modulating balance methods scale).

        Parts of different modalities never overlap; fusion layers, graphs shared across modalities and
        classification heads belong to no modality.
        """
        raise NotImplementedError

    def reset_parameters(self) -> None:
        """Re-initialise every learnable parameter (submodules with ``reset_parameters`` are reset)."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def extra_config(self) -> dict[str, Any]:
        """Hyper-parameters worth recording with a run (form, hidden sizes, layers ...)."""
        return {"variant": self.variant}
