"""spcl-search: hyperparameter search for SPCL-wrapped multimodal ERC backbones."""

__version__ = "0.1.0"
