"""spcl-search: hyperparameter search for SPCL-wrapped multimodal ERC backbones.

Importing the package has no side effects; the command line (:func:`spcl_search.cli.main`) chooses the
OpenMP wait policy of its process (:mod:`spcl_search.openmp`).
"""

__version__ = "0.1.0"
