"""The paper's SPCL hyperparameters (cl_growth, cl_threshold) per backbone, dataset and modality set.

Source: the table of the SPCL paper's public README (``shared/design/SPCL.md``); the same table is kept
as data in ``studies/paper_hparams.toml`` (a test checks that both agree). ``--warm-start paper``
enqueues these settings as a study's first trials.
"""

from __future__ import annotations

from typing import Any

from spcl_search.errors import ConfigError

#: backbone -> dataset -> modality set -> (cl_growth, cl_threshold)
PAPER_HPARAMS: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "biddin": {
        "iemocap": {"atv": (1.85, 0.7), "at": (1.85, 1.0), "tv": (1.85, 0.7), "av": (1.85, 0.4)},
        "meld": {"atv": (1.05, 0.75), "at": (1.05, 1.0), "tv": (1.05, 0.8), "av": (1.05, 0.75)},
    },
    "dialoguegcn": {
        "iemocap": {"atv": (1.25, 0.7), "at": (1.25, 0.65), "tv": (1.2, 0.7), "av": (1.25, 0.8)},
        "meld": {"atv": (1.25, 0.7), "at": (1.25, 0.7), "tv": (1.25, 0.7), "av": (1.25, 0.7)},
    },
    "mm_dfn": {
        "iemocap": {"atv": (1.2, 0.4), "at": (1.1, 0.35), "tv": (1.25, 0.4), "av": (1.1, 0.35)},
        "meld": {"atv": (1.6, 0.2), "at": (1.6, 0.2), "tv": (1.8, 0.2), "av": (1.6, 0.2)},
    },
    "mmgcn": {
        "iemocap": {"atv": (1.1, 0.4), "at": (1.4, 1.3), "tv": (1.4, 1.3), "av": (1.4, 1.3)},
        "meld": {"atv": (1.25, 0.4), "at": (1.7, 0.4), "tv": (1.6, 0.4), "av": (1.6, 0.4)},
    },
}


def paper_setting(backbone: str, dataset: str, modalities: str) -> dict[str, float]:
    """``{"cl_growth": .., "cl_threshold": ..}`` from the paper's table (ConfigError if it has none)."""
    key = backbone.lower().replace("-", "_")
    if key not in PAPER_HPARAMS:
        raise ConfigError(f"the paper reports SPCL settings for {', '.join(PAPER_HPARAMS)} only, not {backbone!r}; drop `warm_start` paper")
    per = PAPER_HPARAMS[key]
    if dataset not in per:
        raise ConfigError(
            f"the paper reports SPCL settings for iemocap and meld only, not {dataset!r}; "
            "use `warm_start` paper:iemocap or paper:meld to borrow one of them"
        )
    if modalities not in per[dataset]:
        raise ConfigError(f"the paper reports no SPCL setting for modality set {modalities!r} (it has atv, at, av, tv)")
    growth, threshold = per[dataset][modalities]
    return {"cl_growth": growth, "cl_threshold": threshold}


def warm_start_params(backbone: str, dataset: str, warm_start: str, kind: str, modalities: tuple[str, ...]) -> list[dict[str, Any]]:
    """Parameter sets to enqueue for ``warm_start`` ('none', 'paper', 'paper:<dataset>').

    A ``search`` study gets one setting per modality set (with ``modalities`` as a parameter when it
    searches more than one); a ``balance`` study trains every set with one setting, the paper's atv one.
    """
    if warm_start == "none":
        return []
    source = warm_start.split(":", 1)[1] if ":" in warm_start else dataset
    if kind == "balance":
        return [paper_setting(backbone, source, "atv")]
    out = []
    for m in modalities:
        params: dict[str, Any] = paper_setting(backbone, source, m)
        if len(modalities) > 1:
            params["modalities"] = m
        out.append(params)
    return out
