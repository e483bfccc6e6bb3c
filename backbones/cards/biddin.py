"""BiDDIN's forms (model: :mod:`backbones.biddin`)."""

from __future__ import annotations

from backbones.registry import Form


class BiDDINForm(Form):
    """BiDDIN: DialogueRNN states per modality with cross-modal attention."""

    backbone = "biddin"


class BiDDINSPCL(BiDDINForm):
    """scripts/train_biddin.sh: global 150, party 150, emotion 100, classifier 100; 4 heads; drop 0.5."""

    form = "spcl"
    model = "backbones.biddin:SPCLBiDDIN"
    defaults = {"default": {"d_global": 150, "d_party": 150, "d_emotion": 100, "hidden": 100, "n_heads": 4, "dropout": 0.5}}
    protocol = {"default": {"lr": 4e-4, "weight_decay": 1e-8, "batch_size": 32, "epochs": 50, "patience": None}}
    fused_optimizer = True
    accepts = frozenset({"reference_arithmetic"})


class BiDDINOriginal(BiDDINForm):
    """BiDDIN: DialogueRNN states global 150, party 150, emotion 100, classifier 100 (paper); 4 heads."""

    form = "original"
    model = "backbones.biddin:OriginalBiDDIN"
    defaults = {
        "default": {
            "d_utt": 100,
            "d_global": 150,
            "d_party": 150,
            "d_emotion": 100,
            "hidden": 100,
            "n_heads": 4,
            "cross_modal": True,
            "positional": False,
            "dropout": 0.5,
        },
    }
