"""spcl-search: hyperparameter search for SPCL-wrapped multimodal ERC backbones."""

from spcl_search.openmp import apply_at_import as _apply_openmp_policy

# Before torch loads: OpenMP threads sleep on a busy machine and spin on an idle one (see
# spcl_search/openmp.py for the measurements). Set OMP_WAIT_POLICY yourself to override.
_apply_openmp_policy()

__version__ = "0.1.0"
