"""Per-backbone, per-form, per-dataset defaults in one place (no torch import: studies read it too).

Every backbone comes in two forms (``variant``):

- ``"spcl"`` (default): the form built in the SPCL code (np4s/SPCL, ``code/backbone/*.py``), trained with
  its scripts' settings (``scripts/train_*.sh``). The paper's numbers and its cl_growth/cl_threshold table
  belong to these, so they are what a user reproduces and searches.
- ``"original"``: the backbone as its own paper describes it, trained with the SPCL protocol (Adam 2e-4,
  batch 16, 50 epochs), as this project built it first.

Two tables: ``MODEL`` holds constructor arguments (hidden sizes, layers, windows, dropout) and
``TRAINING`` the training protocol (lr, weight decay, batch size, epochs, early-stopping patience). Each is
``backbone -> variant -> dataset ('default', 'iemocap', 'meld') -> values``; a dataset's entry is laid
over ``default``. Beside them, the defaults every backbone shares: ``RUN`` (the rest of a training run) and
``STUDY`` (a study's size and the quick synthetic demo), read by ``spcl_search.train.TrainConfig``,
``spcl-search train`` and the study schema (``spcl_search.schema.spec``). The balance methods' options and
search spaces live with each method (:mod:`spcl_search.methods.registry`).
"""

from __future__ import annotations

from typing import Any

#: the forms every backbone has; the first is the default everywhere
VARIANTS: tuple[str, ...] = ("spcl", "original")
DEFAULT_VARIANT = VARIANTS[0]

#: backbone -> variant -> dataset -> constructor kwargs
MODEL: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "late_fusion": {
        # SPCL code: transformer encoder per modality -> Linear(hidden, classes); train.py defaults (no script)
        "spcl": {"default": {"hidden": 200, "encoder_layers": 2, "dropout": 0.5}},
        "original": {"default": {"hidden": 200, "dropout": 0.5}},
    },
    "mmgcn": {
        # scripts/train_mmgcn.sh: hidden 256, drop 0.4; encoder and GCNII layers both encoder_nlayers (2)
        "spcl": {"default": {"hidden": 256, "n_layers": 2, "encoder_layers": 2, "alpha": 0.1, "lamda": 0.5, "dropout": 0.4}},
        # MMGCN: node size 200, GCNII width 100, alpha 0.1, lambda 0.5 (paper / released code). Layers: the
        # original hard-codes 64; 4 by measurement (surrogate IEMOCAP best dev w-F1: 4 layers 56.9, 16 layers
        # 57.0, 64 layers 56.0, at 1x / 1.7x / 5.3x the CPU time; backbones/mmgcn.py). Dropout 0.5: the SPCL
        # protocol.
        "original": {
            "default": {"hidden": 200, "graph_hidden": 100, "n_layers": 4, "alpha": 0.1, "lamda": 0.5, "dropout": 0.5},
        },
    },
    "mm_dfn": {
        # scripts/train_mmdfn.sh: hidden 300 (hidden2_dim 150 is not read by MM-DFN), drop 0.4
        "spcl": {"default": {"hidden": 300, "n_layers": 2, "encoder_layers": 2, "alpha": 0.1, "lamda": 0.5, "dropout": 0.4}},
        # MM-DFN: 16 layers, alpha 0.2, lambda 0.5, node size 200, fusion width 100 (paper / released code);
        # dropout 0.5 (SPCL protocol). Speaker-encoder weights per dataset from the released scripts (IEMOCAP
        # a-v-t 3-0-1, MELD 0.5-0.5-1.5).
        "original": {
            "default": {
                "hidden": 200,
                "graph_hidden": 100,
                "n_layers": 16,
                "alpha": 0.2,
                "lamda": 0.5,
                "dropout": 0.5,
                "fusion": "dfn",
            },
            "iemocap": {"speaker_weights": {"a": 3.0, "t": 1.0, "v": 0.0}},
            "meld": {"speaker_weights": {"a": 0.5, "t": 1.5, "v": 0.5}},
        },
    },
    "dialoguegcn": {
        # scripts/train_dialoguegcn.sh: g 200 (transformer context out), h 100, 2 layers, 1 head, wp = wf = 5, drop 0.1
        "spcl": {
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
        },
        # DialogueGCN: BiLSTM 100 per direction, RGCN 200 -> 100 with 30 bases, GraphConv 100 -> 100, head
        # 300 -> 100 (paper). Windows 10 / 10 as in the paper. "add" = the paper's attention-weighted sum.
        "original": {
            "default": {"hidden": 100, "window_past": 10, "window_future": 10, "n_bases": 30, "rgcn_aggr": "add", "dropout": 0.5},
        },
    },
    "biddin": {
        # scripts/train_biddin.sh: global 150, party 150, emotion 100, classifier 100; 4 heads; drop 0.5
        "spcl": {"default": {"d_global": 150, "d_party": 150, "d_emotion": 100, "hidden": 100, "n_heads": 4, "dropout": 0.5}},
        # BiDDIN: DialogueRNN states global 150, party 150, emotion 100, classifier 100 (paper); 4 heads.
        "original": {
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
        },
    },
}

_SPCL_PROTOCOL = {"lr": 2e-4, "weight_decay": 1e-8, "batch_size": 16, "epochs": 50, "patience": None}

#: backbone -> variant -> dataset -> training protocol
TRAINING: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    # The SPCL scripts (Adam, weight decay 1e-8 = train.py's default, gradient-norm clip 2.0, batch 32);
    # late fusion has no script: train.py's defaults. "original": the SPCL protocol for every backbone (the
    # originals' own scripts differ: MMGCN IEMOCAP lr 3e-4 l2 3e-5 20 epochs; MM-DFN lr 1e-4..1e-3 batch 32
    # 30 epochs; DialogueGCN lr 1e-4 l2 1e-5 batch 32 60 epochs; BiDDIN lr 1e-4 l2 1e-5 batch 30 60 epochs).
    "late_fusion": {"spcl": {"default": dict(_SPCL_PROTOCOL)}, "original": {"default": dict(_SPCL_PROTOCOL)}},
    "mmgcn": {
        "spcl": {"default": {"lr": 1e-4, "weight_decay": 1e-8, "batch_size": 32, "epochs": 60, "patience": 20}},
        "original": {"default": dict(_SPCL_PROTOCOL)},
    },
    "mm_dfn": {
        "spcl": {"default": {"lr": 1e-4, "weight_decay": 1e-8, "batch_size": 32, "epochs": 60, "patience": None}},
        "original": {"default": dict(_SPCL_PROTOCOL)},
    },
    "dialoguegcn": {
        "spcl": {"default": {"lr": 1e-4, "weight_decay": 1e-8, "batch_size": 32, "epochs": 50, "patience": None}},
        "original": {"default": dict(_SPCL_PROTOCOL)},
    },
    "biddin": {
        "spcl": {"default": {"lr": 4e-4, "weight_decay": 1e-8, "batch_size": 32, "epochs": 50, "patience": None}},
        "original": {"default": dict(_SPCL_PROTOCOL)},
    },
}


#: arithmetic of the forward passes (``--precision``): float32 throughout, or bfloat16 autocast; fp32 until measured
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
DEFAULT_PRECISION = PRECISIONS[0]

#: the rest of a training run (``spcl_search.train.TrainConfig``): gradient-norm clipping as the SPCL scripts
RUN: dict[str, Any] = {"clip_grad_norm": 2.0, "seed": 0}

#: a study's defaults that are not the training protocol, as (synthetic demo, real dataset); epochs None:
#: the form's protocol above. 5 epochs at the protocol's lr 2e-4 barely move DialogueGCN (dev weighted-F1 12
#: after 5 epochs, 38 at 1e-3, measured on the synthetic set), so the quick demo trains faster.
STUDY: dict[str, tuple[Any, Any]] = {
    "epochs": (5, None),
    "n_trials_search": (8, 100),
    "n_trials_balance": (8, 60),
    "train": ({"lr": 1e-3}, {}),
}


def check_variant(variant: str) -> str:
    """``variant`` if it is a known form, else ValueError naming the choices."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return variant


def _lookup(table: dict[str, dict[str, dict[str, dict[str, Any]]]], name: str, dataset: str | None, variant: str) -> dict[str, Any]:
    per = table.get(name.lower().replace("-", "_"), {}).get(check_variant(variant), {})
    out = dict(per.get("default", {}))
    if dataset:
        out.update(per.get(dataset.lower(), {}))
    return out


def model_defaults(name: str, dataset: str | None = None, variant: str = DEFAULT_VARIANT) -> dict[str, Any]:
    """Constructor kwargs for backbone ``name`` in form ``variant`` on ``dataset`` (``None``: the generic default)."""
    return _lookup(MODEL, name, dataset, variant)


def training_defaults(name: str, dataset: str | None = None, variant: str = DEFAULT_VARIANT) -> dict[str, Any]:
    """Training protocol (lr, weight_decay, batch_size, epochs, patience) for ``name`` in form ``variant`` on ``dataset``."""
    return _lookup(TRAINING, name, dataset, variant)
