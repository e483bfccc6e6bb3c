"""MM-DFN's forms (model: :mod:`backbones.mm_dfn`)."""

from __future__ import annotations

from backbones.registry import Form


class MMDFNForm(Form):
    """MM-DFN: multimodal graph with dynamic fusion."""

    backbone = "mm_dfn"


class MMDFNSPCL(MMDFNForm):
    """scripts/train_mmdfn.sh: hidden 300 (hidden2_dim 150 is not read by MM-DFN), drop 0.4."""

    form = "spcl"
    model = "backbones.mm_dfn:SPCLMMDFN"
    defaults = {"default": {"hidden": 300, "n_layers": 2, "encoder_layers": 2, "alpha": 0.1, "lamda": 0.5, "dropout": 0.4}}
    protocol = {"default": {"lr": 1e-4, "weight_decay": 1e-8, "batch_size": 32, "epochs": 60, "patience": None}}
    fused_optimizer = True
    accepts = frozenset({"reference_arithmetic"})


class MMDFNOriginal(MMDFNForm):
    """MM-DFN: 16 layers, alpha 0.2, lambda 0.5, node size 200, fusion width 100 (paper / released code);
    dropout 0.5 (SPCL protocol). Speaker-encoder weights per dataset from the released scripts (IEMOCAP a-v-t
    3-0-1, MELD 0.5-0.5-1.5)."""

    form = "original"
    model = "backbones.mm_dfn:OriginalMMDFN"
    defaults = {
        "default": {"hidden": 200, "graph_hidden": 100, "n_layers": 16, "alpha": 0.2, "lamda": 0.5, "dropout": 0.5, "fusion": "dfn"},
        "iemocap": {"speaker_weights": {"a": 3.0, "t": 1.0, "v": 0.0}},
        "meld": {"speaker_weights": {"a": 0.5, "t": 1.5, "v": 0.5}},
    }
