"""MMGCN's forms (model: :mod:`backbones.mmgcn`)."""

from __future__ import annotations

from backbones.registry import Form


class MMGCNForm(Form):
    """MMGCN: per-modality encoders, one multimodal graph per dialogue, deep GCNII."""

    backbone = "mmgcn"


class MMGCNSPCL(MMGCNForm):
    """scripts/train_mmgcn.sh: hidden 256, drop 0.4; encoder and GCNII layers both encoder_nlayers (2)."""

    form = "spcl"
    model = "backbones.mmgcn:SPCLMMGCN"
    defaults = {"default": {"hidden": 256, "n_layers": 2, "encoder_layers": 2, "alpha": 0.1, "lamda": 0.5, "dropout": 0.4}}
    protocol = {"default": {"lr": 1e-4, "weight_decay": 1e-8, "batch_size": 32, "epochs": 60, "patience": 20}}
    fused_optimizer = True
    accepts = frozenset({"reference_arithmetic"})


class MMGCNOriginal(MMGCNForm):
    """MMGCN: node size 200, GCNII width 100, alpha 0.1, lambda 0.5 (paper / released code).

    Layers: the original hard-codes 64; 4 by measurement (surrogate IEMOCAP best dev w-F1: 4 layers 56.9, 16
    layers 57.0, 64 layers 56.0, at 1x / 1.7x / 5.3x the CPU time; backbones/mmgcn.py). Dropout 0.5: the SPCL
    protocol.
    """

    form = "original"
    model = "backbones.mmgcn:OriginalMMGCN"
    defaults = {"default": {"hidden": 200, "graph_hidden": 100, "n_layers": 4, "alpha": 0.1, "lamda": 0.5, "dropout": 0.5}}
