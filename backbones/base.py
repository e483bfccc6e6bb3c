"""The one interface every backbone implements.

A backbone maps a padded :class:`~spcl_search.data.batching.Batch` to one logit tensor per modality,
``{m: [seq, batch, n_classes]}``. The SPCL engine sums them into the joint prediction and measures
modality imbalance from them, so a backbone never fuses its modality logits itself.

Rules every backbone follows:
- works for any non-empty modality subset in canonical order (``a``, ``t``, ``v``, ``at`` ... ``atv``);
- no ``.cuda()``: every tensor follows the input's device;
- a dialogue's logits depend only on that dialogue (padding- and batch-invariant);
- logits at padded positions may be anything finite; the engine masks them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from backbones.defaults import DEFAULT_VARIANT, check_variant, model_defaults
from spcl_search.data.batching import Batch


class Backbone(nn.Module):
    """Base class: stores the form, the modality set, input dims, class and speaker counts.

    ``variant`` selects the form (see :mod:`backbones.defaults`): ``"spcl"`` (the SPCL code's, default) or
    ``"original"`` (the backbone's own paper). Constructor options left ``None`` take the form's default
    from :data:`backbones.defaults.MODEL` (:meth:`options`), so the class and ``backbones.build`` share one
    table.
    """

    #: registry name, e.g. ``"mmgcn"``
    name: str = ""

    def __init__(
        self, modalities: str, input_dims: dict[str, int], n_classes: int, n_speakers: int, variant: str = DEFAULT_VARIANT
    ) -> None:
        super().__init__()
        self.variant = check_variant(variant)
        self.modalities = modalities
        self.input_dims = {m: int(input_dims[m]) for m in modalities}
        self.n_classes = int(n_classes)
        self.n_speakers = int(n_speakers)

    def options(self, **given: Any) -> dict[str, Any]:
        """``given`` with every ``None`` replaced by this form's default (``None`` again if the form has none)."""
        table = model_defaults(self.name, None, self.variant)
        return {k: table.get(k) if v is None else v for k, v in given.items()}

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        """Return ``{modality: logits [seq, batch, n_classes]}`` for every modality of ``batch``."""
        raise NotImplementedError

    def reset_parameters(self) -> None:
        """Re-initialise every learnable parameter (submodules with ``reset_parameters`` are reset)."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def extra_config(self) -> dict[str, Any]:
        """Hyper-parameters worth recording with a run (form, hidden sizes, layers ...)."""
        return {"variant": self.variant}
