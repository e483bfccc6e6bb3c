"""Balance methods: ways of training a multimodal backbone against modality imbalance, compared on equal terms.

``none`` (plain NLL of the joint prediction), ``spcl`` (self-paced curriculum, :mod:`spcl_search.spcl`),
``ogm_ge`` (gradient modulation, :mod:`~spcl_search.methods.ogm_ge`), ``opm`` (feature dropping,
:mod:`~spcl_search.methods.opm`) and ``mmpareto`` (Pareto-combined unimodal losses,
:mod:`~spcl_search.methods.mmpareto`). Each has its options with defaults (:data:`OPTIONS`) and the ranges a
study searches (:data:`SPACES`), checked by :func:`~spcl_search.schema.method_options.method_options` (no torch,
so a study spec is checked before any worker starts); :func:`make_method` builds one for the training loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backbones.defaults import DEFAULT_METHOD, METHOD_OPTIONS, METHOD_SPACES, METHODS
from spcl_search.errors import ConfigError
from spcl_search.methods.base import BalanceMethod
from spcl_search.schema.method_options import check_method, method_options
from spcl_search.spcl import SPCLConfig

#: the methods, their options' defaults and their search ranges live in the one defaults table
OPTIONS, SPACES = METHOD_OPTIONS, METHOD_SPACES


def make_method(name: str, options: Mapping[str, Any] | None, spcl: SPCLConfig, modalities: str) -> BalanceMethod:
    """The method ``name`` for training ``modalities``; ``spcl`` carries the curriculum's settings."""
    from spcl_search.methods.curriculum import Curriculum
    from spcl_search.methods.mmpareto import MMPareto
    from spcl_search.methods.ogm_ge import OGMGE
    from spcl_search.methods.opm import OPM

    opts = method_options(name, options)
    if name in ("spcl", "none"):
        if name == "none" or not spcl.enabled:
            spcl = SPCLConfig(
                enabled=False, threshold=spcl.threshold, growth=spcl.growth, cap=spcl.cap, normalise=spcl.normalise, score=spcl.score
            )
        return Curriculum(spcl, modalities)
    if len(modalities) < 2:
        raise ConfigError(f"--method {name}: balancing needs at least two modalities, got {modalities!r}")
    if name == "ogm_ge":
        return OGMGE(opts["alpha"], smooth=opts["smooth"], starts=opts["modulation_starts"], ends=opts["modulation_ends"])
    if name == "opm":
        return OPM(alpha=opts["alpha"], q_base=opts["q_base"], p_exe=opts["p_exe"])
    return MMPareto(gamma=opts["gamma"])


__all__ = ["DEFAULT_METHOD", "METHODS", "OPTIONS", "SPACES", "BalanceMethod", "check_method", "make_method", "method_options"]
