"""Balance methods: ways of training a multimodal backbone against modality imbalance, compared on equal terms.

Each method is one module of this package (or a plug-in module, :mod:`~spcl_search.methods.registry`) that
describes itself: its name, its options with defaults, checks and help, the ranges a study searches, and how
it is built. The built-in ones: ``spcl`` and ``none`` (:mod:`~spcl_search.methods.curriculum`), ``ogm_ge``
(:mod:`~spcl_search.methods.ogm_ge`), ``opm`` (:mod:`~spcl_search.methods.opm`) and ``mmpareto``
(:mod:`~spcl_search.methods.mmpareto`). Describing them needs no torch, so a study spec is checked before any
worker starts; :func:`make_method` builds one for the training loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from spcl_search.methods.registry import DEFAULT_METHOD, build, check_method, method_options

if TYPE_CHECKING:
    from spcl_search.methods.base import BalanceMethod


def make_method(name: str, options: Mapping[str, Any] | None, modalities: str) -> BalanceMethod:
    """The method ``name`` with ``options`` (over its defaults) for training ``modalities``."""
    return build(name, options, modalities)


__all__ = ["DEFAULT_METHOD", "check_method", "make_method", "method_options"]
