"""Late fusion's forms (model: :mod:`backbones.late_fusion`)."""

from __future__ import annotations

from backbones.registry import SPCL_PROTOCOL, Form


class LateFusionForm(Form):
    """Late fusion: one encoder and head per modality."""

    backbone = "late_fusion"


class LateFusionSPCL(LateFusionForm):
    """SPCL code: transformer encoder per modality -> Linear(hidden, classes); train.py's defaults (no script)."""

    form = "spcl"
    model = "backbones.late_fusion:SPCLLateFusion"
    defaults = {"default": {"hidden": 200, "encoder_layers": 2, "dropout": 0.5}}
    protocol = {"default": SPCL_PROTOCOL}
    fused_optimizer = True
    accepts = frozenset({"reference_arithmetic"})


class LateFusionOriginal(LateFusionForm):
    """Per-utterance MLP, no context."""

    form = "original"
    model = "backbones.late_fusion:OriginalLateFusion"
    defaults = {"default": {"hidden": 200, "dropout": 0.5}}
