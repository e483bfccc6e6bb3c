"""DialogueGCN's forms (model: :mod:`backbones.dialoguegcn`)."""

from __future__ import annotations

from backbones.registry import Form


class DialogueGCNForm(Form):
    """DialogueGCN: a speaker-relational graph over a context window."""

    backbone = "dialoguegcn"


class DialogueGCNSPCL(DialogueGCNForm):
    """scripts/train_dialoguegcn.sh: g 200 (transformer context out), h 100, 2 layers, 1 head, wp = wf = 5, drop 0.1."""

    form = "spcl"
    model = "backbones.dialoguegcn:SPCLDialogueGCN"
    defaults = {
        "default": {
            "hidden": 200,
            "graph_hidden": 100,
            "encoder_layers": 2,
            "n_heads": 1,
            "window_past": 5,
            "window_future": 5,
            "n_bases": 30,
            "dropout": 0.1,
        },
    }
    protocol = {"default": {"lr": 1e-4, "weight_decay": 1e-8, "batch_size": 32, "epochs": 50, "patience": None}}
    fused_optimizer = True
    accepts = frozenset({"reference_arithmetic"})


class DialogueGCNOriginal(DialogueGCNForm):
    """DialogueGCN: BiLSTM 100 per direction, RGCN 200 -> 100 with 30 bases, GraphConv 100 -> 100, head 300 -> 100
    (paper). Windows 10 / 10 as in the paper. "add" = the paper's attention-weighted sum."""

    form = "original"
    model = "backbones.dialoguegcn:OriginalDialogueGCN"
    defaults = {"default": {"hidden": 100, "window_past": 10, "window_future": 10, "n_bases": 30, "rgcn_aggr": "add", "dropout": 0.5}}
